"""One stream's HTTP client: its headers, cookie jar and upstream slots, over an agent.

The agent is given (service.py builds `Agent.usingEndpointFactory(guard, pool)` with
the stream's own pool; tests give a recording one). On top of it we follow redirects
and keep cookies ourselves rather than use treq's HTTPClient or Twisted's
BrowserLikeRedirectAgent and CookieAgent: treq always asks for gzip and decodes it
(segments and Range relays must be byte-exact), and neither keeps credentials with
their origin across a redirect nor refuses a redirect to gopher: (redirects.py).
Every hop goes through the agent, so through the SSRF guard.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, NoReturn

from OpenSSL import SSL
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, fail, succeed
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IProtocol, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web.client import (
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from .cookies import Origin, StreamCookies, origin_of
from .errors import ProxyError, bad_gateway, gateway_timeout
from .redirects import redirect_target, split_userinfo, too_many_redirects
from .tokens import append_query

__all__ = ["HOP_BY_HOP", "Upstream", "new_instance_id", "split_userinfo"]

# Never forwarded upstream from h_ params: they describe this hop, not the stream.
HOP_BY_HOP = frozenset(
    "host connection keep-alive proxy-connection transfer-encoding te trailer upgrade "
    "content-length proxy-authorization proxy-authenticate expect".split()
)

# Sent only to the origin they were given for (redirects.py).
_CREDENTIALS = (b"authorization", b"cookie")
# A child refused with one of these is tried once more with its candidate tokens.
_REFUSED = (401, 403, 410)
_TOKEN_ORIGINS_MAX = 64


def new_instance_id() -> str:
    """A random token naming this proxy in `Via`, so it can tell its own requests."""
    return secrets.token_hex(8)


def _as_proxy_error(error: Exception) -> Exception:
    """Map what the agent raised to the answer the client gets."""
    if isinstance(error, ProxyError):
        return error
    if isinstance(error, (ResponseFailed, ResponseNeverReceived)):
        for reason in error.reasons:
            if reason.check(ProxyError):
                return reason.value  # type: ignore[no-any-return]
            if reason.check(SSL.Error):
                return bad_gateway("upstream TLS failed (certificate not trusted?)")
        return bad_gateway("upstream closed the connection")
    if isinstance(error, ConnectTimeout):
        return gateway_timeout("upstream timed out")
    if isinstance(error, CancelledError):
        return error  # the client went away; nobody is left to answer
    if isinstance(error, DNSLookupError):
        return bad_gateway("upstream host not found")
    if isinstance(error, ConnectError):
        return bad_gateway(f"upstream unreachable: {error.__class__.__name__}")
    return bad_gateway(f"upstream failed: {error.__class__.__name__}")


_DONE = Failure(ResponseDone())


class _ReleaseOnEnd(Protocol):
    """Passes a body through to `inner`, and gives the stream's slot back when it ends."""

    def __init__(self, inner: IProtocol, release: Callable[[], object]) -> None:
        self._inner = inner
        self._release: Callable[[], object] | None = release

    def makeConnection(self, transport: ITransport) -> None:
        self.transport = transport
        self._inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        self._inner.connectionLost(reason)


class _SlotHoldingResponse(proxyForInterface(IResponse)):  # type: ignore[misc]
    """The response, whose body gives the stream's upstream slot back when it ends."""

    def __init__(self, original: IResponse, release: Callable[[], object]) -> None:
        super().__init__(original)
        self._release = release

    def deliverBody(self, protocol: IProtocol) -> None:
        self.original.deliverBody(_ReleaseOnEnd(protocol, self._release))


class _Drain(Protocol):
    """Reads a body nobody needs (a redirect's, a refused attempt's) so its connection
    can go back to the pool; a long one is cut instead."""

    def __init__(self, limit_bytes: int = 64 * 1024) -> None:
        self._left = limit_bytes

    def dataReceived(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left < 0 and self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]


def _discard_body(response: IResponse) -> None:
    response.deliverBody(_Drain())


def _slot_timeout(result: object, timeout: float) -> NoReturn:
    raise ProxyError(503, "too many upstream requests for this stream")


def _header_timeout(result: object, timeout: float) -> NoReturn:
    raise gateway_timeout("upstream timed out")


class Upstream:
    """Makes a stream's upstream requests with its headers, cookies and agent."""

    def __init__(
        self,
        clock: IReactorTime,
        agent: IAgent,
        headers: tuple[tuple[str, str], ...],
        *,
        timeout_s: float,
        max_redirects: int,
        user_agent: str,
        instance_id: str,
        derived: frozenset[str] = frozenset(),
        on_outcome: Callable[[int | None, Exception | None], None] = lambda status, error: None,
        max_concurrent: int = 32,
        pool: HTTPConnectionPool | None = None,
    ) -> None:
        # A cap on this stream's simultaneous upstream requests, bodies included.
        self._slots = DeferredSemaphore(max_concurrent)
        self._on_outcome = on_outcome
        self._clock = clock
        self._agent = agent
        self._pool = pool
        # Headers we guessed (bypass.py), not the user: dropped if the upstream refuses
        # them, and whatever worked is remembered for the rest of the stream.
        self._derived = derived
        self._send_derived = True
        # Origins of this stream that refused a child without its playlist's tokens and
        # took it with them: later children there get them at once (tokens.py).
        self._token_origins: set[Origin] = set()
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self.cookies = StreamCookies()
        self._fixed_cookie = "; ".join(value for name, value in headers if name == "cookie")
        self._headers = Headers()
        for name, value in headers:
            if name not in HOP_BY_HOP and name != "cookie":
                self._headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        if not self._headers.hasHeader(b"user-agent"):
            self._headers.setRawHeaders(b"user-agent", [user_agent.encode("latin-1")])
        via = f"1.1 hlsproxy-{instance_id}".encode("ascii")
        self._headers.setRawHeaders(b"via", [*self._headers.getRawHeaders(b"via", []), via])

    async def request(
        self,
        url: str,
        method: bytes = b"GET",
        extra: dict[bytes, bytes] | None = None,
        carry: str = "",
    ) -> IResponse:
        """Send a request; the response arrives with its body not yet read.

        Time to headers is bounded by the stream's timeout; errors come out as
        ProxyError with the status the client should get. `url` may carry user:pass@,
        sent as Basic authorization to that origin only. `carry`: token parameters to
        append if the origin refuses `url` as written (then remembered for its origin).
        """
        if carry and origin_of(url) in self._token_origins:
            url, carry = append_query(url, carry), ""
        response = await self._send(url, method, extra, self._send_derived)
        if carry and response.code in _REFUSED:
            _discard_body(response)
            origin = origin_of(url)
            url = append_query(url, carry)
            response = await self._send(url, method, extra, self._send_derived)
            if response.code not in _REFUSED:
                if len(self._token_origins) >= _TOKEN_ORIGINS_MAX:
                    self._token_origins.clear()
                self._token_origins.add(origin)
        if response.code in (401, 403) and self._derived:
            _discard_body(response)
            retry = await self._send(url, method, extra, not self._send_derived)
            if retry.code not in (401, 403):
                self._send_derived = not self._send_derived
            return retry
        return response

    async def _send(
        self, url: str, method: bytes, extra: dict[bytes, bytes] | None, send_derived: bool
    ) -> IResponse:
        """One request, holding one of the stream's upstream slots until its body ends."""
        waiting = self._slots.acquire()
        waiting.addTimeout(self._timeout_s, self._clock, onTimeoutCancel=_slot_timeout)
        await waiting
        try:
            response = await self._send_now(url, method, extra, send_derived)
        except BaseException:
            self._slots.release()
            raise
        return _SlotHoldingResponse(response, self._slots.release)

    async def _send_now(
        self, url: str, method: bytes, extra: dict[bytes, bytes] | None, send_derived: bool
    ) -> IResponse:
        headers = self._headers.copy()
        if not send_derived:
            for derived_name in self._derived:
                headers.removeHeader(derived_name.encode("latin-1"))
        for name, value in (extra or {}).items():
            headers.setRawHeaders(name, [value])
        following = Deferred.fromCoroutine(self._follow(url, method, headers))
        following.addTimeout(self._timeout_s, self._clock, onTimeoutCancel=_header_timeout)
        try:
            response: IResponse = await following
        except Exception as error:
            mapped = _as_proxy_error(error)
            if not isinstance(mapped, CancelledError):
                self._on_outcome(None, mapped)
            raise mapped from None
        self._on_outcome(response.code, None)
        return response

    async def _follow(self, url: str, method: bytes, headers: Headers) -> IResponse:
        """The request and its redirects; credentials only while on the first origin."""
        url, basic = split_userinfo(url)
        if basic is not None:
            headers.setRawHeaders(b"authorization", [basic.encode("latin-1")])
        home = origin_of(url)
        at_home = True
        for _ in range(self._max_redirects + 1):
            at_home = at_home and origin_of(url) == home
            response = await self._hop(url, method, headers, at_home)
            target = redirect_target(url, response)
            if target is None:
                return response
            _discard_body(response)
            url = target
        raise too_many_redirects()

    async def _hop(self, url: str, method: bytes, headers: Headers, at_home: bool) -> IResponse:
        hop_headers = headers.copy()
        if not at_home:  # once a redirect left the origin, its credentials stay behind
            for name in _CREDENTIALS:
                hop_headers.removeHeader(name)
        cookie = self.cookies.header(
            url, self._fixed_cookie if at_home else "", only_setter=not at_home
        )
        if cookie:
            hop_headers.setRawHeaders(b"cookie", [cookie.encode("latin-1", "replace")])
        response: IResponse = await _request(self._agent, method, url, hop_headers)
        self.cookies.store(url, response.headers.getRawHeaders(b"set-cookie", []))
        if not 100 <= response.code <= 599:
            _discard_body(response)
            raise bad_gateway(f"upstream answered an invalid status {response.code}")
        return response

    def close(self) -> Deferred[None]:
        """Close idle pooled connections (in-flight ones finish on their own)."""
        if self._pool is None:
            return succeed(None)
        closing: Deferred[None] = self._pool.closeCachedConnections()
        return closing


def _request(agent: IAgent, method: bytes, url: str, headers: Headers) -> Deferred[Any]:
    """agent.request, with what it raises synchronously (an endpoint factory refusing the
    host) as the Deferred's failure like everything else."""
    try:
        return agent.request(method, url.encode("ascii"), headers)
    except Exception:
        return fail()
