"""Answering one proxied request: fetch upstream, then rewrite a playlist or relay media."""

from __future__ import annotations

import re
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.server import Request

from .config import Config
from .errors import ProxyError, bad_gateway
from .playlist import UriKind, looks_like_playlist, rewrite_playlist
from .relay import BodyTap, Collector, Relay, decode_content
from .signing import Signer, StreamSpec, child_file_name
from .streams import Stream, StreamRegistry
from .urls import normalize_upstream_url

__all__ = ["PLAYLIST_TYPE", "Proxy", "content_type_for"]

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
    "m4s": "video/iso.segment", "mp4": "video/mp4", "m4v": "video/mp4", "cmfv": "video/mp4",
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


def content_type_for(upstream_type: str, file_name: str) -> str:
    """The upstream's type unless it is generic, then the one the extension says."""
    essence = upstream_type.split(";", 1)[0].strip().lower()
    if essence not in _GENERIC_TYPES:
        return upstream_type
    extension = file_name.rsplit(".", 1)[-1].lower()
    return _TYPE_BY_EXTENSION.get(extension, upstream_type or "application/octet-stream")


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
        self._clock = clock
        self._registry = registry
        self._signer = signer

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
        with self._registry.using(spec) as stream:
            response = await stream.upstream.request(
                url, *self._request_details(request, kind, require_playlist)
            )
            tap = BodyTap()
            head_ready = tap.head_ready
            head_ready.addErrback(tap.discard_on_error)
            response.deliverBody(tap)
            if response.code >= 400:
                tap.discard()
                raise ProxyError(response.code, f"upstream answered {response.code}")
            head = await head_ready
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

    async def _answer_playlist(
        self,
        request: Request,
        stream: Stream,
        response: IResponse,
        tap: BodyTap,
        url: str,
        head: bytes,
    ) -> None:
        max_bytes = self._config.max_playlist_bytes
        collector = Collector(self._clock, max_bytes, self._config.upstream_timeout_s)
        tap.hand_over(collector)
        body = await collector.done
        body = decode_content(body, _header(response, b"content-encoding"), max_bytes)
        if not looks_like_playlist(body[:64]):
            raise bad_gateway("upstream did not return an HLS playlist (#EXTM3U missing)")
        final_url = response.request.absoluteURI.decode("ascii")  # after redirects
        stream_part = self._signer.stream_part(stream.spec)
        child_path = self._signer.child_path

        def proxy_url(upstream_url: str, kind: UriKind) -> str:
            if _UNSAFE_IN_URL.search(upstream_url):
                upstream_url = quote(upstream_url, safe="%:/?#[]@!$&'()*+,;=~")
            return child_path(stream_part, upstream_url, kind)

        rewritten = rewrite_playlist(body, final_url, proxy_url)
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
        relay = Relay(request, self._clock, self._config.upstream_timeout_s)
        done: Deferred[None] = relay.done
        tap.hand_over(relay)
        await done
