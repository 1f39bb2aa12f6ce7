"""Answers for the JSON documents of the newest HLS: asset lists and steering manifests.

A child URL of kind ASSET_LIST or STEERING is fetched, collected (capped like a
playlist), rewritten by `manifests.py` so every URI in it goes through the proxy, and
answered as `application/json`. Never cached: both are made per viewer (the player
adds `_HLS_primary_id`, `_HLS_pathway`, `_HLS_throughput`, which reach the upstream).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from ._http import header_text
from .bodies import CappedBody, decode_content, open_upstream
from .config import Config
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
        rewritten = rewrite(body, final_url, self._child_urls(stream, url, None))
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"%d" % len(rewritten))
        if request.method != b"HEAD":
            request.write(rewritten)
        request.finish()
