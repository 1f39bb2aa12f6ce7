"""The resource tree: HTTP in, calls out, errors rendered. No proxy logic lives here."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from . import __version__
from ._http import abort_client, as_bytes
from .access import require_api_key
from .bypass import entry_stream
from .config import Config
from .errors import ProxyError, forbidden
from .exposure import PROXIED_HEADERS, CorsPolicy, page_policy
from .forwarded import Forwarding
from .metrics import Metrics, endpoint_of
from .observe import ObservedRequest
from .playlist import UriKind
from .serving import Dispatcher
from .signing import BadSignature, Signer
from .streams import StreamRegistry
from .target import Target
from .urls import parse_entry_query
from .webpage import Assets, Page

__all__ = ["build_root"]

log = Logger()

_EXPOSED_HEADERS = (
    b"Content-Length, Content-Range, Accept-Ranges, Content-Type, ETag, Last-Modified"
)
_PREFLIGHT_HEADERS = {
    b"access-control-allow-methods": b"GET, HEAD, OPTIONS",
    b"access-control-max-age": b"86400",
}


def _query(request: Request) -> str:
    uri = request.uri.decode("latin-1")
    return uri.partition("?")[2]


def render_error(request: Request, status: int, message: str) -> None:
    """Answer with a one-line message, or abort if the body had already begun."""
    if request.channel is None or request.finished:
        return
    if request.startedWriting:
        abort_client(request)
        return
    body = message.encode("utf-8", "replace") + b"\n"
    request.setResponseCode(status)
    request.responseHeaders.removeHeader(b"content-length")
    request.responseHeaders.removeHeader(b"content-range")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


class _Endpoint(Resource):
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


def _run(request: Request, work: Callable[[], Coroutine[Any, Any, None]]) -> int:
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


class _Proxied(_Endpoint):
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

        return _run(request, work)

    def target(self, request: Request) -> Target:
        raise NotImplementedError


class _Entry(_Proxied):
    """`/playlist.m3u8?url=` (a playlist is required) and `/stream?url=` (anything)."""

    def __init__(
        self, dispatcher: Dispatcher, instance_id: str, config: Config, require_playlist: bool
    ) -> None:
        super().__init__(dispatcher, instance_id)
        self._api_key = config.api_key
        self._bypass_by_default = config.bypass == "auto"
        self._require_playlist = require_playlist

    def target(self, request: Request) -> Target:
        require_api_key(request, self._api_key)
        entry = parse_entry_query(_query(request))
        spec = entry_stream(entry, self._bypass_by_default)
        kind = UriKind.PLAYLIST if self._require_playlist else UriKind.MEDIA
        return Target(spec, entry.url, kind, strict=self._require_playlist)


class _Child(_Proxied):
    """`/p/...`: a signed child URL minted by a rewrite."""

    def __init__(self, dispatcher: Dispatcher, instance_id: str, signer: Signer) -> None:
        super().__init__(dispatcher, instance_id)
        self._signer = signer

    def target(self, request: Request) -> Target:
        segments = [part.decode("latin-1") for part in request.postpath or []]
        try:
            child = self._signer.verify(segments)
        except BadSignature as error:
            raise forbidden(str(error)) from None
        return Target(child.stream, child.url, child.kind, child=child)


class _Health(_Endpoint):
    def __init__(self, clock: IReactorTime, registry: StreamRegistry) -> None:
        super().__init__()
        self._clock = clock
        self._registry = registry
        self._started_s = clock.seconds()

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        draining = bool(getattr(request.site, "draining", False))
        if draining:  # a load balancer should stop sending new viewers here
            request.setResponseCode(503)
        status = {
            "status": "draining" if draining else "ok",
            "version": __version__,
            "uptime_s": round(self._clock.seconds() - self._started_s, 3),
            "streams": len(self._registry),
            "pid": os.getpid(),  # which worker answered (--workers)
        }
        return json.dumps(status).encode("ascii")


class _NotFound(_Endpoint):
    def render_GET(self, request: Request) -> int:
        render_error(request, 404, "not found")
        return NOT_DONE_YET


class _Root(Resource):
    def __init__(self, children: dict[bytes, IResource]) -> None:
        super().__init__()
        self._children_by_name = children
        self._not_found = _NotFound()

    def getChild(self, path: bytes, request: Request) -> IResource:
        return self._children_by_name.get(path, self._not_found)


class _Metrics(_Endpoint):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return self._metrics.render()


def build_root(
    config: Config,
    dispatcher: Dispatcher,
    signer: Signer,
    registry: StreamRegistry,
    clock: IReactorTime,
    forwarding: Forwarding,
    instance_id: str,
    metrics: Metrics | None = None,
) -> Resource:
    """The whole public URL space of the proxy."""
    playlist = _Entry(dispatcher, instance_id, config, require_playlist=True)
    stream = _Entry(dispatcher, instance_id, config, require_playlist=False)
    page_csp = page_policy(config.hlsjs_url, config.public_url)
    children: dict[bytes, IResource] = {
        b"": Page(config.hlsjs_url, forwarding, page_csp),
        b"assets": Assets(),
        b"playlist.m3u8": playlist,
        b"playlist": playlist,
        b"stream": stream,
        b"mx": stream,
        b"p": _Child(dispatcher, instance_id, signer),
        b"health": _Health(clock, registry),
        b"metrics": _Metrics(metrics or Metrics()),
    }
    from .lists import list_routes  # lists.py builds on the endpoints defined here

    children.update(
        list_routes(config, dispatcher, signer, registry, clock, forwarding, instance_id)
    )
    cors = CorsPolicy(config.cors_origins)
    for child in children.values():
        if isinstance(child, _Endpoint):
            child.cors = cors
    return _Root(children)
