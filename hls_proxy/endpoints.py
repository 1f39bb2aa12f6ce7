"""Endpoint base classes: CORS, preflight, HEAD, one error renderer, and proxied answers.

Shared by the resource tree (resources.py) and the channel-list endpoints (lists.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ._http import as_bytes, render_error
from .errors import ProxyError, forbidden
from .exposure import PROXIED_HEADERS, CorsPolicy
from .metrics import endpoint_of
from .observe import ObservedRequest
from .serving import Dispatcher
from .signing import BadSignature, ChildTarget, Signer
from .target import Target

__all__ = ["Endpoint", "Proxied", "SignedChild", "query_of", "render_error", "run"]

log = Logger()

_EXPOSED_HEADERS = (
    b"Content-Length, Content-Range, Accept-Ranges, Content-Type, ETag, Last-Modified"
)
_PREFLIGHT_HEADERS = {
    b"access-control-allow-methods": b"GET, HEAD, OPTIONS",
    b"access-control-max-age": b"86400",
}


def query_of(request: Request) -> str:
    uri = request.uri.decode("latin-1")
    return uri.partition("?")[2]


class Endpoint(Resource):
    """A leaf with CORS on every answer, an OPTIONS preflight, and HEAD where GET works."""

    isLeaf = True
    cors = CorsPolicy()  # build_root sets the configured one on each endpoint

    def render(self, request: Request) -> bytes | int:
        allowed = self.cors.allowed_origin(request)
        if allowed is not None:
            request.setHeader(b"access-control-allow-origin", allowed)
            request.setHeader(b"access-control-expose-headers", _EXPOSED_HEADERS)
        if allowed != b"*":
            request.setHeader(b"vary", b"Origin")
        if request.method == b"OPTIONS":
            for name, value in _PREFLIGHT_HEADERS.items():
                request.setHeader(name, value)
            asked = request.getHeader(b"access-control-request-headers")
            request.setHeader(b"access-control-allow-headers", asked or b"Range, Content-Type")
            request.setResponseCode(204)
            return b""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD, OPTIONS")
            render_error(request, 405, "method not allowed")
            return NOT_DONE_YET
        return self.render_GET(request)

    def render_GET(self, request: Request) -> bytes | int:
        raise NotImplementedError


def run(request: Request, work: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run `work` for `request`; a client that leaves cancels it (and its upstream)."""
    d = Deferred.fromCoroutine(work())
    request.notifyFinish().addErrback(lambda _: d.cancel())

    def failed(failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        if failure.check(ProxyError):
            error = failure.value
            assert isinstance(error, ProxyError)
            render_error(request, error.status, error.message)
            return
        # A bug: answer 500, log it with the stream id (never the path: it holds tokens).
        log.failure(
            "unexpected error answering {endpoint} for stream {stream_id}",
            failure,
            endpoint=endpoint_of(request.path),
            stream_id=getattr(request, "stream_id", "-"),
        )
        render_error(request, 500, "internal error (logged)")

    d.addErrback(failed)
    return NOT_DONE_YET


class Proxied(Endpoint):
    """An endpoint that answers with upstream bytes: never as the proxy's own page."""

    def __init__(self, dispatcher: Dispatcher, instance_id: str) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._via_token = f"hlsproxy-{instance_id}"

    def render_GET(self, request: Request) -> int:
        for name, value in PROXIED_HEADERS:
            request.setHeader(name, value)

        async def work() -> None:
            if request.getHeader(b"service-worker") is not None:
                raise forbidden("proxied content cannot be registered as a service worker")
            via = request.getHeader(b"via")
            if via is not None and self._via_token in as_bytes(via).decode("latin-1"):
                raise ProxyError(508, "loop detected: this request came through this proxy")
            target = self.target(request)
            if isinstance(request, ObservedRequest):
                request.stream_id = target.stream.stream_id  # for the access log
            await self._dispatcher.serve(request, target)

        return run(request, work)

    def target(self, request: Request) -> Target:
        raise NotImplementedError


class SignedChild(Proxied):
    """A proxied endpoint whose path is a sealed child URL (`/p/…`, `/c/…`)."""

    def __init__(self, dispatcher: Dispatcher, instance_id: str, signer: Signer) -> None:
        super().__init__(dispatcher, instance_id)
        self._signer = signer

    def verified(self, request: Request) -> ChildTarget:
        """The child the path names; 403 (before any fetch) unless it is intact."""
        segments = [part.decode("latin-1") for part in request.postpath or []]
        try:
            return self._signer.verify(segments)
        except BadSignature as error:
            raise forbidden(str(error)) from None
