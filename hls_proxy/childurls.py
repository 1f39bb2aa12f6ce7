"""What a child URL carries, as values: its stream, its target, and what hangs from it.

Minted and verified by signing.py; read by the serving side (target.py, heal.py).
"""

from __future__ import annotations

import attrs

from .playlist import UriKind

__all__ = ["CARRY_SEPARATOR", "Anchor", "BadSignature", "ChildTarget", "Lineage", "StreamSpec"]

# Between a URL and its candidate tokens in a sealed payload: never in UTF-8.
CARRY_SEPARATOR = b"\xff"


class BadSignature(ValueError):
    """The path is not one this proxy signed (or it was changed)."""


@attrs.frozen
class StreamSpec:
    """What a child URL carries about its stream: its id and the upstream headers."""

    stream_id: str
    headers: tuple[tuple[str, str], ...]
    # Per-stream switches (bypass.py): which headers were derived, token carry-over.
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.options if key == name), default)


@attrs.frozen
class Anchor:
    """The X of a verified format-2 URL: what the children of its playlist hang from."""

    sealed: str  # X as written in the path, FORMAT included
    url: str  # the upstream URL X seals
    relative_prefix: str  # before `<C>/<name>`: "" under /p/X/name, "../" under /p/X/C/name
    carry: str = ""  # X's candidate tokens

    @property
    def delta_base(self) -> bytes:
        """What C's deltas are taken from: X's URL, and its candidate tokens if any."""
        base = self.url.encode("utf-8", "surrogatepass")
        if not self.carry:
            return base
        return base + CARRY_SEPARATOR + self.carry.encode("utf-8", "surrogatepass")


@attrs.frozen
class Lineage:
    """Where a playlist came from: the stream's entry URL, and which rendition of it.

    `rendition` is "" when the entry URL itself is the media playlist; otherwise an id
    from heal.py (`renditions.rendition_ids`) matched against a fresh master.
    """

    entry_url: str
    rendition: str = ""


@attrs.frozen
class ChildTarget:
    """A verified child URL, decoded."""

    stream: StreamSpec
    url: str
    kind: UriKind
    expires_s: int | None = None
    anchor: Anchor | None = None  # None for format 1
    # Token parameters to append if the upstream refuses `url` as written (tokens.py).
    carry: str = ""
    # The media playlist's segment extension the file name was given ("" if none).
    segment_extension: str = ""
    lineage: Lineage | None = None  # sealed in X: the children of a healable playlist
    sequence: int | None = None  # a segment's media sequence number, sealed in C
