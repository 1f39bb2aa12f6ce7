"""Upstream bodies: relayed to a client with backpressure, or collected with a cap.

The Protocols here are given to `IResponse.deliverBody`. Their transport is the
upstream connection, so registering it as the client request's push producer makes a
full client socket pause the upstream socket (and TCP slows the upstream down).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.server import Request

from .errors import ProxyError, bad_gateway, gateway_timeout, settle

__all__ = ["BodyTap", "Collector", "Relay", "decode_content"]


_DONE = Failure(ResponseDone())


def _upstream(protocol: Protocol) -> IPushProducer:
    """The transport deliverBody gives: a TransportProxyProducer over the upstream socket."""
    return cast(IPushProducer, protocol.transport)


def _ended_cleanly(reason: Failure) -> bool:
    # PotentialDataLoss: a body without length ended by close, which is how it ends.
    return reason.check(ResponseDone, PotentialDataLoss) is not None


class _SilenceTimer:
    """Calls `on_silence` when `reset` has not been called for `seconds`."""

    def __init__(self, clock: IReactorTime, seconds: float, on_silence: Callable[[], None]):
        self._call: IDelayedCall = clock.callLater(seconds, on_silence)
        self._seconds = seconds

    def reset(self) -> None:
        if self._call.active():
            self._call.reset(self._seconds)

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


_PLAYLIST_START = b"#EXTM3U"
_BOM = b"\xef\xbb\xbf"


def _could_still_be_playlist_start(head: bytes) -> bool:
    """True while `head` is too short to tell: a part of a BOM, blanks, or part of #EXTM3U.

    The decision is made as soon as it can be; waiting for a fixed number of bytes would
    hold back a segment whose upstream trickles its first bytes.
    """
    if _BOM.startswith(head):
        return True
    rest = head.removeprefix(_BOM).lstrip()
    return len(rest) < len(_PLAYLIST_START) and _PLAYLIST_START.startswith(rest)


class BodyTap(Protocol):
    """Holds a body's first bytes until the caller decides who consumes it.

    `/stream` must tell a playlist from media by its first bytes; the upstream is
    paused meanwhile so nothing piles up.
    """

    def __init__(self) -> None:
        self.head = b""
        self.head_ready: Deferred[bytes] = Deferred()
        self._ended: Failure | None = None
        self._next: Protocol | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._next is not None:
            self._next.dataReceived(data)
            return
        self.head += data
        if not self.head_ready.called and not _could_still_be_playlist_start(self.head):
            _upstream(self).pauseProducing()
            self.head_ready.callback(self.head)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self._next is not None:
            self._next.connectionLost(reason)
            return
        self._ended = reason
        if not self.head_ready.called:
            self.head_ready.callback(self.head)

    def hand_over(self, consumer: Protocol) -> None:
        """Give the rest of the body (and what was held) to `consumer`."""
        head, self.head = self.head, b""
        self._next = consumer
        if self._ended is None:
            _upstream(self).resumeProducing()
        consumer.makeConnection(self.transport)
        if head:
            consumer.dataReceived(head)
        if self._ended is not None:
            consumer.connectionLost(self._ended)

    def discard_on_error(self, failure: Failure) -> Failure:
        """An errback for `head_ready`: nobody will read the body now."""
        self.discard()
        return failure

    def discard(self) -> None:
        """Drop the body: close the upstream connection."""
        if self._ended is None:
            _upstream(self).stopProducing()


class Relay(Protocol):
    """Writes an upstream body to a client request as it arrives.

    `done` fires when the relay ends, either way; cancelling it (the client left)
    closes the upstream connection at once. An upstream that fails mid-body aborts
    the client connection so the player never sees a clean-looking short 200.
    """

    def __init__(self, request: Request, clock: IReactorTime, idle_timeout_s: float) -> None:
        self._request = request
        self._clock = clock
        self._idle_timeout_s = idle_timeout_s
        self._timer: _SilenceTimer | None = None
        self._ended = False
        self.bytes_relayed = 0
        self.done: Deferred[None] = Deferred(canceller=lambda _: self._stop_upstream())

    def connectionMade(self) -> None:
        self._request.registerProducer(_upstream(self), True)
        self._timer = _SilenceTimer(self._clock, self._idle_timeout_s, self._upstream_silent)

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        assert self._timer is not None
        self._timer.reset()
        self.bytes_relayed += len(data)
        self._request.write(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self._end():
            return
        if self._request.channel is None:  # the client left first
            self._settle(None)
        elif _ended_cleanly(reason):
            self._request.unregisterProducer()
            self._request.finish()
            self._settle(None)
        else:
            self._abort_client()
            self._settle(bad_gateway("upstream failed mid-body"))

    def _upstream_silent(self) -> None:
        if self._end():
            return
        _upstream(self).stopProducing()
        self._abort_client()
        self._settle(gateway_timeout("upstream body stalled"))

    def _stop_upstream(self) -> None:
        if not self._end():
            _upstream(self).stopProducing()

    def _end(self) -> bool:
        """Mark the relay ended; True if it already was (teardown arrives twice)."""
        was_ended, self._ended = self._ended, True
        if self._timer is not None:
            self._timer.cancel()
        return was_ended

    def _abort_client(self) -> None:
        if self._request.channel is not None:
            self._request.unregisterProducer()
            self._request.channel.transport.abortConnection()  # type: ignore[union-attr]

    def _settle(self, error: ProxyError | None) -> None:
        settle(self.done, error)


class Collector(Protocol):
    """Collects a (playlist) body, refusing more than `max_bytes`."""

    def __init__(self, clock: IReactorTime, max_bytes: int, idle_timeout_s: float) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._max_bytes = max_bytes
        self._timer = _SilenceTimer(clock, idle_timeout_s, self._silent)
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

    def connectionLost(self, reason: Failure = _DONE) -> None:
        self._timer.cancel()
        if self.done.called:
            return
        if _ended_cleanly(reason):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(bad_gateway("upstream failed mid-playlist"))

    def _silent(self) -> None:
        if not self.done.called:
            self._stop()
            self.done.errback(gateway_timeout("upstream playlist stalled"))

    def _stop(self) -> None:
        self._timer.cancel()
        _upstream(self).stopProducing()


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
