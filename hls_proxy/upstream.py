"""One stream's HTTP client: its own connection pool, cookie jar and headers.

We build the Agent stack ourselves rather than use treq's HTTPClient for two reasons
that matter to a proxy: treq always asks for gzip and decodes it (segments and Range
relays must be byte-exact), and it fixes the redirect limit at 20. The stack is
BrowserLikeRedirectAgent -> CookieAgent -> fixed cookies -> Agent(guard, pool), so
every redirect hop goes through the SSRF guard and sends and stores cookies.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookiejar import CookieJar

from OpenSSL import SSL
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IDelayedCall, IProtocol, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikeRedirectAgent,
    CookieAgent,
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    _HTTP11ClientFactory,
)
from twisted.web.error import InfiniteRedirection, RedirectWithNoLocation
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from .errors import ProxyError, bad_gateway, gateway_timeout

__all__ = ["HOP_BY_HOP", "Upstream"]

# Never forwarded upstream from h_ params: they describe this hop, not the stream.
HOP_BY_HOP = frozenset(
    "host connection keep-alive proxy-connection transfer-encoding te trailer upgrade "
    "content-length proxy-authorization proxy-authenticate expect".split()
)


def _merge_cookie_headers(fixed: str, from_jar: str) -> str:
    """The user's h_cookie pairs, overridden by what the upstream has set since."""
    pairs: dict[str, str] = {}
    for header in (fixed, from_jar):
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if name:
                pairs[name] = value if sep else ""
    return "; ".join(f"{name}={value}" for name, value in pairs.items())


@implementer(IAgent)
class _FixedCookieAgent:
    """Adds the stream's own Cookie (from h_cookie) to every request, merged with the jar's."""

    def __init__(self, agent: IAgent, cookie: str) -> None:
        self._agent = agent
        self._cookie = cookie

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        headers = headers.copy() if headers is not None else Headers()
        from_jar = b"; ".join(headers.getRawHeaders(b"cookie", [])).decode("latin-1")
        headers.setRawHeaders(
            b"cookie", [_merge_cookie_headers(self._cookie, from_jar).encode("latin-1")]
        )
        return self._agent.request(method, uri, headers, bodyProducer)


def _as_proxy_error(error: Exception, timed_out: bool) -> Exception:
    """Map what the Agent raised to the answer the client gets."""
    if isinstance(error, (ResponseFailed, ResponseNeverReceived)):
        # Redirect failures arrive wrapped; the first reason says what happened.
        for reason in error.reasons:
            if reason.check(InfiniteRedirection, RedirectWithNoLocation, ProxyError):
                return _as_proxy_error(reason.value, timed_out)
            if reason.check(SSL.Error):
                return bad_gateway("upstream TLS failed (certificate not trusted?)")
    if isinstance(error, ProxyError):
        return error
    if timed_out or isinstance(error, ConnectTimeout):
        return gateway_timeout("upstream timed out")
    if isinstance(error, CancelledError):
        return error  # the client went away; nobody is left to answer
    if isinstance(error, DNSLookupError):
        return bad_gateway("upstream host not found")
    if isinstance(error, ConnectError):
        return bad_gateway(f"upstream unreachable: {error.__class__.__name__}")
    if isinstance(error, InfiniteRedirection):
        return bad_gateway("too many upstream redirects")
    if isinstance(error, RedirectWithNoLocation):
        return bad_gateway("upstream redirect without Location")
    if isinstance(error, ResponseFailed):
        return bad_gateway("upstream closed the connection")
    return bad_gateway(f"upstream failed: {error.__class__.__name__}")


class _QuietClientFactory(_HTTP11ClientFactory):
    # Every pooled connection would log "Starting/Stopping factory" at info level.
    noisy = False


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietClientFactory


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


class _Discard(Protocol):
    """Closes a body nobody will read (a refused attempt that is retried)."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


def _discard_body(response: IResponse) -> None:
    response.deliverBody(_Discard())


class Upstream:
    """Makes a stream's upstream requests with its headers, cookies and pool."""

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint_factory: IAgentEndpointFactory,
        headers: tuple[tuple[str, str], ...],
        *,
        pool_size: int,
        timeout_s: float,
        max_redirects: int,
        user_agent: str,
        derived: frozenset[str] = frozenset(),
        on_outcome: Callable[[int | None, Exception | None], None] = lambda status, error: None,
        max_concurrent: int = 32,
    ) -> None:
        # A cap on this stream's simultaneous upstream requests, bodies included.
        self._slots = DeferredSemaphore(max_concurrent)
        self._on_outcome = on_outcome
        self._reactor = reactor
        # Headers we guessed (bypass.py), not the user: dropped if the upstream refuses
        # them, and whatever worked is remembered for the rest of the stream.
        self._derived = derived
        self._send_derived = True
        self._timeout_s = timeout_s
        self.pool = _QuietPool(reactor)
        self.pool.maxPersistentPerHost = pool_size
        self.pool.retryAutomatically = False  # a retried GET could double-count a live edge
        self.cookies = CookieJar()
        fixed_cookie = "; ".join(value for name, value in headers if name == "cookie")
        agent: IAgent = Agent.usingEndpointFactory(reactor, endpoint_factory, pool=self.pool)
        if fixed_cookie:
            agent = _FixedCookieAgent(agent, fixed_cookie)
        agent = CookieAgent(agent, self.cookies)
        self._agent = BrowserLikeRedirectAgent(agent, redirectLimit=max_redirects)
        self._headers = Headers()
        for name, value in headers:
            if name not in HOP_BY_HOP and name != "cookie":
                self._headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        if not self._headers.hasHeader(b"user-agent"):
            self._headers.setRawHeaders(b"user-agent", [user_agent.encode("latin-1")])

    async def request(
        self, url: str, method: bytes = b"GET", extra: dict[bytes, bytes] | None = None
    ) -> IResponse:
        """Send a request; the response arrives with its body not yet read.

        Time to headers is bounded by the stream's timeout; errors come out as
        ProxyError with the status the client should get.
        """
        response = await self._send(url, method, extra, self._send_derived)
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
        timer = self._reactor.callLater(self._timeout_s, waiting.cancel)
        try:
            await waiting
        except CancelledError:
            if timer.active():  # the client left while we waited
                raise
            raise ProxyError(503, "too many upstream requests for this stream") from None
        finally:
            if timer.active():
                timer.cancel()
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
        d = self._agent.request(method, url.encode("ascii"), headers)
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        timer: IDelayedCall = self._reactor.callLater(self._timeout_s, on_timeout)
        try:
            response: IResponse = await d
        except Exception as error:
            mapped = _as_proxy_error(error, timed_out)
            if not isinstance(mapped, CancelledError):
                self._on_outcome(None, mapped)
            raise mapped from None
        finally:
            if timer.active():
                timer.cancel()
        self._on_outcome(response.code, None)
        return response

    def close(self) -> Deferred[None]:
        """Close idle pooled connections (in-flight ones finish on their own)."""
        closing: Deferred[None] = self.pool.closeCachedConnections()
        return closing
