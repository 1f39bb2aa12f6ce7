"""Coalescing with streaming fan-out: one upstream fetch, many viewers, each at its own pace.

A `_Fetch` reads one upstream body into a list of chunks; every viewer of it is a
push producer registered on its own client request, with a read position in that list.
Bytes reach each viewer as they arrive. Two regimes, decided per fetch:

- **Retained** (the response may be cached: a 200 without `no-store`/`private`, not
  longer than the per-object cap, and within the in-flight budget): every chunk is kept
  until the end, then the whole body goes to the segment cache. The upstream is read at
  full speed whatever the viewers do (memory is bounded by the object cap), so a slow
  viewer slows nobody. Late viewers attach at any time and start from byte 0. If every
  viewer leaves, the fetch still finishes, for the cache.
- **Streamed** (too large or not cacheable): chunks are kept only from the slowest
  viewer's position on. The upstream is paused only when *every* viewer is paused, so it
  runs at the pace of the fastest one; with a single viewer this is plain backpressure.
  A viewer that falls more than `lag_bound_bytes` behind the fetch is detached: its
  connection is aborted (the player retries the segment, which is then a fresh fetch).
  Memory per streamed fetch is therefore at most `lag_bound_bytes` plus one read. A new
  viewer can attach only while byte 0 is still held; otherwise it starts its own fetch.
  When the last viewer leaves, the upstream request is cancelled.

A fetch whose upstream fails mid-body aborts every viewer's connection, like the relay,
and caches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from typing import Any, cast

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from .bodies import DONE, Answer, HeldBody, SilenceTimer, ended_cleanly
from .cache import ByteLru
from .errors import ProxyError, bad_gateway, gateway_timeout
from .media import ResponseHead, write_head
from .viewers import Body, Viewer

__all__ = ["CachedBody", "Diverted", "FanOut", "Opened"]

log = Logger()


@attrs.frozen
class CachedBody:
    """A complete upstream 200 response: its head and its body as the chunks it came in."""

    head: ResponseHead
    chunks: tuple[bytes, ...]
    length: int

    def slice(self, start: int, end: int) -> tuple[bytes, ...]:
        """The body bytes [start, end) as chunks, without joining the whole body."""
        out: list[bytes] = []
        offset = 0
        for chunk in self.chunks:
            chunk_end = offset + len(chunk)
            if chunk_end > start and offset < end:
                out.append(chunk[max(0, start - offset) : min(len(chunk), end - offset)])
            offset = chunk_end
            if offset >= end:
                break
        return tuple(out)


@attrs.frozen
class Opened:
    """An upstream media response whose body is held in `body`, not yet read."""

    head: ResponseHead
    body: HeldBody


@attrs.frozen
class Diverted:
    """The upstream answered with a playlist where media was expected.

    The first waiter gets the `answer` (body unread) to serve the ordinary way instead
    of fetching it again; later waiters get None and fetch on their own.
    """

    answer: Answer | None


Opener = Callable[[], Coroutine[Any, Any, "Opened | Diverted"]]


class _FetchProtocol(Protocol):
    """Given to the held body: hands the body's bytes and its end to the fetch."""

    def __init__(self, fetch: _Fetch) -> None:
        self._fetch = fetch

    def connectionMade(self) -> None:
        self._fetch.upstream = cast(IPushProducer, self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._fetch.data_received(data)

    def connectionLost(self, reason: Failure = DONE) -> None:
        self._fetch.ended(ended_cleanly(reason))


class _Fetch(Body):
    """One upstream request and its viewers."""

    def __init__(self, fanout: FanOut, key: Hashable, pinned: bool) -> None:
        super().__init__()
        self._fanout = fanout
        self._key = key
        self.pinned = pinned  # a prefetch: keep going with no viewer, if it can be cached
        self.head: ResponseHead | None = None
        self.retained = False
        self.retained_bytes = 0
        self.upstream: IPushProducer | None = None
        self.viewers: list[Viewer] = []
        self._head_waiters: list[Deferred[ResponseHead | Diverted]] = []
        self._opening: Deferred[Opened | Diverted] | None = None
        self._open_error: Failure | None = None  # failed before anyone waited
        self._upstream_paused = False
        self._timer: SilenceTimer | None = None

    @property
    def joinable(self) -> bool:
        return self.first_index == 0 and self.error is None and not self.complete

    def start(self, open_upstream: Opener) -> None:
        self._opening = Deferred.fromCoroutine(open_upstream())
        self._opening.addCallbacks(self._opened, self._open_failed)

    def wait_head(self) -> Deferred[ResponseHead | Diverted]:
        waiter: Deferred[ResponseHead | Diverted] = Deferred(canceller=self._head_waiter_left)
        if self.head is not None:
            waiter.callback(self.head)
        elif self._open_error is not None:
            waiter.errback(self._open_error)
        else:
            self._head_waiters.append(waiter)
        return waiter

    def _head_waiter_left(self, waiter: Deferred[ResponseHead | Diverted]) -> None:
        if waiter in self._head_waiters:
            self._head_waiters.remove(waiter)
        if self.head is None and not self._head_waiters and not self.pinned:
            self._forget()
            if self._opening is not None and not self._opening.called:
                self._opening.cancel()

    def _opened(self, result: Opened | Diverted) -> None:
        waiters, self._head_waiters = self._head_waiters, []
        if isinstance(result, Diverted):
            self._forget()
            for index, waiter in enumerate(waiters):
                waiter.callback(result if index == 0 else Diverted(None))
            if not waiters and result.answer is not None:
                result.answer.body.discard()  # a prefetch that found a playlist
            return
        self.head = head = result.head
        fanout = self._fanout
        cache = fanout.cache
        self.retained = (
            head.cacheable
            and (head.length is None or head.length <= cache.max_object_bytes)
            and fanout.retained_bytes + (head.length or 0) <= cache.budget_bytes
        )
        self._timer = SilenceTimer(fanout.clock, fanout.silence_timeout_s, self._silent)
        for waiter in waiters:
            waiter.callback(head)  # each viewer attaches now, before any byte is delivered
        result.body.hand_over(_FetchProtocol(self))
        self._maybe_cancel()

    def _open_failed(self, failure: Failure) -> None:
        self._forget()
        waiters, self._head_waiters = self._head_waiters, []
        for waiter in waiters:
            waiter.errback(failure)
        if waiters:
            return
        if self.pinned:
            if not failure.check(CancelledError, ProxyError):
                log.failure("prefetch failed", failure)
        else:  # it failed at once, before its first viewer waited: that viewer gets it
            self._open_error = failure

    def attach(self, viewer: Viewer) -> None:
        self.viewers.append(viewer)
        viewer.start()

    def data_received(self, data: bytes) -> None:
        if self.error is not None or self.complete:
            return
        if self._timer is not None:
            self._timer.reset()
        self.chunks.append(data)
        self.received += len(data)
        fanout = self._fanout
        fanout.upstream_bytes += len(data)
        if self.retained:
            self.retained_bytes += len(data)
            fanout.retained_bytes += len(data)
            over_object = self.received > fanout.cache.max_object_bytes
            if over_object or fanout.retained_bytes > fanout.cache.budget_bytes:
                self._stop_retaining()
        for viewer in list(self.viewers):
            viewer.pump()
        if not self.retained:
            self._drop_laggards()
            self._release()
            self._update_pause()

    def _stop_retaining(self) -> None:
        self.retained = False
        self._fanout.retained_bytes -= self.retained_bytes
        self.retained_bytes = 0
        self._maybe_cancel()

    def _drop_laggards(self) -> None:
        bound = self._fanout.lag_bound_bytes
        for viewer in list(self.viewers):
            if viewer.lag() > bound:
                self._fanout.detached_viewers += 1
                viewer.abort(None)

    def _release(self) -> None:
        """Drop chunks every viewer has written (streamed regime only)."""
        keep_from = min((v.next_index for v in self.viewers), default=self.end_index)
        if keep_from > self.first_index:
            del self.chunks[: keep_from - self.first_index]
            self.first_index = keep_from

    def _update_pause(self) -> None:
        if self.upstream is None or self.complete or self.error is not None:
            return
        all_paused = bool(self.viewers) and all(viewer.paused for viewer in self.viewers)
        if all_paused and not self.retained and not self._upstream_paused:
            self._upstream_paused = True
            self.upstream.pauseProducing()
        elif self._upstream_paused and not all_paused:
            self._upstream_paused = False
            self.upstream.resumeProducing()

    def viewer_paused(self) -> None:
        self._update_pause()

    def viewer_resumed(self) -> None:
        if not self.retained:
            self._release()
        self._update_pause()

    def detach(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not self.retained:
            self._release()
        self._maybe_cancel()
        self._update_pause()

    def _maybe_cancel(self) -> None:
        """Nobody is left and the body will not be cached: stop reading it."""
        if self.viewers or self.retained or self.complete or self.error is not None:
            return
        if self.upstream is not None:
            self._fail(None)

    def _silent(self) -> None:
        self._fail(gateway_timeout("upstream body stalled"))

    def _fail(self, error: ProxyError | None) -> None:
        self.error = error or bad_gateway("upstream fetch cancelled")
        self._forget()
        self._unretain()
        if self.upstream is not None:
            self.upstream.stopProducing()
        for viewer in list(self.viewers):
            viewer.abort(self.error)
        self.chunks = []

    def ended(self, clean: bool) -> None:
        if self.error is not None or self.complete:
            return
        if self._timer is not None:
            self._timer.cancel()
        head = self.head
        if head is not None and head.length is not None and self.received != head.length:
            clean = False  # a body short of its Content-Length never looks complete
        if not clean:
            self._fail(bad_gateway("upstream failed mid-body"))
            return
        self.complete = True
        self._forget()
        if self.retained and head is not None:
            cached = CachedBody(head, tuple(self.chunks), self.received)
            self._fanout.cache.put(self._key, cached, self.received, head.ttl_s)
        self._unretain()
        for viewer in list(self.viewers):
            viewer.pump()

    def _unretain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.retained:
            self._fanout.retained_bytes -= self.retained_bytes
            self.retained_bytes = 0

    def _forget(self) -> None:
        if self._fanout.inflight.get(self._key) is self:
            del self._fanout.inflight[self._key]


class FanOut:
    """Serves media by key from the segment cache, an in-flight fetch, or a new fetch."""

    def __init__(
        self,
        clock: IReactorTime,
        cache: ByteLru[Hashable, CachedBody],
        *,
        silence_timeout_s: float,
        lag_bound_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.clock = clock
        self.cache = cache
        self.silence_timeout_s = silence_timeout_s
        self.lag_bound_bytes = lag_bound_bytes
        self.inflight: dict[Hashable, _Fetch] = {}
        self.retained_bytes = 0
        self.upstream_fetches = 0
        self.upstream_bytes = 0
        self.coalesced = 0
        self.detached_viewers = 0

    def stats(self) -> dict[str, int]:
        return {
            "coalesced_requests": self.coalesced,
            "upstream_fetches": self.upstream_fetches,
            "upstream_received_bytes": self.upstream_bytes,
            "detached_viewers": self.detached_viewers,
        }

    def cached_head(self, key: Hashable) -> ResponseHead | None:
        """The head a GET of `key` would be answered with, if the object is cached."""
        cached = self.cache.get(key)
        return None if cached is None else cached.head

    async def serve(
        self, request: Request, key: Hashable, open_upstream: Opener
    ) -> Diverted | None:
        """Answer a GET for `key`; a `Diverted` when the upstream sent a playlist instead."""
        cached = self.cache.get(key)
        if cached is not None:
            await self.serve_cached(request, cached)
            return None
        fetch = self.inflight.get(key)
        if fetch is None or not fetch.joinable:
            fetch = self.start(key, open_upstream, pinned=False)
        else:
            self.coalesced += 1
        head = await fetch.wait_head()
        if isinstance(head, Diverted):
            return head
        if not fetch.joinable:  # it ended or moved on in between: serve on our own
            return await self.serve(request, key, open_upstream)
        write_head(request, head)
        viewer = Viewer(request, fetch)
        fetch.attach(viewer)
        await viewer.done
        return None

    def prefetch(self, key: Hashable, open_upstream: Opener) -> None:
        """Fetch `key` into the cache if it is neither cached nor being fetched."""
        if key in self.cache or key in self.inflight:
            return
        self.start(key, open_upstream, pinned=True)

    async def serve_cached(self, request: Request, cached: CachedBody) -> None:
        write_head(request, attrs.evolve(cached.head, length=cached.length))
        viewer = Viewer(request, Body.whole(cached.chunks))
        viewer.start()
        await viewer.done

    def start(self, key: Hashable, open_upstream: Opener, pinned: bool) -> _Fetch:
        fetch = _Fetch(self, key, pinned)
        self.inflight[key] = fetch
        self.upstream_fetches += 1
        fetch.start(open_upstream)
        return fetch
