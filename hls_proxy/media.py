"""The head of a media answer (segment, key, init map, anything not a playlist).

One builder, `media_head`, decides status, headers, content type and downstream
caching for every media answer, whichever path then writes the body (the fan-out,
the cache, or a plain relay), so GET, HEAD and Range answers for one URL agree.
"""

from __future__ import annotations

import attrs
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.server import Request

from ._http import header_text, write_headers
from .exposure import safe_type
from .playlist import UriKind
from .signing import child_file_name

__all__ = [
    "PLAYLIST_TYPE",
    "SEGMENT_MAX_AGE_S",
    "Headers",
    "ResponseHead",
    "cache_directives",
    "content_type_for",
    "media_head",
    "write_head",
]

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
# Downstream max-age of a segment or key: its signed URL names one upstream object.
SEGMENT_MAX_AGE_S = 86400

Headers = tuple[tuple[bytes, tuple[bytes, ...]], ...]

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
# Upstream response headers a player needs to see, passed through unchanged. Length and
# caching are decided here, not copied.
_PASSED_HEADERS = (
    b"content-range", b"accept-ranges", b"last-modified", b"etag", b"content-encoding",
)  # fmt: skip
_PRIVATE = frozenset({"no-store", "no-cache", "private"})
_AUTHORIZED_SHARE = frozenset({"public", "s-maxage", "must-revalidate"})


@attrs.frozen
class ResponseHead:
    """Status and headers of a media answer, the same for every client of one URL."""

    code: int
    headers: Headers
    length: int | None
    cacheable: bool
    ttl_s: float | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, values in self.headers:
            if key == name:
                return values[0]
        return None


def cache_directives(value: str) -> dict[str, str]:
    """`Cache-Control` directives, lower-cased: `{"max-age": "4", "no-store": ""}`."""
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip().strip('"')
    return directives


def max_age_s(directives: dict[str, str]) -> float | None:
    """The freshness lifetime a shared cache may use (`s-maxage` first), or None."""
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                return max(0.0, float(directives[name]))
            except ValueError:
                return 0.0
    return None


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


def _length(response: IResponse) -> int | None:
    if response.length != UNKNOWN_LENGTH and response.request.method != b"HEAD":
        return int(response.length)
    # A HEAD answer has no body; the Agent leaves its Content-Length in the headers.
    text = header_text(response.headers, b"content-length")
    return int(text) if text.isdigit() else None


def _shareable(response: IResponse, directives: dict[str, str], authorized: bool) -> bool:
    """RFC 9111: never `private`/`no-store`/`no-cache`, never `Vary: *`; a response to an
    authorized request only when it says `public`, `s-maxage` or `must-revalidate`."""
    if _PRIVATE & directives.keys():
        return False
    vary = b",".join(response.headers.getRawHeaders(b"vary", [])).replace(b" ", b"")
    if b"*" in vary.split(b","):
        return False
    return not authorized or bool(_AUTHORIZED_SHARE & directives.keys())


def media_head(
    response: IResponse, url: str, kind: UriKind, authorized: bool = False
) -> ResponseHead:
    """The answer's head for an upstream media response (GET, HEAD or Range alike).

    `authorized`: the upstream request carried credentials (Authorization).
    """
    upstream_control = header_text(response.headers, b"cache-control")
    directives = cache_directives(upstream_control)
    ttl_s = max_age_s(directives)
    private = not _shareable(response, directives, authorized)
    headers: list[tuple[bytes, tuple[bytes, ...]]] = []
    for name in _PASSED_HEADERS:
        values = response.headers.getRawHeaders(name)
        if values:
            headers.append((name, tuple(values)))
    file_name = child_file_name(url, kind)
    upstream_type = header_text(response.headers, b"content-type")
    content_type = safe_type(content_type_for(upstream_type, file_name))
    headers.append((b"content-type", (content_type.encode("latin-1"),)))
    # Signed child URLs are deterministic: a CDN in front may keep a segment for long.
    if private:
        downstream = upstream_control.encode("latin-1") or b"private"
    elif ttl_s is not None and ttl_s < SEGMENT_MAX_AGE_S:
        downstream = b"max-age=%d" % int(ttl_s)
    else:
        downstream = b"public, max-age=%d" % SEGMENT_MAX_AGE_S
    headers.append((b"cache-control", (downstream,)))
    cacheable = response.code == 200 and not private and (ttl_s is None or ttl_s > 0)
    return ResponseHead(response.code, tuple(headers), _length(response), cacheable, ttl_s)


def write_head(request: Request, head: ResponseHead) -> None:
    write_headers(request, head.code, head.headers)
    if head.length is not None:
        request.setHeader(b"content-length", b"%d" % head.length)
