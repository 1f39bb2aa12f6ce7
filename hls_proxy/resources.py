"""The resource tree: HTTP in, calls out, errors rendered. No proxy logic lives here."""

from __future__ import annotations

import json
import os

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from . import __version__
from .access import require_api_key
from .bypass import entry_stream
from .config import Config
from .endpoints import Endpoint, Proxied, SignedChild, query_of, render_error
from .exposure import CorsPolicy, page_policy
from .forwarded import Forwarding
from .lists import list_routes
from .metrics import Metrics
from .playlist import UriKind
from .serving import Dispatcher
from .signing import Signer
from .streams import StreamRegistry
from .target import Target
from .urls import parse_entry_query
from .webpage import Assets, Page

__all__ = ["build_root"]

log = Logger()


class _Entry(Proxied):
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
        entry = parse_entry_query(query_of(request))
        spec = entry_stream(entry, self._bypass_by_default)
        kind = UriKind.PLAYLIST if self._require_playlist else UriKind.MEDIA
        return Target(spec, entry.url, kind, strict=self._require_playlist)


class _Child(SignedChild):
    """`/p/...`: a sealed child URL minted by a rewrite."""

    def target(self, request: Request) -> Target:
        child = self.verified(request)
        return Target(child.stream, child.url, child.kind, child=child)


class _Health(Endpoint):
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


class _NotFound(Endpoint):
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


class _Metrics(Endpoint):
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
    children.update(
        list_routes(config, dispatcher, signer, registry, clock, forwarding, instance_id)
    )
    cors = CorsPolicy(config.cors_origins)
    for child in children.values():
        if isinstance(child, Endpoint):
            child.cors = cors
    return _Root(children)
