"""Live channels: an endless MPEG-TS body shared at its live edge (issue 14).

IPTV providers serve a channel as one TS body with no length that never ends, and often
allow one or two connections per account. A `LiveChannel` reads that body once, at the
rate the source sends it, for any number of viewers:

- The upstream is never paused: a live source must be read at its rate, and one full
  client must not freeze the others. The ring is the only buffer.
- The ring keeps the last `ring_bytes` as whole 188-byte packets (the stream is cut at
  its sync bytes; a chunk starts at every PAT). A viewer joins at the oldest PAT that
  arrived in the last `join_window_s`, so it starts within a few seconds of the live
  edge with the tables a demuxer needs first, never from byte 0 of a long-running body.
- A viewer whose next chunk leaves the ring (it stopped reading) is detached: its
  connection is aborted. Bytes are never skipped inside a viewer's stream: a TS with a
  hole is worse than a cut (m3u-proxy drops queued chunks for slow subscribers).
- For its first `live_after_s` a channel is young: a joiner starts at byte 0, and a
  clean end completes the body (it was a segment served without a length); it is then
  handed to `on_complete` for the segment cache.
- After that, a clean upstream end while viewers watch is bridged by one reconnect: the
  closed connection's partial packet is dropped (never sent), and the new connection's
  bytes are appended from its first packet boundary. Nothing already sent is replayed.
- With no viewer for `linger_s`, the upstream is closed, so a channel zap on a
  one-connection account can open the next channel.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from itertools import pairwise
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from ._http import request_header
from .bodies import DONE, Answer, HeldBody, SilenceTimer, ended_cleanly, upstream_of
from .errors import ProxyError, bad_gateway, gateway_timeout
from .media import ResponseHead, write_head
from .packets import Packetizer, keyframe_offsets, pat_offsets
from .viewers import Body, Viewer

__all__ = ["LiveChannel", "LiveChannels", "is_live_head", "live_request"]

log = Logger()

Reopen = Callable[[], Coroutine[Any, Any, Answer]]
OnComplete = Callable[[Hashable, ResponseHead, tuple[bytes, ...], int], None]

# Headers that describe one fixed object; a channel's bytes depend on when one joins.
_OBJECT_HEADERS = frozenset({b"etag", b"last-modified", b"accept-ranges", b"content-range"})
# A body that shows no TS sync within this many bytes is not a TS channel.
_MAX_SYNC_SEARCH_BYTES = 64 * 1024
# Reconnects closer together than this end the channel instead (an origin that closes
# every connection at once must not be hammered).
_MIN_RECONNECT_INTERVAL_S = 2.0


def is_live_head(head: ResponseHead, first_bytes: bytes) -> bool:
    """A 200 MPEG-TS answer with no length whose body starts with a TS sync byte: an
    endless channel, or a segment sent chunked. Anything else keeps the fan-out."""
    if head.code != 200 or head.length is not None or head.header(b"content-encoding"):
        return False
    if first_bytes[:1] != b"\x47":
        return False
    content_type = head.header(b"content-type") or b""
    return content_type.split(b";", 1)[0].strip().lower() == b"video/mp2t"


def live_request(request: Request) -> bool:
    """A GET a channel can answer: no Range, or `Range: bytes=0-` (libavformat's)."""
    if request.method != b"GET" or request.getHeader(b"if-range") is not None:
        return False
    if request.getHeader(b"range") is None:
        return True
    return request_header(request, b"range").replace(" ", "").lower() == "bytes=0-"


class _ChannelProtocol(Protocol):
    """Given to one upstream body; the channel ignores a connection it has replaced."""

    def __init__(self, channel: LiveChannel) -> None:
        self._channel = channel

    def connectionMade(self) -> None:
        self._channel.connected(self, upstream_of(self))

    def dataReceived(self, data: bytes) -> None:
        self._channel.data_received(self, data)

    def connectionLost(self, reason: Failure = DONE) -> None:
        self._channel.upstream_ended(self, ended_cleanly(reason))


class LiveChannel(Body):
    """One upstream TS body, its ring of recent packets, and its viewers."""

    def __init__(
        self, channels: LiveChannels, key: Hashable, head: ResponseHead, reopen: Reopen
    ) -> None:
        super().__init__()
        self._channels = channels
        self._clock = channels.clock
        self._key = key
        self.head = head
        self._reopen = reopen
        self.viewers: list[Viewer] = []
        self.first_offset = 0  # body offset of chunks[0]
        self.held_bytes = 0
        self._arrived_s: list[float] = []  # per chunk, parallel to `chunks`
        self._starts_at_pat: list[bool] = []
        self._has_keyframe: list[bool] = []
        self.started_s = self._clock.seconds()
        self.reconnects = 0
        self._last_reconnect_s = self.started_s
        self._packets = Packetizer()
        self._protocol: _ChannelProtocol | None = None
        self.upstream: IPushProducer | None = None
        self._reopening: Deferred[Answer] | None = None
        self._closed = False
        self._linger: IDelayedCall | None = None
        self._timer: SilenceTimer | None = None
        self._start_linger()  # until its first viewer attaches

    @property
    def ended(self) -> bool:
        return self._closed or self.complete or self.error is not None

    @property
    def young(self) -> bool:
        return self._clock.seconds() - self.started_s < self._channels.live_after_s

    @property
    def viewer_head(self) -> ResponseHead:
        """What every viewer gets: 200, no length, never stored (it differs per join)."""
        headers = tuple(
            (name, values)
            for name, values in self.head.headers
            if name not in _OBJECT_HEADERS and name != b"cache-control"
        )
        headers += ((b"cache-control", (b"no-store",)),)
        return attrs.evolve(self.head, code=200, headers=headers, length=None, cacheable=False)

    # Upstream side.

    def take(self, body: HeldBody) -> None:
        """Read `body` (an opened upstream answer) from now on."""
        protocol = _ChannelProtocol(self)
        self._protocol = protocol
        self._timer = SilenceTimer(self._clock, self._channels.silence_timeout_s, self._silent)
        body.hand_over(protocol)

    def connected(self, protocol: _ChannelProtocol, upstream: IPushProducer) -> None:
        if protocol is self._protocol:
            self.upstream = upstream

    def data_received(self, protocol: _ChannelProtocol, data: bytes) -> None:
        if protocol is not self._protocol or self.ended:
            return
        if self._timer is not None:
            self._timer.reset()
        self._append(self._packets.feed(data))
        if not self._packets.synced_once and self._packets.skipped > _MAX_SYNC_SEARCH_BYTES:
            self._fail(bad_gateway("upstream declared MPEG-TS but sent no TS packets"))

    def _append(self, block: bytes) -> None:
        """Add whole packets to the ring (split so a chunk starts at every PAT), write
        them to every viewer with room, then trim the ring and detach who fell out."""
        if not block:
            return
        now = self._clock.seconds()
        pats = pat_offsets(block)
        keyframes = keyframe_offsets(block)
        cuts = sorted({0, *pats, len(block)})
        for start, end in pairwise(cuts):
            self.chunks.append(block[start:end])
            self._arrived_s.append(now)
            self._starts_at_pat.append(start in pats)
            self._has_keyframe.append(any(start <= key < end for key in keyframes))
        self.received += len(block)
        self.held_bytes += len(block)
        self._channels.received_bytes += len(block)
        for viewer in list(self.viewers):
            viewer.pump()
        self._trim()

    def _trim(self) -> None:
        limit = self._channels.young_max_bytes if self.young else self._channels.ring_bytes
        drop = 0
        while self.held_bytes > limit and drop < len(self.chunks) - 1:
            self.held_bytes -= len(self.chunks[drop])
            self.first_offset += len(self.chunks[drop])
            drop += 1
        if not drop:
            return
        del self.chunks[:drop], self._arrived_s[:drop]
        del self._starts_at_pat[:drop], self._has_keyframe[:drop]
        self.first_index += drop
        for viewer in list(self.viewers):
            if viewer.next_index < self.first_index:  # its next bytes are gone: detach
                self._channels.detached_viewers += 1
                viewer.abort(None)

    def upstream_ended(self, protocol: _ChannelProtocol, clean: bool) -> None:
        if protocol is not self._protocol or self.ended:
            return
        self._protocol = self.upstream = None
        if self._timer is not None:
            self._timer.cancel()
        if not clean:
            self._fail(bad_gateway("upstream failed mid-body"))
        elif self.young and self.first_offset == 0 and not self.reconnects:
            self._complete()  # a whole body after all (a segment without a length)
        elif self.viewers and self._may_reconnect():
            self._reconnect()
        else:
            self._end_stream()

    def _complete(self) -> None:
        self._append(self._packets.tail())  # the body's true end: nothing to resync
        self.complete = True
        self._forget()
        if self.head.cacheable:
            self._channels.on_complete(self._key, self.head, tuple(self.chunks), self.received)
        for viewer in list(self.viewers):
            viewer.pump()

    def _end_stream(self) -> None:
        """The source ended and will not be reconnected: viewers finish after the ring."""
        self.complete = True
        self._forget()
        for viewer in list(self.viewers):
            viewer.pump()

    def _may_reconnect(self) -> bool:
        now = self._clock.seconds()
        return self.received > 0 and now - self._last_reconnect_s >= _MIN_RECONNECT_INTERVAL_S

    def _reconnect(self) -> None:
        self.reconnects += 1
        self._channels.reconnects += 1
        self._last_reconnect_s = self._clock.seconds()
        self._packets.reset()  # the closed connection's partial packet was never sent
        log.info("live channel upstream closed; reconnecting once")
        reopening = Deferred.fromCoroutine(self._reopen())
        self._reopening = reopening
        reopening.addCallbacks(self._reopened, self._reopen_failed)

    def _reopened(self, answer: Answer) -> None:
        self._reopening = None
        if self.ended:
            answer.body.discard()
        elif answer.is_playlist or answer.response.code != 200:
            answer.body.discard()
            self._end_stream()
        else:
            self.take(answer.body)

    def _reopen_failed(self, failure: Failure) -> None:
        self._reopening = None
        if not failure.check(CancelledError, ProxyError):
            log.failure("live channel reconnect failed", failure)
        if not self.ended:
            self._end_stream()

    def _silent(self) -> None:
        self._fail(gateway_timeout("upstream body stalled"))

    def _fail(self, error: ProxyError) -> None:
        self.error = error
        self._close_upstream()
        for viewer in list(self.viewers):
            viewer.abort(error)

    def close(self) -> None:
        """Stop reading the upstream (the linger ran out, or the proxy stops)."""
        if not self.ended:
            self._closed = True
            self._close_upstream()
            for viewer in list(self.viewers):
                viewer.abort(None)

    def _close_upstream(self) -> None:
        self._forget()
        if self._timer is not None:
            self._timer.cancel()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        upstream, self.upstream, self._protocol = self.upstream, None, None
        if upstream is not None:
            upstream.stopProducing()
        if self._reopening is not None:
            self._reopening.cancel()
        self.chunks, self._arrived_s = [], []
        self._starts_at_pat, self._has_keyframe = [], []

    def _forget(self) -> None:
        self._channels.forget(self._key, self)

    # Viewer side.

    def join_index(self) -> int:
        """Where a new viewer starts: byte 0 while young; else at the PAT before the oldest
        video keyframe that arrived within the join window (a demuxer finds its tables and
        a decoder its references at once); else the oldest PAT in the window, the newest
        PAT held, or the window's first chunk."""
        if self.young and self.first_offset == 0:
            return self.first_index
        since = self._clock.seconds() - self._channels.join_window_s
        last_pat: int | None = None
        first_pat: int | None = None
        first_recent: int | None = None
        for index, arrived in enumerate(self._arrived_s):
            recent = arrived >= since
            if self._starts_at_pat[index]:
                last_pat = index
                if recent and first_pat is None:
                    first_pat = index
            if recent and first_recent is None:
                first_recent = index
            if recent and self._has_keyframe[index] and last_pat is not None:
                return self.first_index + last_pat
        for fallback in (first_pat, last_pat, first_recent):
            if fallback is not None:
                return self.first_index + fallback
        return self.end_index

    def attach(self, request: Request) -> Viewer:
        """A new viewer, starting at the join point; its head must already be written."""
        viewer = Viewer(request, self)
        index = self.join_index()
        viewer.next_index = index
        viewer.position = self.first_offset + sum(
            len(chunk) for chunk in self.chunks[: index - self.first_index]
        )
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.viewers.append(viewer)
        self._channels.joined_viewers += 1
        viewer.start()
        return viewer

    def detach(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not self.viewers and not self.ended:
            self._start_linger()

    def _start_linger(self) -> None:
        if self._linger is None or not self._linger.active():
            self._linger = self._clock.callLater(self._channels.linger_s, self.close)


class LiveChannels:
    """The live channels by fan-out key; at most one upstream connection per key."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        ring_bytes: int,
        linger_s: float,
        silence_timeout_s: float,
        on_complete: OnComplete,
        young_max_bytes: int = 32 * 1024 * 1024,
        join_window_s: float = 3.0,
        live_after_s: float = 3.0,
    ) -> None:
        self.clock = clock
        self.ring_bytes = ring_bytes
        self.linger_s = linger_s
        self.silence_timeout_s = silence_timeout_s
        self.on_complete = on_complete
        self.young_max_bytes = max(young_max_bytes, ring_bytes)
        self.join_window_s = join_window_s
        self.live_after_s = live_after_s
        self.channels: dict[Hashable, LiveChannel] = {}
        self.opened = 0
        self.reconnects = 0
        self.joined_viewers = 0
        self.detached_viewers = 0
        self.received_bytes = 0

    def stats(self) -> dict[str, int]:
        return {
            "live_channels": len(self.channels),
            "live_channels_opened": self.opened,
            "live_reconnects": self.reconnects,
            "live_viewers_joined": self.joined_viewers,
            "live_viewers_detached": self.detached_viewers,
            "live_received_bytes": self.received_bytes,
        }

    def adopt(self, key: Hashable, head: ResponseHead, body: HeldBody, reopen: Reopen) -> None:
        """Make `body` the channel for `key`; if one already runs, `body` is closed."""
        existing = self.channels.get(key)
        if existing is not None and not existing.ended:
            body.discard()
            return
        channel = LiveChannel(self, key, head, reopen)
        self.channels[key] = channel
        self.opened += 1
        channel.take(body)

    async def join(self, request: Request, key: Hashable) -> bool:
        """Answer `request` from the channel for `key`; False if there is none."""
        channel = self.channels.get(key)
        if channel is None or channel.ended or not live_request(request):
            return False
        write_head(request, channel.viewer_head)
        await channel.attach(request).done
        return True

    def forget(self, key: Hashable, channel: LiveChannel) -> None:
        if self.channels.get(key) is channel:
            del self.channels[key]

    def close_all(self) -> None:
        for channel in list(self.channels.values()):
            channel.close()
