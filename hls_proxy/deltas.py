"""URL deltas: a URL as what differs from its playlist's URL. Pure.

A segment of a playlist usually shares the playlist's directory and, when the CDN token
is repeated on every URI, its query too; the delta is then the file name alone. It is
the length of the prefix shared with the anchor (the playlist's URL), the length of a
suffix found in the anchor, and the middle. The suffix is the anchor's own end, or the
segment's query found inside the anchor (`index.m3u8?token=T&v=1` and `seg1.ts?token=T`:
the playlist has a parameter its segments do not), whichever is longer.

Exact for any two byte strings (no RFC 3986 resolution involved), so a redirect or
another origin can make a delta longer but never wrong; and a function of the two alone,
so the same URL always gives the same delta (and the same proxy URL).

Two layouts: `varint(prefix) varint(suffix) middle` (format 2, the suffix always at the
anchor's end) and `varint(prefix) varint(2 * suffix + moved) [varint(anchor length - end
of the suffix) if moved] middle` (format 3).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DeltaEncoder", "apply_delta", "delta", "read_varint", "varint"]


def varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    out.append(number)
    return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The number at `at`, and where it ends; IndexError if it is cut short."""
    number = shift = 0
    while True:
        byte = data[at]
        at += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, at
        shift += 7


def _shared(anchor: bytes, url: bytes) -> tuple[int, int]:
    """Lengths of the prefix the two share, then of the suffix the rest of them share."""
    limit = min(len(anchor), len(url))
    # By XOR of the two as big integers: a few C-level operations, no loop per character.
    head = int.from_bytes(anchor[:limit], "big") ^ int.from_bytes(url[:limit], "big")
    prefix = limit - (head.bit_length() + 7) // 8
    rest = limit - prefix
    tail = int.from_bytes(anchor[len(anchor) - rest :], "big") ^ int.from_bytes(
        url[len(url) - rest :], "big"
    )
    suffix = ((tail & -tail).bit_length() - 1) // 8 if tail else rest
    return prefix, suffix


def _moved_suffix(anchor: bytes, url: bytes, prefix: int, suffix: int) -> int:
    """Where in `anchor` the url's query ends if it is found there and is longer than
    `suffix` (after the prefix); -1 otherwise."""
    question = url.find(b"?", prefix, len(url) - suffix - 1)
    if question < 0:
        return -1
    found = anchor.find(url[question + 1 :])
    return -1 if found < 0 else found + len(url) - question - 1


def _layout(prefix: int, suffix: int, end: int, anchor_length: int) -> bytes:
    if end == anchor_length:
        return varint(prefix) + varint(2 * suffix)
    return varint(prefix) + varint(2 * suffix + 1) + varint(anchor_length - end)


def delta(anchor: bytes, url: bytes) -> bytes:
    """`url` as what it shares with `anchor` (format 3)."""
    prefix, suffix = _shared(anchor, url)
    end = _moved_suffix(anchor, url, prefix, suffix)
    if end >= 0:
        suffix = len(url) - url.index(b"?", prefix) - 1
    else:
        end = len(anchor)
    return _layout(prefix, suffix, end, len(anchor)) + url[prefix : len(url) - suffix]


class DeltaEncoder:
    """`delta` against one anchor, faster for URIs shaped alike.

    The URIs of one playlist usually share the same prefix and suffix with the anchor, so
    the last shape is checked first (a few C-level comparisons); the result is exactly
    `delta`'s, whatever the order of the URIs.
    """

    def __init__(self, anchor: bytes) -> None:
        self._anchor = anchor
        # The last shape: prefix, suffix, end; the anchor's bytes there; the layout; and
        # whether it may be reused (a moved suffix the anchor also ends with may not: the
        # suffix at the end may then be as long, and win).
        layout = _layout(0, 0, len(anchor), len(anchor))
        self._last = (0, 0, len(anchor), b"", b"", layout, True)

    def encode(self, url: bytes) -> bytes:
        return self.encode_many([url])[0]

    def encode_many(self, urls: Iterable[bytes]) -> list[bytes]:
        """`delta(anchor, url)` of each, in one loop (a playlist's segments at once)."""
        anchor = self._anchor
        anchor_length = len(anchor)
        prefix, suffix, end, head, tail, lengths, reusable = self._last
        absent: bytes | None = None  # the last query not found in the anchor
        out: list[bytes] = []
        for url in urls:
            limit = min(anchor_length, len(url))
            cut = len(url) - suffix
            if (
                reusable
                and url.startswith(head)
                and url.endswith(tail)
                and prefix <= cut
                and (prefix == limit or url[prefix] != anchor[prefix])  # no longer prefix
            ):
                if end == anchor_length:
                    if (
                        prefix + suffix <= limit
                        # ... no longer suffix at the anchor's end, and no longer query in it
                        and (prefix + suffix == limit or url[cut - 1] != anchor[end - suffix - 1])
                        and (
                            (question := url.find(b"?", prefix, cut - 1)) < 0  # none before
                            or url[question + 1 :] == absent  # the segments' query, again
                            or _moved_suffix(anchor, url, prefix, suffix) < 0
                        )
                    ):
                        if question >= 0:
                            absent = url[question + 1 :]  # not in the anchor
                        out.append(lengths + url[prefix:cut])
                        continue
                # The url's query is the suffix, found where it was, and beats the end's.
                elif cut > prefix and url[cut - 1] == 63 and url.find(b"?", prefix, cut - 1) < 0:
                    out.append(lengths + url[prefix:cut])
                    continue
            encoded = delta(anchor, url)
            prefix, at = read_varint(encoded, 0)
            code, at = read_varint(encoded, at)
            suffix, moved = code >> 1, code & 1
            end = anchor_length
            if moved:
                back, at = read_varint(encoded, at)
                end -= back
            head, tail, lengths = anchor[:prefix], anchor[end - suffix : end], encoded[:at]
            reusable = not (moved and anchor.endswith(tail))
            out.append(encoded)
        self._last = (prefix, suffix, end, head, tail, lengths, reusable)
        return out


def apply_delta(anchor: bytes, data: bytes, moved_suffixes: bool = True) -> bytes:
    """The URL `delta(anchor, url)` was made from; ValueError if it cannot be one.

    `moved_suffixes=False` reads format 2's layout (the suffix always at the end).
    """
    try:
        prefix, at = read_varint(data, 0)
        suffix, at = read_varint(data, at)
        end = len(anchor)
        if moved_suffixes:
            suffix, moved = suffix >> 1, suffix & 1
            if moved:
                back, at = read_varint(data, at)
                end -= back
    except IndexError:
        raise ValueError("truncated delta") from None
    if prefix > len(anchor) or not 0 <= end - suffix <= end <= len(anchor):
        raise ValueError("delta longer than its anchor")
    if not moved_suffixes and prefix + suffix > len(anchor):
        raise ValueError("delta longer than its anchor")
    return anchor[:prefix] + data[at:] + anchor[end - suffix : end]
