"""HLS playlists: rewrite every URI, and read the few facts the proxy needs. Pure, no I/O.

Bytes in, bytes out, nothing lost: the body is decoded as UTF-8 with `surrogateescape` so
any byte survives, line endings are kept as they were, and only URI text changes.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterator

import attrs

from .whatwg import special_url_fixup

__all__ = [
    "ATTRIBUTE",
    "LINE",
    "MediaUrls",
    "PlaylistInfo",
    "ProxyUrl",
    "UriKind",
    "decode",
    "is_uri_attribute",
    "looks_like_playlist",
    "playlist_info",
    "playlist_shape",
    "resolve_uri",
    "rewrite_playlist",
]


class UriKind(enum.Enum):
    """What the player will do with a URI; decides how the proxy serves it.

    The values are single characters carried in signed child URLs (signing.py).
    """

    PLAYLIST = "p"  # loaded as a playlist, so it must be rewritten too
    MEDIA = "m"  # segment, part, init map, session data, unknown tags
    KEY = "k"  # EXT-X-KEY / EXT-X-SESSION-KEY
    ASSET_LIST = "a"  # interstitial X-ASSET-LIST: JSON whose ASSETS[].URI are playlists
    STEERING = "s"  # EXT-X-CONTENT-STEERING SERVER-URI: JSON with RELOAD-URI and clones


ProxyUrl = Callable[[str, UriKind], str]
# Many MEDIA URIs at once, in order (a big playlist's segments): what `ProxyUrl` gives each.
MediaUrls = Callable[[list[str]], list[str]]

# (tag, attribute) -> what the URI is. Every attribute that holds a URI by the spec is
# rewritten on any tag (`URI`, any `*-URI`, `X-ASSET-LIST`): new tags and attributes
# appear in every draft of rfc8216bis. Those not listed here are MEDIA.
_URI_KINDS: dict[tuple[str, str], UriKind] = {
    ("EXT-X-KEY", "URI"): UriKind.KEY,
    ("EXT-X-SESSION-KEY", "URI"): UriKind.KEY,
    ("EXT-X-MEDIA", "URI"): UriKind.PLAYLIST,
    ("EXT-X-I-FRAME-STREAM-INF", "URI"): UriKind.PLAYLIST,
    # Roku image media playlists (thumbnails): the URI is a playlist, not an image.
    ("EXT-X-IMAGE-STREAM-INF", "URI"): UriKind.PLAYLIST,
    ("EXT-X-RENDITION-REPORT", "URI"): UriKind.PLAYLIST,
    # HLS interstitials: an asset is a (multivariant) playlist; the list is JSON.
    ("EXT-X-DATERANGE", "X-ASSET-URI"): UriKind.PLAYLIST,
    ("EXT-X-DATERANGE", "X-ASSET-LIST"): UriKind.ASSET_LIST,
    ("EXT-X-CONTENT-STEERING", "SERVER-URI"): UriKind.STEERING,
}
_MASTER_TAGS = frozenset({"EXT-X-STREAM-INF", "EXT-X-MEDIA", "EXT-X-I-FRAME-STREAM-INF"})

_BOM = b"\xef\xbb\xbf"
# RFC 8216 ends lines with LF or CRLF. A lone CR ends one too, as in hls.js, so a URI after
# it is still proxied rather than fetched directly. The last match may be empty: harmless.
LINE = re.compile(r"([^\r\n]*)(\r\n|\n|\r|)")
# Lines are split a slice at a time: one findall over a hostile 500,000-line playlist holds
# the GIL (in C) for long enough to stall the reactor thread while a worker rewrites it.
_SLICE_CHARS = 64 * 1024


def lines(text: str) -> Iterator[tuple[str, str]]:
    """(content, line ending) of every line of `text`, as `LINE.findall` gives them."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + _SLICE_CHARS)
        end = len(text) if cut < 0 else cut + 1
        found = LINE.findall(text, start, end)
        if end == len(text):
            yield from found
            return
        yield from found[:-1]  # the empty match at the slice's end is not a line
        start = end
    yield from LINE.findall(text, start)


_SPACE = " \t\f\v"  # around a URI; WHATWG URL parsing strips these too
# One token of an attribute list. An attribute only starts the list or follows a comma, so
# `NAME="a,URI=b"` is one quoted value; the other alternatives swallow anything malformed.
ATTRIBUTE = re.compile(r'(?:^|(?<=,))[ \t]*([A-Z0-9-]+)=(?:"([^"]*)"|([^,"]*))|"[^"]*"?|[^,"]+|,')
# RFC 3986 appendix B, with the scheme held to section 3.1 so `1:x` is a relative path.
_REFERENCE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_VARIABLE = re.compile(r"\{\$[A-Za-z0-9_-]+\}")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_HTTP = ("http://", "https://")
# A backslash anywhere, or a special scheme not followed by "//": read differently by a
# browser (WHATWG URL) than by RFC 3986.
_BROWSER_READS_OTHERWISE = re.compile(r"[^\\]*\\|\s*(?:https?|wss?|ftp):(?!//)", re.IGNORECASE)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?")


def looks_like_playlist(head: bytes) -> bool:
    """True if the first bytes of a body start like an HLS playlist (BOM, whitespace allowed)."""
    return head.removeprefix(_BOM).lstrip().startswith(b"#EXTM3U")


@attrs.frozen
class _Base:
    """The playlist's own URL, split once so each URI resolves against it cheaply."""

    scheme: str | None
    authority: str | None
    path: str
    query: str | None
    directory: str | None  # "https://host/dir/" when plain names may simply be appended

    @property
    def url(self) -> str:
        query = "" if self.query is None else "?" + self.query
        return f"{self.scheme}://{self.authority}{self.path}{query}"


def _parse_base(base_url: str) -> _Base:
    scheme, authority, path, query = _split(base_url)
    base = _Base(scheme and scheme.lower(), authority, path, query, None)
    joined = _join(base, "x")  # a plain name; what precedes it is the directory
    return attrs.evolve(base, directory=None if joined is None else joined[:-1])


def _split(reference: str) -> tuple[str | None, str | None, str, str | None]:
    match = _REFERENCE.match(reference)
    assert match is not None  # every part of the pattern is optional
    scheme, authority, path, query = match.groups()
    return scheme, authority, path, query


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, keeping empty segments (urljoin drops them from `a//b`)."""
    if "." not in path:
        return path
    rooted = path.startswith("/")
    segments = path.split("/")[1:] if rooted else path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # `a/b/..` names the directory `a/`
    return ("/" if rooted else "") + "/".join(kept)


def _join(base: _Base, uri: str) -> str | None:
    """RFC 3986 section 5.2.2 (strict), without the fragment; None unless http(s).

    Written out rather than urljoin, which collapses `a//b` to `a/b` and drops an empty
    `?`: either can name a different object on the origin.
    """
    scheme, authority, path, query = _split(uri)
    if scheme is not None:
        scheme, path = scheme.lower(), _remove_dot_segments(path)
    elif authority is not None:
        scheme, path = base.scheme, _remove_dot_segments(path)
    else:
        scheme, authority = base.scheme, base.authority
        if not path:
            path, query = base.path, base.query if query is None else query
        elif path.startswith("/"):
            path = _remove_dot_segments(path)
        elif base.authority is not None and not base.path:
            path = _remove_dot_segments("/" + path)
        else:
            path = _remove_dot_segments(base.path[: base.path.rfind("/") + 1] + path)
    if scheme not in ("http", "https") or authority is None:
        return None  # skd:, data:, urn:, ftp: ... are the player's business
    return f"{scheme}://{authority}{path}" + ("" if query is None else "?" + query)


def _resolve(base: _Base, uri: str) -> str | None:
    """The absolute http(s) URL `uri` names, or None when it must be left as it is.

    The fragment is dropped: it never reaches the origin, and keeping it would make one
    segment look like two to the caches. Bytes that were not UTF-8 come out %-encoded, so
    the URL can always be encoded again.
    """
    if "{$" in uri and _VARIABLE.search(uri):
        # EXT-X-DEFINE substitution is out of scope: the player substitutes, then fetches.
        return None
    resolved: str | None
    if _BROWSER_READS_OTHERWISE.match(uri) and base.scheme in ("http", "https"):
        # `http:\\host\x.ts`, `https:host/x`: RFC 3986 keeps these on the playlist's host,
        # a browser (hls.js) goes to `host`. Resolve as the browser will, so it is proxied.
        try:
            uri = special_url_fixup(uri, base.url)
        except ValueError:
            return None  # the browser cannot fetch it either
    # Shortcuts for the two common shapes; they give exactly what _join would.
    if base.directory is not None and "#" not in uri and "/." not in uri:
        if uri.startswith(_HTTP):
            resolved = uri
        elif uri[0] not in "/?." and (":" not in uri or _SCHEME.match(uri) is None):
            resolved = base.directory + uri
        else:
            resolved = _join(base, uri)
    else:
        resolved = _join(base, uri)
    if resolved is None or resolved.isascii():
        return resolved
    return _UNDECODABLE.sub(lambda escaped: f"%{ord(escaped[0]) - 0xDC00:02X}", resolved)


def resolve_uri(base_url: str, uri: str) -> str | None:
    """The absolute http(s) URL `uri` names when read in a document at `base_url`
    (as a playlist's URIs are), or None when it is not one the proxy fetches."""
    uri = uri.strip(_SPACE)
    return _resolve(_parse_base(base_url), uri) if uri else None


def _rewrite_uri(text: str, uri: str, kind: UriKind, base: _Base, proxy_url: ProxyUrl) -> str:
    """`text` with `uri` (itself minus surrounding whitespace) replaced, if it is proxied."""
    resolved = _resolve(base, uri)
    if resolved is None:
        return text
    replacement = proxy_url(resolved, kind)
    if len(uri) == len(text):
        return replacement
    start = len(text) - len(text.lstrip(_SPACE))
    return text[:start] + replacement + text[start + len(uri) :]


def _tag_name(stripped: str) -> str:
    """`EXT-X-KEY` for `#EXT-X-KEY:METHOD=...`."""
    return stripped[1:].partition(":")[0].rstrip(_SPACE)


def _attributes(attribute_list: str) -> Iterator[tuple[str, str | None, str | None, int]]:
    """(name, quoted value, unquoted value, where the quoted value starts) per attribute."""
    for token in ATTRIBUTE.finditer(attribute_list):
        if token[1] is not None:
            yield token[1], token[2], token[3], token.start(2)


def is_uri_attribute(name: str) -> bool:
    """An attribute whose value is a URI by the spec: URI, any *-URI, X-ASSET-LIST."""
    return name == "URI" or name.endswith("-URI") or name == "X-ASSET-LIST"


def _rewrite_tag(content: str, base: _Base, proxy_url: ProxyUrl) -> str:
    """A tag line with each URI attribute's value replaced inside the quotes."""
    colon = content.find(":")
    if colon < 0:
        return content
    tag = _tag_name(content.lstrip(_SPACE))
    attribute_list = content[colon + 1 :]
    pieces: list[str] = []
    done = 0
    for name, quoted, _, start in _attributes(attribute_list):
        if not is_uri_attribute(name) or quoted is None or not quoted.strip(_SPACE):
            continue  # unquoted or empty: not a URI a player would load
        kind = _URI_KINDS.get((tag, name), UriKind.MEDIA)
        pieces.append(attribute_list[done:start])
        pieces.append(_rewrite_uri(quoted, quoted.strip(_SPACE), kind, base, proxy_url))
        done = start + len(quoted)
    if not pieces:
        return content
    return content[: colon + 1] + "".join(pieces) + attribute_list[done:]


def decode(body: bytes) -> str:
    # RFC 8216 forbids a BOM and clients should refuse one, so it is dropped, not kept.
    return body.removeprefix(_BOM).decode("utf-8", "surrogateescape")


# What plain URI lines are made of (see `_plain_urls`): printable ASCII but for `#`, `\\`
# and `{`; and the separator of the joined lines.
_PLAIN_URL_BYTES = bytes(byte for byte in range(0x21, 0x7F) if chr(byte) not in "#\\{") + b"\n"


def _plain_urls(directory: str, names: list[str]) -> list[str] | None:
    """What `_resolve` gives for each of `names` (media URI lines under `directory`), if
    every one is plain; else None. Plain: printable ASCII with no fragment, backslash,
    variable or dot segment, and either all relative names (no `:`; not rooted, not a
    query: the directory is prepended) or all absolute http(s) URLs (kept). The usual
    segment lines of a big playlist, told by a few C-level passes over them all."""
    joined = "\n".join(names)
    if not joined.isascii() or joined.encode("ascii").translate(None, _PLAIN_URL_BYTES):
        return None
    if "/." in joined:
        return None
    if ":" not in joined:
        if joined[:1] in "./?" or "\n." in joined or "\n/" in joined or "\n?" in joined:
            return None
        return [directory + name for name in names]
    return names if all(name.startswith(_HTTP) for name in names) else None


class _LineRewriter:
    """Rewrites one playlist line at a time; remembers whether the next URI is a variant."""

    def __init__(self, base_url: str, proxy_url: ProxyUrl) -> None:
        self._base = _parse_base(base_url)
        self._proxy_url = proxy_url
        self._line_kind = UriKind.MEDIA  # PLAYLIST between an EXT-X-STREAM-INF and its URI

    def __call__(self, content: str) -> str:
        stripped = content if content[:1] == "#" else content.strip(_SPACE)
        if not stripped:
            pass
        elif stripped[0] != "#":
            content = _rewrite_uri(content, stripped, self._line_kind, self._base, self._proxy_url)
            self._line_kind = UriKind.MEDIA
        elif stripped.startswith("#EXT"):  # any other `#` line is a comment, kept as is
            if "URI=" in stripped or "X-ASSET-LIST=" in stripped:
                content = _rewrite_tag(content, self._base, self._proxy_url)
            if stripped.startswith("#EXT-X-STREAM-INF") and (
                _tag_name(stripped) == "EXT-X-STREAM-INF"
            ):
                self._line_kind = UriKind.PLAYLIST
        return content

    def plain_media_directory(self) -> str | None:
        """What a plain name (`_plain_urls`) on the next URI line resolves against, if it is
        a media URI and the playlist's URL has a directory; else None."""
        return self._base.directory if self._line_kind is UriKind.MEDIA else None


def rewrite_playlist(
    body: bytes, base_url: str, proxy_url: ProxyUrl, media_urls: MediaUrls | None = None
) -> bytes:
    """The playlist with every http(s) URI replaced by `proxy_url(absolute URL, kind)`.

    URI lines and the URI attributes of tags are resolved against `base_url` (the final
    URL, after redirects). Everything else is returned byte for byte, minus a leading BOM.
    `media_urls`, if given, proxies plain media lines many at a time (the same answers).
    """
    text = decode(body)
    rewrite_line = _LineRewriter(base_url, proxy_url)
    if text.count("\r") != text.count("\r\n"):  # a lone CR ends a line too
        out: list[str] = []
        for content, ending in lines(text):
            out.append(rewrite_line(content))
            out.append(ending)
        return "".join(out).encode("utf-8", "surrogateescape")
    if media_urls is None:
        media_urls = lambda urls: [proxy_url(url, UriKind.MEDIA) for url in urls]  # noqa: E731
    rewritten = _rewrite_slices(text, rewrite_line, media_urls)
    return "".join(rewritten).encode("utf-8", "surrogateescape")


def _rewrite_slices(text: str, rewrite_line: _LineRewriter, media_urls: MediaUrls) -> Iterator[str]:
    """`text` (lines end with LF or CRLF) rewritten a slice of lines at a time: each
    C-level split stays short (see `_SLICE_CHARS`)."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + _SLICE_CHARS)
        end = len(text) if cut < 0 else cut + 1
        piece = text[start:end]
        split = piece.split("\n")
        if "URI=" in piece or "X-ASSET-LIST=" in piece or "#EXT-X-STREAM-INF" in piece:
            _rewrite_lines(split, rewrite_line, media_urls)
        else:  # a slice of a big media playlist: its URI lines are one run
            run = [i for i, line in enumerate(split) if line[:1] != "#" and line and line != "\r"]
            if run:
                _rewrite_run(split, run, rewrite_line, media_urls)
        yield "\n".join(split)
        start = end


def _rewrite_lines(split: list[str], rewrite_line: _LineRewriter, media_urls: MediaUrls) -> None:
    """Rewrite, in place, the lines a rewrite can change: URI lines (anything not
    starting with `#`), tags with a URI attribute, variant tags; every URI in document
    order. Most lines of a big media playlist (`#EXTINF`) are passed over at the cost of
    two substring tests, and its runs of URI lines go to `_rewrite_run`."""
    run: list[int] = []  # URI lines in a row
    for index, line in enumerate(split):
        if line[:1] == "#":
            if "URI=" not in line and "X-ASSET-LIST=" not in line:
                if not line.startswith("#EXT-X-STREAM-INF"):
                    continue
        elif not line or line == "\r":
            continue
        else:
            run.append(index)
            continue
        if run:
            _rewrite_run(split, run, rewrite_line, media_urls)
            run = []
        _rewrite_line(split, index, rewrite_line)
    if run:
        _rewrite_run(split, run, rewrite_line, media_urls)


def _rewrite_run(
    split: list[str], run: list[int], rewrite_line: _LineRewriter, media_urls: MediaUrls
) -> None:
    """Rewrite, in place and in order, the URI lines `run` (with only other lines between
    them that no rewrite changes): plain media names all at once through `media_urls`;
    if some are not, in halves around them, and those one by one."""
    names = [split[index].removesuffix("\r") for index in run]
    directory = rewrite_line.plain_media_directory()
    urls = None if directory is None else _plain_urls(directory, names)
    if urls is not None:
        for index, path in zip(run, media_urls(urls), strict=True):
            split[index] = path + "\r" if split[index][-1:] == "\r" else path
    elif directory is not None and len(run) > 1:
        half = len(run) // 2
        _rewrite_run(split, run[:half], rewrite_line, media_urls)
        _rewrite_run(split, run[half:], rewrite_line, media_urls)
    else:
        for index in run:
            _rewrite_line(split, index, rewrite_line)


def _rewrite_line(split: list[str], index: int, rewrite_line: _LineRewriter) -> None:
    line = split[index]
    if line[-1:] == "\r":
        split[index] = rewrite_line(line[:-1]) + "\r"
    else:
        split[index] = rewrite_line(line)


@attrs.frozen
class PlaylistInfo:
    """What caching and prefetching need to know about a playlist."""

    is_master: bool
    is_live: bool
    target_duration_s: float | None
    part_target_s: float | None
    segment_urls: tuple[str, ...]


def _number(text: str | None) -> float | None:
    """A non-negative decimal, or None for anything else (`nan`, `1e3`, `-1`, `x`)."""
    text = None if text is None else text.strip(_SPACE)
    if text is None or _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


_SP = rb"[ \t\f\v]*"
_MASTER_LINE = re.compile(
    rb"^" + _SP + rb"#EXT-X-(?:STREAM-INF|MEDIA|I-FRAME-STREAM-INF)" + _SP + rb"(?::|\r?$)",
    re.MULTILINE,
)
_ENDLIST_LINE = re.compile(rb"^" + _SP + rb"#EXT-X-ENDLIST" + _SP + rb"(?::|\r?$)", re.MULTILINE)
_TARGET_LINE = re.compile(rb"^" + _SP + rb"#EXT-X-TARGETDURATION:([^\r\n]*)", re.MULTILINE)
_PART_INF_LINE = re.compile(rb"^" + _SP + rb"#EXT-X-PART-INF:([^\r\n]*)", re.MULTILINE)


def _first_line(body: bytes, needle: bytes, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
    """`pattern`'s first match, searched from the first line holding `needle` (the
    substring search is much faster than a multiline pattern over a big playlist)."""
    at = body.find(needle)
    if at < 0:
        return None
    return pattern.search(body, body.rfind(b"\n", 0, at) + 1)


def _facts_by_pattern(body: bytes, is_master: bool, ended: bool) -> PlaylistInfo:
    """The facts of a playlist whose segments are not needed, without a pass per line."""
    target = _first_line(body, b"#EXT-X-TARGETDURATION:", _TARGET_LINE)
    part = _first_line(body, b"#EXT-X-PART-INF:", _PART_INF_LINE)
    part_target_s = None
    if part is not None:
        for attribute, _, unquoted, _ in _attributes(decode(part[1])):
            if attribute == "PART-TARGET":
                part_target_s = _number(unquoted)
    return PlaylistInfo(
        is_master=is_master,
        is_live=not is_master and not ended,
        target_duration_s=None if target is None else _number(decode(target[1])),
        part_target_s=part_target_s,
        segment_urls=(),
    )


# `#EXT-X-MEDIA:` with its colon: `#EXT-X-MEDIA-SEQUENCE` starts most media playlists, and
# a pattern search from there would pass over every line.
_MASTER_NEEDLES = (b"#EXT-X-STREAM-INF", b"#EXT-X-MEDIA:", b"#EXT-X-I-FRAME-STREAM-INF")


def playlist_shape(body: bytes) -> tuple[bool, bool]:
    """(multivariant, ended) by byte searches: a big playlist costs no pass per line.

    A lone-CR playlist's lines are not seen by the patterns: `playlist_info` parses it.
    """
    is_master = any(_first_line(body, tag, _MASTER_LINE) is not None for tag in _MASTER_NEEDLES)
    return is_master, _first_line(body, b"#EXT-X-ENDLIST", _ENDLIST_LINE) is not None


def playlist_info(body: bytes, base_url: str, live_segments_only: bool = False) -> PlaylistInfo:
    """Master or media, live or not, target durations, and the segment URLs in order.

    `live_segments_only`: leave `segment_urls` empty unless the playlist is live (a VOD's
    are not needed, and resolving 50,000 of them takes a sizeable part of a rewrite).
    """
    if not live_segments_only:
        return _playlist_info(body, base_url, segments=True)
    if body.count(b"\r") == body.count(b"\r\n"):  # no lone CR: the patterns see every line
        is_master, ended = playlist_shape(body)
        if is_master or ended:
            return _facts_by_pattern(body, is_master, ended)
    info = _playlist_info(body, base_url, segments=True)
    return info if info.is_live else attrs.evolve(info, segment_urls=())


def _playlist_info(body: bytes, base_url: str, segments: bool) -> PlaylistInfo:
    """Master or media, live or not, target durations, and the segment URLs in order."""
    base = _parse_base(base_url)
    is_master = ended = False
    target_s: float | None = None
    part_target_s: float | None = None
    found: list[str] = []
    for content, _ in lines(decode(body)):
        line = content.strip(_SPACE)
        if line.startswith("#EXT"):
            name, _, value = line[1:].partition(":")
            if name in _MASTER_TAGS:
                is_master = True
            elif name == "EXT-X-ENDLIST":
                ended = True
            elif name == "EXT-X-TARGETDURATION" and target_s is None:
                target_s = _number(value)
            elif name == "EXT-X-PART-INF" and part_target_s is None:
                for attribute, _, unquoted, _ in _attributes(value):
                    if attribute == "PART-TARGET":
                        part_target_s = _number(unquoted)
        elif segments and line and line[0] != "#":
            resolved = _resolve(base, line)
            if resolved is not None:
                found.append(resolved)
    return PlaylistInfo(
        is_master=is_master,
        is_live=not is_master and not ended,
        target_duration_s=target_s,
        part_target_s=part_target_s,
        segment_urls=() if is_master or not segments else tuple(found),
    )
