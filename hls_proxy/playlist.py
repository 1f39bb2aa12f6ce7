"""HLS playlists: rewrite every URI, and read the few facts the proxy needs. Pure.

Bytes in, bytes out, nothing lost: the body is decoded as UTF-8 with `surrogateescape`
so any byte survives, line endings are kept as they were, and only URI text changes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from urllib.parse import urljoin

import attrs

__all__ = [
    "URI_ATTRIBUTES",
    "PlaylistInfo",
    "ProxyUrl",
    "UriKind",
    "looks_like_playlist",
    "playlist_info",
    "rewrite_playlist",
]


class UriKind(enum.Enum):
    """What the player will do with a URI; decides how the proxy serves it."""

    PLAYLIST = "p"
    MEDIA = "m"
    KEY = "k"


ProxyUrl = Callable[[str, UriKind], str]

_BOM = b"\xef\xbb\xbf"
# Tag -> URI-bearing attribute -> kind. A tag not listed here still has its URI
# attribute rewritten, as MEDIA (new tags appear in every draft of rfc8216bis).
URI_ATTRIBUTES: dict[str, dict[str, UriKind]] = {
    "EXT-X-KEY": {"URI": UriKind.KEY},
    "EXT-X-SESSION-KEY": {"URI": UriKind.KEY},
    "EXT-X-MAP": {"URI": UriKind.MEDIA},
    "EXT-X-MEDIA": {"URI": UriKind.PLAYLIST},
    "EXT-X-I-FRAME-STREAM-INF": {"URI": UriKind.PLAYLIST},
    "EXT-X-RENDITION-REPORT": {"URI": UriKind.PLAYLIST},
    "EXT-X-SESSION-DATA": {"URI": UriKind.MEDIA},
    "EXT-X-PART": {"URI": UriKind.MEDIA},
    "EXT-X-PRELOAD-HINT": {"URI": UriKind.MEDIA},
    "EXT-X-CONTENT-STEERING": {"SERVER-URI": UriKind.MEDIA},
}
_DEFAULT_ATTRIBUTES = {"URI": UriKind.MEDIA}
# One attribute of an attribute list: NAME=value, the value quoted or up to a comma.
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")
_HTTP = ("http://", "https://")


def looks_like_playlist(head: bytes) -> bool:
    """True if the bytes start like an HLS playlist (`#EXTM3U`, BOM and spaces allowed)."""
    return head.removeprefix(_BOM).lstrip().startswith(b"#EXTM3U")


def _base_directory(base_url: str) -> str:
    """The base URL up to the last `/` of its path: what a plain relative name joins to."""
    without_query = base_url.partition("#")[0].partition("?")[0]
    scheme_end = without_query.find("//") + 2
    last_slash = without_query.rfind("/")
    if last_slash < scheme_end:  # no path at all: http://host
        return without_query + "/"
    return without_query[: last_slash + 1]


def _is_plain_relative(uri: str) -> bool:
    """A relative name (`seg-1.ts?t=1`, `v/index.m3u8`) that joins by concatenation.

    Anything else (dot segments, `/root`, `//host`, `?q`, `#f`, a scheme) takes the
    full RFC 3986 path through urljoin. This is the common case and 20x cheaper.
    """
    if uri[0] in "/?#.":
        return False
    colon = uri.find(":")
    return colon < 0 or "/" in uri[:colon] or "?" in uri[:colon]


def _resolve(base_url: str, uri: str, base_directory: str | None = None) -> str | None:
    """The absolute http(s) URL of `uri`, or None when it must be left as it is."""
    if "{$" in uri:
        return None  # EXT-X-DEFINE variable: substituting is the player's job, not ours
    if base_directory is not None and "/." not in uri and "#" not in uri:
        if uri.startswith(_HTTP):
            return uri  # already absolute, nothing to normalise
        if _is_plain_relative(uri):
            return base_directory + uri
    resolved = urljoin(base_url, uri)
    if not resolved.lower().startswith(_HTTP):
        return None  # skd://, data:, urn: ... stay untouched
    return resolved.partition("#")[0]


def _rewrite_attributes(
    attributes: str,
    wanted: dict[str, UriKind],
    base_url: str,
    base_directory: str,
    proxy_url: ProxyUrl,
) -> str:
    def replace(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        kind = wanted.get(name)
        if kind is None or len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
            return match.group(0)
        resolved = _resolve(base_url, value[1:-1], base_directory)
        if resolved is None:
            return match.group(0)
        return f'{name}="{proxy_url(resolved, kind)}"'

    return _ATTRIBUTE.sub(replace, attributes)


def _split_ending(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith(("\n", "\r")):
        return line[:-1], line[-1]
    return line, ""


def rewrite_playlist(body: bytes, base_url: str, proxy_url: ProxyUrl) -> bytes:
    """The playlist with every URI replaced by `proxy_url(absolute URL, kind)`."""
    text = body.removeprefix(_BOM).decode("utf-8", "surrogateescape")
    base_directory = _base_directory(base_url)
    out: list[str] = []
    append = out.append
    next_uri_kind = UriKind.MEDIA
    for line in _LINES.findall(text):
        if line[:1] == "#":
            if "URI=" in line and line.startswith("#EXT"):
                content, ending = _split_ending(line)
                tag, colon, attributes = content[1:].partition(":")
                if colon:
                    wanted = URI_ATTRIBUTES.get(tag, _DEFAULT_ATTRIBUTES)
                    rewritten = _rewrite_attributes(
                        attributes, wanted, base_url, base_directory, proxy_url
                    )
                    line = f"#{tag}:{rewritten}{ending}"
                if tag == "EXT-X-STREAM-INF":
                    next_uri_kind = UriKind.PLAYLIST
            elif line.startswith("#EXT-X-STREAM-INF"):
                next_uri_kind = UriKind.PLAYLIST
            append(line)
            continue
        content = line.rstrip("\r\n")
        uri = content.strip()
        if not uri:
            append(line)
            continue
        resolved = _resolve(base_url, uri, base_directory)
        if resolved is not None:
            replacement = proxy_url(resolved, next_uri_kind)
            if uri is content or uri == content:
                line = replacement + line[len(content) :]
            else:
                start = content.index(uri)
                line = content[:start] + replacement + line[start + len(uri) :]
        append(line)
        next_uri_kind = UriKind.MEDIA
    return "".join(out).encode("utf-8", "surrogateescape")


@attrs.frozen
class PlaylistInfo:
    """What caching and prefetching need to know about a playlist."""

    is_master: bool
    is_live: bool
    target_duration_s: float | None
    part_target_s: float | None
    segment_urls: tuple[str, ...]


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def playlist_info(body: bytes, base_url: str) -> PlaylistInfo:
    """Master or media, live or not, target durations, and the segment URLs in order."""
    text = body.removeprefix(_BOM).decode("utf-8", "surrogateescape")
    is_master = ended = False
    target: float | None = None
    part_target: float | None = None
    segments: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if line.startswith(("#EXT-X-STREAM-INF", "#EXT-X-MEDIA:", "#EXT-X-I-FRAME-STREAM-INF")):
                is_master = True
            elif line.startswith("#EXT-X-ENDLIST"):
                ended = True
            elif line.startswith("#EXT-X-TARGETDURATION:"):
                target = _number(line.partition(":")[2])
            elif line.startswith("#EXT-X-PART-INF:"):
                match = re.search(r"PART-TARGET=([0-9.]+)", line)
                part_target = _number(match.group(1)) if match else None
        elif line and not is_master:
            resolved = _resolve(base_url, line)
            if resolved is not None:
                segments.append(resolved)
    return PlaylistInfo(
        is_master=is_master,
        is_live=not is_master and not ended,
        target_duration_s=target,
        part_target_s=part_target,
        segment_urls=tuple(segments) if not is_master else (),
    )
