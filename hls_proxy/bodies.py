"""Upstream bodies: opened once, held until someone decides, then relayed or collected.

Every upstream answer goes through `open_upstream`, which sends the request, holds the
body (paused) until its first bytes say what it is, and returns an `Answer` value:
the response, the held body, and whether it is a playlist. The caller then hands the
body to one consumer: a relay, the fan-out, or `CappedBody` for a playlist.

The Protocols here are given to `IResponse.deliverBody`; their transport is the upstream
connection (a push producer), so pausing it slows the upstream socket down.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from ._http import header_text
from .errors import ProxyError, bad_gateway, gateway_timeout
from .playlist import looks_like_playlist

if TYPE_CHECKING:
    from .streams import Stream

__all__ = [
    "DONE",
    "Answer",
    "CappedBody",
    "HeldBody",
    "SilenceTimer",
    "decode_content",
    "ended_cleanly",
    "open_upstream",
    "upstream_of",
]

DONE = Failure(ResponseDone())

PLAYLIST_TYPES = frozenset(
    {"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl"}
)
_PLAYLIST_START = b"#EXTM3U"
_BOM = b"\xef\xbb\xbf"


def upstream_of(protocol: Protocol) -> IPushProducer:
    """The transport deliverBody gives: a TransportProxyProducer over the upstream socket."""
    return cast(IPushProducer, protocol.transport)


def ended_cleanly(reason: Failure) -> bool:
    # PotentialDataLoss: a body without length ended by close, which is how it ends.
    return reason.check(ResponseDone, PotentialDataLoss) is not None


class SilenceTimer:
    """Calls `on_silence` when `reset` has not been called for `seconds`.

    Hand-written rather than `addTimeout`: it is reset on every chunk, as tahoe's
    `limited_content` does for the same reason.
    """

    def __init__(self, clock: IReactorTime, seconds: float, on_silence: Callable[[], None]) -> None:
        self._call: IDelayedCall = clock.callLater(seconds, on_silence)
        self._seconds = seconds

    def reset(self) -> None:
        if self._call.active():
            self._call.reset(self._seconds)

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


def could_still_be_playlist_start(first_bytes: bytes) -> bool:
    """True while `first_bytes` is too short to tell: part of a BOM, blanks, or of #EXTM3U.

    The decision is made as soon as it can be; waiting for a fixed number of bytes would
    hold back a segment whose upstream trickles its first bytes.
    """
    if _BOM.startswith(first_bytes):
        return True
    rest = first_bytes.removeprefix(_BOM).lstrip()
    return len(rest) < len(_PLAYLIST_START) and _PLAYLIST_START.startswith(rest)


def is_playlist_response(response: IResponse, first_bytes: bytes) -> bool:
    """Decide by the body's first bytes; by Content-Type when the body is encoded or absent."""
    if response.code == 206:
        return False  # a byte range of anything is relayed as it is
    essence = header_text(response.headers, b"content-type").split(";", 1)[0].strip().lower()
    if header_text(response.headers, b"content-encoding") or response.request.method == b"HEAD":
        return essence in PLAYLIST_TYPES
    if essence.startswith(("video/", "audio/")) and essence not in PLAYLIST_TYPES:
        return False
    return looks_like_playlist(first_bytes)


class HeldBody(Protocol):
    """Holds a body's first bytes, upstream paused, until a consumer is chosen."""

    def __init__(self) -> None:
        self.first_bytes = b""
        self.first_bytes_ready: Deferred[bytes] = Deferred()
        self._ended: Failure | None = None
        self._next: Protocol | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._next is not None:
            self._next.dataReceived(data)
            return
        self.first_bytes += data
        ready = self.first_bytes_ready
        if not ready.called and not could_still_be_playlist_start(self.first_bytes):
            upstream_of(self).pauseProducing()
            ready.callback(self.first_bytes)

    def connectionLost(self, reason: Failure = DONE) -> None:
        if self._next is not None:
            self._next.connectionLost(reason)
            return
        self._ended = reason
        if not self.first_bytes_ready.called:
            self.first_bytes_ready.callback(self.first_bytes)

    def hand_over(self, consumer: Protocol) -> None:
        """Give the rest of the body (and what was held) to `consumer`."""
        held, self.first_bytes = self.first_bytes, b""
        self._next = consumer
        if self._ended is None:
            upstream_of(self).resumeProducing()
        consumer.makeConnection(self.transport)
        if held:
            consumer.dataReceived(held)
        if self._ended is not None:
            consumer.connectionLost(self._ended)

    def discard(self) -> None:
        """Drop the body: close the upstream connection."""
        if self._ended is None and self._next is None and self.transport is not None:
            upstream_of(self).stopProducing()


@attrs.frozen
class Answer:
    """An upstream response whose body is held, not yet read, and what it turned out to be."""

    response: IResponse
    body: HeldBody
    is_playlist: bool

    @property
    def first_bytes(self) -> bytes:
        return self.body.first_bytes


async def open_upstream(
    stream: Stream,
    url: str,
    method: bytes,
    extra: dict[bytes, bytes],
    clock: IReactorTime,
    first_bytes_timeout_s: float,
    carry: str = "",
) -> Answer:
    """Send one upstream request and hold its body until its first bytes are in.

    The wait for the first bytes is bounded (an upstream may send headers and stall).
    An upstream error status becomes the same status for the client (its body dropped).
    `carry`: the target's candidate tokens (`Upstream.request`).
    """
    response = await stream.upstream.request(url, method, extra, carry)
    body = HeldBody()
    ready = body.first_bytes_ready
    response.deliverBody(body)
    if response.code >= 400:
        body.discard()
        raise ProxyError(response.code, f"upstream answered {response.code}")

    def stalled(_: object, __: float) -> None:
        raise gateway_timeout("upstream body stalled before its first bytes")

    ready.addTimeout(first_bytes_timeout_s, clock, onTimeoutCancel=stalled)
    try:
        await ready
    except (CancelledError, ProxyError):
        body.discard()
        raise
    return Answer(response, body, is_playlist_response(response, body.first_bytes))


class CappedBody(Protocol):
    """Collects a (playlist) body, refusing more than `max_bytes`."""

    def __init__(self, clock: IReactorTime, max_bytes: int, idle_timeout_s: float) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._max_bytes = max_bytes
        self._timer = SilenceTimer(clock, idle_timeout_s, self._silent)
        self.done: Deferred[bytes] = Deferred(canceller=lambda _: self._stop())

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self._timer.reset()
        self._size += len(data)
        if self._size > self._max_bytes:
            self._stop()
            self.done.errback(bad_gateway(f"playlist larger than {self._max_bytes} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = DONE) -> None:
        self._timer.cancel()
        if self.done.called:
            return
        if ended_cleanly(reason):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(bad_gateway("upstream failed mid-playlist"))

    def _silent(self) -> None:
        if not self.done.called:
            self._stop()
            self.done.errback(gateway_timeout("upstream playlist stalled"))

    def _stop(self) -> None:
        self._timer.cancel()
        upstream_of(self).stopProducing()


def decode_content(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo gzip/deflate on a playlist body, with the same size cap after decoding."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise bad_gateway(f"unsupported upstream Content-Encoding {encoding}")
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto-detected
    decoder = zlib.decompressobj(wbits)
    try:
        decoded = decoder.decompress(body, max_bytes + 1)
    except zlib.error:
        raise bad_gateway("upstream playlist is not valid " + encoding) from None
    if len(decoded) > max_bytes:
        raise bad_gateway(f"playlist larger than {max_bytes} bytes")
    return decoded
