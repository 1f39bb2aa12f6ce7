"""Answering one proxied request: fetch upstream, then rewrite a playlist or relay media."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.server import Request

from .bypass import carries_tokens, carry_tokens
from .cache import (
    ByteLru,
    Coalescer,
    PlaylistEntry,
    cache_directives,
    etag_for,
    etag_matches,
    playlist_ttl_s,
    with_ll_hls,
)
from .config import Config
from .errors import ProxyError, bad_gateway, gateway_timeout
from .fanout import FanOut, Handover, NotMedia, Opened, ResponseHead
from .forwarded import Forwarding
from .observe import ObservedRequest
from .playlist import UriKind, looks_like_playlist, playlist_info, rewrite_playlist
from .relay import BodyTap, Collector, Relay, decode_content
from .signing import Signer, StreamSpec, child_file_name
from .streams import Stream, StreamRegistry
from .urls import normalize_upstream_url

__all__ = ["PLAYLIST_TYPE", "SEGMENT_MAX_AGE_S", "NotPlaylist", "Proxy", "content_type_for"]

log = Logger()

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
_PLAYLIST_TYPES = frozenset(
    {"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl"}
)
_GENERIC_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "text/plain", "application/binary"}
)
_TYPE_BY_EXTENSION = {
    "ts": "video/mp2t", "m2ts": "video/mp2t", "mts": "video/mp2t",
    "m4s": "video/mp4", "mp4": "video/mp4", "m4v": "video/mp4", "cmfv": "video/mp4",
    "m4a": "audio/mp4", "cmfa": "audio/mp4", "mov": "video/quicktime",
    "aac": "audio/aac", "ac3": "audio/ac3", "ec3": "audio/eac3", "eac3": "audio/eac3",
    "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/ogg",
    "webm": "video/webm", "mkv": "video/x-matroska",
    "vtt": "text/vtt", "webvtt": "text/vtt", "srt": "application/x-subrip",
    "ttml": "application/ttml+xml", "json": "application/json",
    "key": "application/octet-stream", "m3u8": "application/vnd.apple.mpegurl",
}  # fmt: skip
# Upstream response headers a player needs to see, passed through unchanged.
_MEDIA_HEADERS = (
    b"content-length", b"content-range", b"accept-ranges", b"last-modified", b"etag",
    b"content-encoding", b"cache-control", b"expires",
)  # fmt: skip
# Characters an upstream URL may not carry as they are in a request line.
_UNSAFE_IN_URL = re.compile(r'[^\x21-\x7e]|["<>\\^`{|}]')


# Downstream max-age of a segment or key: its signed URL names one upstream object.
SEGMENT_MAX_AGE_S = 86400


class NotPlaylist(Handover):
    """The upstream answered a playlist request with media."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def content_type_for(upstream_type: str, file_name: str) -> str:
    """The type a player should see: the upstream's, unless it is generic or plainly
    wrong for the file (an mp4 init or fMP4 part sent as video/mp2t, which makes
    ExoPlayer and MX Player pick the wrong extractor); then the extension's."""
    essence = upstream_type.split(";", 1)[0].strip().lower()
    extension = file_name.rsplit(".", 1)[-1].lower()
    by_extension = _TYPE_BY_EXTENSION.get(extension)
    if essence in _GENERIC_TYPES:
        return by_extension or upstream_type or "application/octet-stream"
    if essence == "video/mp2t" and by_extension in ("video/mp4", "audio/mp4"):
        return by_extension
    return upstream_type


def _header(response: IResponse, name: bytes) -> str:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else ""


def _is_playlist_response(response: IResponse, head: bytes) -> bool:
    """Decide by the body's first bytes; by Content-Type only when the body is encoded."""
    if response.code == 206:
        return False  # a byte range of anything is relayed as it is
    essence = _header(response, b"content-type").split(";", 1)[0].strip().lower()
    if _header(response, b"content-encoding"):
        return essence in _PLAYLIST_TYPES
    if essence.startswith(("video/", "audio/")) and essence not in _PLAYLIST_TYPES:
        return False
    return looks_like_playlist(head)


class Proxy:
    """Fetches upstream for a stream and answers the client request."""

    def __init__(
        self, config: Config, clock: IReactorTime, registry: StreamRegistry, signer: Signer
    ) -> None:
        self._config = config
        self.bypass_by_default = config.bypass == "auto"
        self.hlsjs_url = config.hlsjs_url
        self.api_key = config.api_key
        self.forwarding = Forwarding(config.trusted_proxies, config.public_url)
        self._clock = clock
        self._registry = registry
        self._signer = signer
        segments: ByteLru[Any, Any] = ByteLru(
            clock, config.cache_size_bytes, config.cache_object_max_bytes
        )
        self.fanout = FanOut(clock, segments, silence_timeout_s=config.body_idle_timeout_s)
        self.playlists: ByteLru[Any, PlaylistEntry] = ByteLru(
            clock, config.playlist_cache_bytes, config.max_playlist_bytes
        )
        self._playlist_fetches: Coalescer[Any, PlaylistEntry] = Coalescer()

    async def _open(
        self, stream: Stream, url: str, method: bytes, extra: dict[bytes, bytes]
    ) -> tuple[IResponse, BodyTap, bytes]:
        """Send one upstream request; the response, its body held in a tap, and its first
        bytes (bounded by the body idle timeout: an upstream may send headers and stall).

        An upstream error status becomes the same status for the client (body dropped).
        """
        response = await stream.upstream.request(url, method, extra)
        tap = BodyTap()
        head_ready = tap.head_ready
        head_ready.addErrback(tap.discard_on_error)
        response.deliverBody(tap)
        if response.code >= 400:
            tap.discard()
            raise ProxyError(response.code, f"upstream answered {response.code}")
        timer = self._clock.callLater(self._config.body_idle_timeout_s, head_ready.cancel)
        try:
            head = await head_ready
        except CancelledError:
            if timer.active():
                raise  # the client left
            raise gateway_timeout("upstream body stalled before its first bytes") from None
        finally:
            if timer.active():
                timer.cancel()
        return response, tap, head

    async def serve(
        self,
        request: Request,
        spec: StreamSpec,
        url: str,
        kind: UriKind,
        require_playlist: bool = False,
    ) -> None:
        """Answer `request` with `url` of stream `spec`: a rewritten playlist or relayed media."""
        url = normalize_upstream_url(url)
        if isinstance(request, ObservedRequest):
            request.stream_id = spec.stream_id  # for the access log
        wants_playlist = require_playlist or kind is UriKind.PLAYLIST
        if wants_playlist:
            url = with_ll_hls(url, request.args or {})
        with self._registry.using(spec) as stream:
            handed: tuple[IResponse, BodyTap] | None = None
            try:
                if request.method == b"GET" and wants_playlist:
                    await self._serve_playlist(request, stream, url, require_playlist)
                    return
                if request.method == b"GET":
                    if await self._serve_shared(request, stream, url, kind):
                        return
            except Handover as other_kind:  # not what the URL's kind said: serve it as it is
                handed = other_kind.claim()
            if handed is None:
                method, extra = self._request_details(request, kind, require_playlist)
                response, tap, head = await self._open(stream, url, method, extra)
            else:
                response, tap = handed
                head = tap.head
            if require_playlist or _is_playlist_response(response, head):
                if request.method == b"HEAD" and not require_playlist:
                    pass  # a HEAD on a media URL is answered below from the headers alone
                else:
                    await self._answer_playlist(request, stream, response, tap, url, head)
                    return
            await self._relay_media(request, response, tap, url, kind)

    def _request_details(
        self, request: Request, kind: UriKind, require_playlist: bool
    ) -> tuple[bytes, dict[bytes, bytes]]:
        extra: dict[bytes, bytes] = {}
        if require_playlist or kind is UriKind.PLAYLIST:
            extra[b"accept-encoding"] = b"gzip"
            return b"GET", extra
        for name in (b"range", b"if-range"):
            value = request.getHeader(name)
            if value:
                extra[name] = value.encode("latin-1") if isinstance(value, str) else value
        method = b"HEAD" if request.method == b"HEAD" else b"GET"
        return method, extra

    async def _serve_shared(
        self, request: Request, stream: Stream, url: str, kind: UriKind
    ) -> bool:
        """Media and keys through the segment cache and the fan-out; False: not eligible."""
        key = (url, stream.spec.headers)  # not the stream id: same content, same entry
        range_value = request.getHeader(b"range")
        if range_value is not None:
            return await self.fanout.serve_range(request, key, _as_bytes(range_value))
        await self.fanout.serve(request, key, lambda: self._open_media(stream, url, kind))
        return True

    async def _open_media(self, stream: Stream, url: str, kind: UriKind) -> Opened:
        """One upstream GET for the fan-out: its head decided, its body held in a tap."""
        response, tap, head = await self._open(stream, url, b"GET", {})
        if _is_playlist_response(response, head):
            raise NotMedia(response, tap)
        return Opened(self._media_head(response, url, kind), tap)

    def _media_head(self, response: IResponse, url: str, kind: UriKind) -> ResponseHead:
        upstream_control = _header(response, b"cache-control")
        directives = cache_directives(upstream_control)
        ttl_s: float | None = None
        for name in ("s-maxage", "max-age"):
            if name in directives:
                try:
                    ttl_s = float(directives[name])
                except ValueError:
                    ttl_s = 0.0
                break
        private = bool({"no-store", "no-cache", "private"} & directives.keys())
        headers: list[tuple[bytes, tuple[bytes, ...]]] = []
        for header in _MEDIA_HEADERS:
            values = response.headers.getRawHeaders(header)
            if values and header not in (b"content-length", b"cache-control", b"expires"):
                headers.append((header, tuple(values)))
        file_name = child_file_name(url, kind)
        content_type = content_type_for(_header(response, b"content-type"), file_name)
        headers.append((b"content-type", (content_type.encode("latin-1"),)))
        # Signed child URLs are deterministic: a CDN in front may keep a segment for long.
        if private:
            downstream = upstream_control.encode("latin-1")
        elif ttl_s is not None and ttl_s < SEGMENT_MAX_AGE_S:
            downstream = b"max-age=%d" % max(0, int(ttl_s))
        else:
            downstream = b"public, max-age=%d" % SEGMENT_MAX_AGE_S
        headers.append((b"cache-control", (downstream,)))
        length = None if response.length == UNKNOWN_LENGTH else int(response.length)
        cacheable = response.code == 200 and not private and (ttl_s is None or ttl_s > 0)
        return ResponseHead(response.code, tuple(headers), length, cacheable, ttl_s)

    async def _serve_playlist(
        self, request: Request, stream: Stream, url: str, require_playlist: bool
    ) -> None:
        """A playlist from the micro-cache, or one coalesced upstream fetch of it."""
        key = (stream.spec, url)
        entry = self.playlists.get(key)
        if entry is None:
            entry = await self._playlist_fetches.run(
                key, lambda: self._fetch_playlist(key, stream, url, require_playlist)
            )
        if_none_match = request.getHeader(b"if-none-match")
        request.setHeader(b"etag", entry.etag)
        if entry.max_age_s >= 1:
            request.setHeader(b"cache-control", b"max-age=%d" % int(entry.max_age_s))
        else:
            request.setHeader(b"cache-control", b"no-cache")
        if if_none_match and etag_matches(_as_bytes(if_none_match), entry.etag):
            request.setResponseCode(304)
            request.finish()
            return
        request.setResponseCode(200)
        request.setHeader(b"content-type", PLAYLIST_TYPE)
        request.setHeader(b"content-length", b"%d" % len(entry.body))
        request.write(entry.body)
        request.finish()

    async def _fetch_playlist(
        self, key: Any, stream: Stream, url: str, require_playlist: bool
    ) -> PlaylistEntry:
        gzip = {b"accept-encoding": b"gzip"}
        response, tap, head = await self._open(stream, url, b"GET", gzip)
        if not require_playlist and not _is_playlist_response(response, head):
            raise NotPlaylist(response, tap)
        rewritten, body, final_url = await self._rewrite(stream, response, tap, url)
        info = playlist_info(body, final_url)
        upstream_control = _header(response, b"cache-control")
        ttl_s = playlist_ttl_s(info, upstream_control, self._config.playlist_cache_ttl_s)
        entry = PlaylistEntry(rewritten, etag_for(rewritten), ttl_s)
        if ttl_s > 0:
            self.playlists.put(key, entry, len(rewritten), ttl_s)
        if self._config.prefetch and info.is_live:
            for segment_url in info.segment_urls[-self._config.prefetch :]:
                self._prefetch(stream, segment_url)
        return entry

    def _prefetch(self, stream: Stream, url: str) -> None:
        """Warm the segment cache with `url` through the same coalescing path as viewers."""
        self.fanout.prefetch(
            (url, stream.spec.headers), lambda: self._open_media(stream, url, UriKind.MEDIA)
        )

    async def _rewrite(
        self, stream: Stream, response: IResponse, tap: BodyTap, url: str
    ) -> tuple[bytes, bytes, str]:
        """Collect, decode and rewrite a playlist body: (rewritten, original, final URL)."""
        max_bytes = self._config.max_playlist_bytes
        collector = Collector(self._clock, max_bytes, self._config.body_idle_timeout_s)
        tap.hand_over(collector)
        body = await collector.done
        body = decode_content(body, _header(response, b"content-encoding"), max_bytes)
        if not looks_like_playlist(body[:64]):
            raise bad_gateway("upstream did not return an HLS playlist (#EXTM3U missing)")
        final_url = response.request.absoluteURI.decode("ascii")  # after redirects
        stream_part = self._signer.stream_part(stream.spec)
        child_path = self._signer.child_path
        tokens_from = url if carries_tokens(stream.spec, url) else None

        def proxy_url(upstream_url: str, kind: UriKind) -> str:
            if tokens_from is not None:
                upstream_url = carry_tokens(tokens_from, upstream_url)
            if _UNSAFE_IN_URL.search(upstream_url):
                upstream_url = quote(upstream_url, safe="%:/?#[]@!$&'()*+,;=~")
            return child_path(stream_part, upstream_url, kind)

        return rewrite_playlist(body, final_url, proxy_url), body, final_url

    async def _answer_playlist(
        self,
        request: Request,
        stream: Stream,
        response: IResponse,
        tap: BodyTap,
        url: str,
        head: bytes,
    ) -> None:
        rewritten, _, _ = await self._rewrite(stream, response, tap, url)
        request.setResponseCode(200)
        request.setHeader(b"content-type", PLAYLIST_TYPE)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"%d" % len(rewritten))
        request.write(rewritten)
        request.finish()

    async def _relay_media(
        self, request: Request, response: IResponse, tap: BodyTap, url: str, kind: UriKind
    ) -> None:
        request.setResponseCode(response.code)
        for name in _MEDIA_HEADERS:
            values = response.headers.getRawHeaders(name)
            if values:
                request.responseHeaders.setRawHeaders(name, values)
        if response.length != UNKNOWN_LENGTH and request.method != b"HEAD":
            # The Agent keeps Content-Length out of response.headers (except for HEAD).
            request.setHeader(b"content-length", b"%d" % response.length)
        file_name = child_file_name(url, kind)
        content_type = content_type_for(_header(response, b"content-type"), file_name)
        request.setHeader(b"content-type", content_type.encode("latin-1"))
        relay = Relay(request, self._clock, self._config.body_idle_timeout_s)
        done: Deferred[None] = relay.done
        tap.hand_over(relay)
        await done
