"""Answers for the JSON documents of the newest HLS: asset lists and steering manifests.

A child URL of kind ASSET_LIST or STEERING is fetched, collected (capped like a
playlist), rewritten by `manifests.py` so every URI in it goes through the proxy, and
answered as `application/json`. Never cached: both are made per viewer (the player
adds `_HLS_primary_id`, `_HLS_pathway`, `_HLS_throughput`, which reach the upstream).

The URIs in these answers are absolute (`http://proxy/p/...`), unlike a playlist's
path-absolute ones: hls.js reads an asset list's URIs with `new URL(uri)`, no base, and
a path-absolute one then loses its `_HLS_primary_id` and is resolved against the
page's address instead of the proxy's. The origin is `--public-url`, X-Forwarded-* from
a trusted proxy, or the request's own Host; each answer is made for its request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from ._http import header_text
from .bodies import CappedBody, decode_content, open_upstream
from .config import Config
from .forwarded import Forwarding
from .manifests import rewrite_asset_list, rewrite_steering_manifest
from .playlist import ProxyUrl, UriKind
from .playlists import with_ll_hls
from .streams import Stream
from .target import Target

__all__ = ["JSON_KINDS", "ManifestAnswers"]

JSON_KINDS = frozenset({UriKind.ASSET_LIST, UriKind.STEERING})
_REWRITERS = {
    UriKind.ASSET_LIST: rewrite_asset_list,
    UriKind.STEERING: rewrite_steering_manifest,
}
ChildUrls = Callable[[Stream, str, Mapping[str, str] | None], ProxyUrl]


class ManifestAnswers:
    """Fetches, rewrites and answers one asset list or steering manifest."""

    def __init__(self, config: Config, clock: IReactorTime, child_urls: ChildUrls) -> None:
        self._config = config
        self._clock = clock
        self._child_urls = child_urls
        self._forwarding = Forwarding(config.trusted_proxies, config.public_url)

    async def serve(self, request: Request, stream: Stream, target: Target) -> None:
        url = with_ll_hls(target.url, request.args or {})
        idle_s = self._config.body_idle_timeout_s
        gzip = {b"accept-encoding": b"gzip"}
        answer = await open_upstream(stream, url, b"GET", gzip, self._clock, idle_s)
        max_bytes = self._config.max_playlist_bytes
        collector = CappedBody(self._clock, max_bytes, idle_s)
        answer.body.hand_over(collector)
        body = await collector.done
        encoding = header_text(answer.response.headers, b"content-encoding")
        body = decode_content(body, encoding, max_bytes)
        final_url = answer.response.request.absoluteURI.decode("ascii")  # after redirects
        rewrite = _REWRITERS[target.kind]
        child_path = self._child_urls(stream, url, None)
        origin = self._forwarding.request_base(request)  # "": path-absolute URLs

        def proxy_url(upstream_url: str, kind: UriKind) -> str:
            return origin + child_path(upstream_url, kind)

        rewritten = rewrite(body, final_url, proxy_url)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"%d" % len(rewritten))
        if request.method != b"HEAD":
            request.write(rewritten)
        request.finish()
