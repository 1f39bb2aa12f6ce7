"""Real loopback servers for integration tests: a recording origin, the real proxy, clients
(treq, and one raw socket client), and bounded waits on events.

Every wait is bounded: `within` fails the test after its timeout, `until` after its
deadline. Teardown waits, a reactor turn at a time, until no socket is left open, so the
dirty-reactor check never sees a connection still closing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import attrs
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet import tcp
from twisted.internet.defer import Deferred, TimeoutError, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from hls_proxy.config import Config
from hls_proxy.service import Parts, build_site

reactor: Any = _reactor

__all__ = [
    "OriginRequest",
    "RawClient",
    "RecordingResource",
    "Waits",
    "client",
    "connect",
    "happens_within",
    "http_get",
    "later",
    "listen",
    "proxied_url",
    "proxy_parts",
    "start_origin",
    "start_proxy",
    "turn",
    "until",
    "within",
]

T = TypeVar("T")

# How long teardown may wait for sockets to close: they close in a few turns, so reaching
# this means a leak, reported by name instead of as a dirty reactor.
SETTLE_S = 5.0


@attrs.frozen
class OriginRequest:
    """What the origin saw of one request."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]


class RecordingResource(Resource):
    """Wraps a resource and records every request that reaches it."""

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.seen: list[OriginRequest] = []

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        if not hasattr(request, "_recorded"):
            record = OriginRequest(
                request.method.decode(),
                request.uri.decode("latin-1"),
                {
                    name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
                    for name, values in request.requestHeaders.getAllRawHeaders()
                },
            )
            request._recorded = True  # type: ignore[attr-defined]
            self.seen.append(record)
        if getattr(self.wrapped, "isLeaf", False):
            request.postpath.insert(0, request.prepath.pop())
            return self.wrapped
        return self.wrapped.getChildWithDefault(path, request)

    def render(self, request: Request) -> bytes | int:
        self.getChildWithDefault(b"", request)
        return self.wrapped.render(request)

    def paths(self) -> list[str]:
        return [record.path for record in self.seen]


# Waiting ----------------------------------------------------------------------------


def turn() -> Deferred[None]:
    """One reactor turn."""
    return deferLater(reactor, 0, lambda: None)


def later(seconds: float) -> Deferred[None]:
    """Wall-clock time; only for assertions about time itself (and external processes)."""
    return deferLater(reactor, seconds, lambda: None)


async def within(seconds: float, waiting: Deferred[T], what: str) -> T:
    """`waiting`'s result, or the test fails after `seconds` saying what never happened."""
    waiting.addTimeout(seconds, reactor)
    try:
        return await waiting
    except TimeoutError:
        raise AssertionError(f"{what}: not after {seconds} s") from None


async def happens_within(seconds: float, waiting: Deferred[Any]) -> bool:
    """Whether `waiting` fires within `seconds` (it is cancelled if not)."""
    waiting.addTimeout(seconds, reactor)
    try:
        await waiting
    except TimeoutError:
        return False
    return True


async def until(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Turn the reactor until `condition()` holds (state with no event of its own), bounded."""
    deadline = reactor.seconds() + seconds
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what}: not after {seconds} s")
        await turn()


@attrs.frozen
class _Wait:
    probe: Callable[[], Any]
    fired: Deferred[Any]


class Waits:
    """Deferreds that fire with the first value of `probe()` that is not None: a fresh one
    per waiter, cancellable (so `within` can give up), probed whenever the owner calls
    `changed`."""

    def __init__(self) -> None:
        self._pending: list[_Wait] = []

    def until(self, probe: Callable[[], T | None]) -> Deferred[T]:
        value = probe()
        if value is not None:
            return succeed(value)
        wait = _Wait(probe, Deferred(lambda _: self._forget(wait)))
        self._pending.append(wait)
        return wait.fired

    def changed(self) -> None:
        for wait in list(self._pending):
            value = wait.probe() if wait in self._pending else None
            if value is not None:
                self._pending.remove(wait)
                wait.fired.callback(value)

    def _forget(self, wait: _Wait) -> None:
        if wait in self._pending:
            self._pending.remove(wait)


# One raw socket client ----------------------------------------------------------------


class RawClient(Protocol):
    """A client socket with no HTTP library in the way: it sends what the test says, keeps
    the first `keep` bytes of the answer, counts them all, and reads only while the test
    lets it (`transport.pauseProducing()` stops reading)."""

    def __init__(self, data: bytes = b"", keep: int = 65536) -> None:
        self.data = data
        self.keep = keep
        self.kept = b""
        self.received = 0
        self.reason: type[BaseException] | None = None
        self._waits = Waits()

    def connectionMade(self) -> None:
        # A small receive window, so this end's kernel buffer does not hide the proxy's.
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        if self.data:
            self.transport.write(self.data)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if len(self.kept) < self.keep:
            self.kept += data[: self.keep - len(self.kept)]
        self.received += len(data)
        self._waits.changed()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.reason = reason.type
        self._waits.changed()

    @property
    def head(self) -> bytes:
        """The status line and headers, once they are complete (else b"")."""
        head, found, _ = self.kept.partition(b"\r\n\r\n")
        return head if found else b""

    @property
    def body_bytes(self) -> int:
        return self.received - len(self.head) - 4 if self.head else 0

    @property
    def closed(self) -> Deferred[type[BaseException]]:
        """Fires with the reason's type once the connection is gone (a fresh Deferred)."""
        return self._waits.until(lambda: self.reason)

    def received_at_least(self, count: int) -> Deferred[int]:
        return self._waits.until(lambda: self.received if self.received >= count else None)


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def connect(case: TestCase, base: str, data: bytes = b"") -> RawClient:
    """A RawClient connected to `base` (http://127.0.0.1:port) that has sent `data`;
    aborted at teardown if the test left it open."""
    port = int(base.rsplit(":", 1)[1])
    protocol = RawClient(data)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    _kit(case).raw.append(protocol)
    return protocol


# Servers and clients --------------------------------------------------------------------


@attrs.define
class _Kit:
    """What one test started, so teardown can close it and wait for its sockets."""

    closers: list[Callable[[], Deferred[Any]]] = attrs.Factory(list)
    proxies: dict[str, Parts] = attrs.Factory(dict)
    raw: list[RawClient] = attrs.Factory(list)


def _kit(case: TestCase) -> _Kit:
    kit: _Kit | None = getattr(case, "_integration_kit", None)
    if kit is None:
        kit = _Kit()
        case._integration_kit = kit  # type: ignore[attr-defined]
        # Registered first, so it runs last, after the ports have stopped listening.
        case.addCleanup(lambda: Deferred.fromCoroutine(_settle(kit)))
    return kit


def _open_sockets() -> list[object]:
    selectables = set(reactor.getReaders()) | set(reactor.getWriters())
    # Connections only: listening ports are stopped by their own cleanups, in any order.
    return [s for s in selectables if isinstance(s, tcp.Connection)]


async def _settle(kit: _Kit) -> None:
    """Close every pool, then look again each turn until no socket is left (bounded).

    A finished response returns its connection to the pool a turn late, and the peer of a
    closed socket hears of it a turn later: so the pools are closed again on every turn.
    """
    for raw in kit.raw:
        if raw.reason is None and raw.transport is not None:
            raw.transport.abortConnection()  # type: ignore[attr-defined]
    deadline = reactor.seconds() + SETTLE_S
    while True:
        await turn()
        await gatherResults([close() for close in kit.closers])
        left = _open_sockets()
        if not left:
            return
        if reactor.seconds() > deadline:
            raise AssertionError(f"sockets still open {SETTLE_S} s after the test: {left}")


def listen(case: TestCase, resource: IResource) -> str:
    """Serve `resource` on 127.0.0.1 (a free port) until the test ends; the base URL."""
    _kit(case)
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"


def start_origin(case: TestCase, resource: IResource) -> tuple[str, RecordingResource]:
    recording = RecordingResource(resource)
    return listen(case, recording), recording


def start_proxy(case: TestCase, **overrides: Any) -> str:
    """The real proxy (as twistd builds it) on 127.0.0.1; its base URL."""
    settings: dict[str, Any] = {"secret": b"test-secret", "allow_private": True}
    settings.update(overrides)
    kit = _kit(case)
    parts = build_site(Config(**settings), reactor)
    port = reactor.listenTCP(0, parts.site, interface="127.0.0.1")
    kit.closers.append(parts.registry.close_all)
    case.addCleanup(port.stopListening)
    url = f"http://127.0.0.1:{port.getHost().port}"
    kit.proxies[url] = parts
    return url


def proxy_parts(case: TestCase, proxy: str) -> Parts:
    """The site, registry, dispatcher and metrics behind a `start_proxy` URL."""
    return _kit(case).proxies[proxy]


def proxied_url(proxy: str, upstream: str, endpoint: str = "playlist.m3u8", **headers: str) -> str:
    """`proxy/endpoint?url=<upstream>&h_<name>=<value>`, percent-encoded."""
    params = [("url", upstream)] + [
        ("h_" + name.replace("_", "-"), value) for name, value in headers.items()
    ]
    return f"{proxy}/{endpoint}?" + urlencode(params, quote_via=quote)


def client(case: TestCase, tls: IPolicyForHTTPS | None = None) -> HTTPClient:
    """A treq client with its own pool, closed when the test ends."""
    pool = HTTPConnectionPool(reactor)
    _kit(case).closers.append(pool.closeCachedConnections)
    if tls is None:
        return HTTPClient(Agent(reactor, pool=pool))
    return HTTPClient(Agent(reactor, contextFactory=tls, pool=pool))
