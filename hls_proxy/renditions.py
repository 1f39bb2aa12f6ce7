"""Which rendition a playlist URI is, and which media sequence number a segment has. Pure.

Self-healing streams (heal.py) re-resolve a stream's entry URL and must find, in the fresh
multivariant playlist, the rendition a player was watching, and in the fresh media
playlist, the segment it asked for. A rendition id is written once per playlist into its
child URL (signing.Lineage), so it is short:

    <kind><how><hash>.<position>      e.g. `v=Qm9vb2Jh.0`, `r#dGVzdHM4.2`

kind: `v` EXT-X-STREAM-INF, `r` EXT-X-MEDIA, `i` EXT-X-I-FRAME-STREAM-INF, `g`
EXT-X-IMAGE-STREAM-INF. how: `=` a stable id (STABLE-VARIANT-ID, STABLE-RENDITION-ID),
`#` what else names it (a variant's attributes; a rendition's GROUP-ID and NAME). The
hash is 6 bytes of BLAKE2s; the position counts that kind's tags in document order.
A fresh master matches on kind and hash; failing that, an id without a stable id
matches on position (a variant whose BANDWIDTH was re-measured is still that variant).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

from .playlist import PlaylistInfo, UriKind, rewrite_playlist

__all__ = ["find_rendition", "rendition_ids", "sequence_numbers"]

_KINDS = {
    "EXT-X-STREAM-INF": "v",
    "EXT-X-MEDIA": "r",
    "EXT-X-I-FRAME-STREAM-INF": "i",
    "EXT-X-IMAGE-STREAM-INF": "g",
}
_STABLE = {"v": "STABLE-VARIANT-ID", "r": "STABLE-RENDITION-ID"}
_LINE = re.compile(rb"\r\n|\n|\r")
_SPACE = " \t\f\v"
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_MEDIA_SEQUENCE = re.compile(rb"^[ \t]*#EXT-X-MEDIA-SEQUENCE:[ \t]*([0-9]{1,18})", re.MULTILINE)


def _hash(text: str) -> str:
    digest = hashlib.blake2s(text.encode("utf-8", "surrogateescape"), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _resolved(line: bytes, base_url: str) -> str | None:
    """The absolute URL the rewrite resolves the URI of `line` to (the same code path)."""
    found: list[str] = []

    def capture(url: str, kind: UriKind) -> str:
        found.append(url)
        return url

    rewrite_playlist(line, base_url, capture)
    return found[0] if found else None


def _renditions(body: bytes, base_url: str) -> Iterator[tuple[str, str]]:
    """(rendition id, resolved URL) of every rendition a multivariant playlist lists."""
    positions = dict.fromkeys(_KINDS.values(), 0)
    pending: str | None = None  # an EXT-X-STREAM-INF's id, waiting for its URI line
    for raw in _LINE.split(body.removeprefix(b"\xef\xbb\xbf")):
        line = raw.decode("utf-8", "surrogateescape").strip(_SPACE)
        if not line:
            continue
        if not line.startswith("#"):
            if pending is not None:
                url = _resolved(raw, base_url)
                if url is not None:
                    yield pending, url
                pending = None
            continue
        name, _, value = line[1:].partition(":")
        kind = _KINDS.get(name.rstrip(_SPACE))
        if kind is None:
            continue
        attributes = {key: text.strip('"') for key, text in _ATTRIBUTE.findall(value)}
        stable = attributes.get(_STABLE.get(kind, ""))
        if stable is not None:
            key = "=" + _hash(stable)
        elif kind == "r":
            key = "#" + _hash(attributes.get("GROUP-ID", "") + "\0" + attributes.get("NAME", ""))
        else:
            named = sorted((k, v) for k, v in attributes.items() if k != "URI")
            key = "#" + _hash(repr(named))
        rendition = f"{kind}{key}.{positions[kind]}"
        positions[kind] += 1
        if kind == "v":
            pending = rendition
        elif "URI" in attributes:
            url = _resolved(raw, base_url)
            if url is not None:
                yield rendition, url


def rendition_ids(body: bytes, base_url: str) -> dict[str, str]:
    """Resolved URL -> rendition id, for the playlist URIs of a multivariant playlist."""
    return {url: rendition for rendition, url in _renditions(body, base_url)}


def find_rendition(body: bytes, base_url: str, wanted: str) -> str | None:
    """The URL of rendition `wanted` in (fresh) multivariant playlist `body`, if any."""
    kind, key_and_position = wanted[:1], wanted[1:]
    key, _, position = key_and_position.rpartition(".")
    by_position: str | None = None
    for rendition, url in _renditions(body, base_url):
        other_key, _, other_position = rendition[1:].rpartition(".")
        if rendition[:1] != kind:
            continue
        if other_key == key:
            return url
        if other_position == position:
            by_position = url
    return by_position if key.startswith("#") else None


def sequence_numbers(body: bytes, info: PlaylistInfo) -> dict[str, int]:
    """Segment URL -> media sequence number, for a media playlist; {} if unsure.

    Uses the resolved `info.segment_urls`; when a URI line could not be resolved (an
    EXT-X-DEFINE variable, a non-http scheme) the numbers would be off, so none are given.
    """
    if info.is_master or b"#EXT-X-DEFINE" in body:
        return {}
    lines = (raw.strip(b" \t\f\v") for raw in _LINE.split(body.removeprefix(b"\xef\xbb\xbf")))
    if sum(1 for line in lines if line and not line.startswith(b"#")) != len(info.segment_urls):
        return {}
    match = _MEDIA_SEQUENCE.search(body)
    first = int(match[1]) if match else 0
    return {url: first + index for index, url in enumerate(info.segment_urls)}
