"""Real loopback servers for integration tests: a recording origin and the real proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from hls_proxy.config import Config
from hls_proxy.service import build_site

reactor: Any = _reactor

__all__ = [
    "OriginRequest",
    "RecordingResource",
    "client",
    "listen",
    "proxied_url",
    "start_origin",
    "start_proxy",
]


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


def _settle_at_the_end(case: TestCase) -> None:
    """Registered first, so it runs last: lets closed sockets finish closing on both ends."""
    if not getattr(case, "_hlsproxy_settles", False):
        case._hlsproxy_settles = True  # type: ignore[attr-defined]
        case.addCleanup(later, 0.02)


def _close_soon(close: Callable[[], Deferred[Any]]) -> Deferred[Any]:
    """Close a pool after a turn: a finished response returns its connection a turn late."""
    return later(0.01).addCallback(lambda _: close())


def listen(case: TestCase, resource: IResource) -> str:
    """Serve `resource` on 127.0.0.1 (a free port) until the test ends; the base URL."""
    _settle_at_the_end(case)
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
    _settle_at_the_end(case)
    config = Config(**settings)
    parts = build_site(config, reactor)
    site, registry = parts.site, parts.registry
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    case.addCleanup(_close_soon, registry.close_all)
    case.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"


def proxied_url(proxy: str, upstream: str, endpoint: str = "playlist.m3u8", **headers: str) -> str:
    """`proxy/endpoint?url=<upstream>&h_<name>=<value>`, percent-encoded."""
    params = [("url", upstream)] + [
        ("h_" + name.replace("_", "-"), value) for name, value in headers.items()
    ]
    return f"{proxy}/{endpoint}?" + urlencode(params, quote_via=quote)


def client(case: TestCase) -> HTTPClient:
    """A treq client with its own pool, closed when the test ends."""
    _settle_at_the_end(case)
    pool = HTTPConnectionPool(reactor)
    case.addCleanup(_close_soon, pool.closeCachedConnections)
    return HTTPClient(Agent(reactor, pool=pool))


def later(seconds: float, call: Callable[[], Any] = lambda: None) -> Deferred[Any]:
    """A Deferred that fires after `seconds` (for polling bounded conditions)."""
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, call)
