"""Disguised segments: MPEG-TS behind an image header, served as the TS it is.

Some hosts serve TS segments as pictures (to pass as static files on an image CDN):
named `.jpg`/`.png`, sent as `image/*`, sometimes with a real image header (a PNG
signature, a whole small PNG, a JPEG, GIF or BMP) before the first TS packet. Players
refuse them or choke on the header. The names are fixed when the playlist is rewritten
(signing.py `child_file_name`); the bodies here: a media answer whose first bytes are an
image magic is held until it is clear whether MPEG-TS follows (a 0x47 sync byte at
188-byte steps), and then served without the prefix, as video/mp2t, with its
Content-Length reduced by as much. A real picture (a thumbnail) finds no TS and passes
unchanged. The fan-out caches what it serves, so the cache holds the stripped body.
"""

from __future__ import annotations

from typing import NoReturn

import attrs
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from .bodies import DONE, Answer, HeldBody, upstream_of
from .errors import ProxyError, gateway_timeout
from .media import ResponseHead

__all__ = ["MAX_PREFIX_BYTES", "PrefixScan", "could_be_image", "reveal"]

_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_SYNC = 0x47
_PACKET = 188
_PACKETS = 4  # sync bytes in a row that say "TS starts here" (chance: 2^-32 per offset)
# How far into the body TS may start: a whole thumbnail fits; beyond, nothing is dropped.
MAX_PREFIX_BYTES = 256 * 1024
_TS_TYPE = b"video/mp2t"
# Describe the upstream's representation, not the stripped one.
_DROPPED_HEADERS = frozenset({b"etag", b"accept-ranges", b"content-range", b"content-type"})


def could_be_image(first_bytes: bytes) -> bool:
    """True if the body starts (or, this short, may start) with an image magic.

    A lone `G` is a TS sync byte, not the start of `GIF8`: media is relayed as soon as
    its first byte is in, and a GIF header never comes one byte at a time in practice.
    """
    return first_bytes not in (b"", b"G") and _may_be_magic(first_bytes)


def _may_be_magic(first_bytes: bytes) -> bool:
    return any(magic[: len(first_bytes)] == first_bytes[: len(magic)] for magic in _MAGICS)


class PrefixScan:
    """Fed a body's first bytes, finds the offset where MPEG-TS starts after an image
    header: 0 when there is no such header or no TS after it, None while undecided."""

    def __init__(self) -> None:
        self.data = b""
        self._next = 0  # candidates before it were refused

    def feed(self, data: bytes, ended: bool = False) -> int | None:
        self.data += data
        body = self.data
        magic = next((magic for magic in _MAGICS if body.startswith(magic)), None)
        if magic is None:
            return None if not ended and _may_be_magic(body) else 0
        position = max(self._next, len(magic))
        while True:
            position = body.find(b"\x47", position, MAX_PREFIX_BYTES + 1)
            if position < 0:
                break
            last = position + (_PACKETS - 1) * _PACKET
            if last >= len(body):
                if not ended:
                    self._next = position
                    return None
                # The body ends within the packets looked for: those that are there.
                if len(body) - position >= _PACKET and all(
                    body[at] == _SYNC for at in range(position, len(body), _PACKET)
                ):
                    return position
            elif all(body[position + k * _PACKET] == _SYNC for k in range(1, _PACKETS)):
                return position
            position += 1
        self._next = len(body)
        return 0 if ended or len(body) > MAX_PREFIX_BYTES else None


class _Revealing(HeldBody):
    """A held body that drops an image prefix hiding TS before anyone reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.stripped = 0
        self._scan: PrefixScan | None = PrefixScan()

    def dataReceived(self, data: bytes) -> None:
        scan = self._scan
        if scan is None:
            super().dataReceived(data)  # decided: held as first bytes, or passed on
            return
        offset = scan.feed(data)
        if offset is None:
            return
        self._decided(offset)
        upstream_of(self).pauseProducing()
        self.first_bytes_ready.callback(self.first_bytes)

    def connectionLost(self, reason: Failure = DONE) -> None:
        scan = self._scan
        if scan is not None:
            self._decided(scan.feed(b"", ended=True) or 0)
        super().connectionLost(reason)

    def _decided(self, offset: int) -> None:
        assert self._scan is not None
        self.stripped = offset
        self.first_bytes = self._scan.data[offset:]
        self._scan = None


def _ts_head(head: ResponseHead, stripped: int) -> ResponseHead:
    dropped = _DROPPED_HEADERS if stripped else {b"content-type"}
    headers = tuple(pair for pair in head.headers if pair[0] not in dropped)
    length = None if head.length is None else head.length - stripped
    return attrs.evolve(head, headers=(*headers, (b"content-type", (_TS_TYPE,))), length=length)


def _stalled(result: object, timeout: float) -> NoReturn:
    raise gateway_timeout("upstream body stalled before its first bytes")


async def reveal(
    answer: Answer, head: ResponseHead, clock: IReactorTime, timeout_s: float
) -> tuple[Answer, ResponseHead]:
    """The answer and head to serve for a 200 media answer: without an image prefix
    that hides MPEG-TS, and TS said to be TS (not `image/*`)."""
    if head.code != 200:
        return answer, head
    if not could_be_image(answer.first_bytes):
        if answer.first_bytes[:1] == b"\x47" and (head.header(b"content-type") or b"").startswith(
            b"image/"
        ):
            return answer, _ts_head(head, 0)
        return answer, head
    body = _Revealing()
    ready = body.first_bytes_ready
    answer.body.hand_over(body)
    ready.addTimeout(timeout_s, clock, onTimeoutCancel=_stalled)
    try:
        await ready
    except (CancelledError, ProxyError):
        body.discard()
        raise
    revealed = attrs.evolve(answer, body=body)
    if body.stripped == 0:
        return revealed, head
    return revealed, _ts_head(head, body.stripped)
