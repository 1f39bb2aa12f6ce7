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
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.server import Request

from .cache import ByteLru, CachedBody
from .errors import ProxyError, bad_gateway, gateway_timeout
from .relay import BodyTap
from .viewers import Body, Viewer

__all__ = ["FanOut", "Handover", "NotMedia", "Opened", "ResponseHead", "parse_range"]

log = Logger()

Headers = tuple[tuple[bytes, tuple[bytes, ...]], ...]


class Handover(Exception):
    """The upstream answered with another kind of thing than expected.

    It carries the response, body unread, so that the first waiter can serve it the
    ordinary way instead of fetching it again; later waiters get None and fetch anew.
    """

    def __init__(self, response: Any, tap: BodyTap) -> None:
        super().__init__()
        self._taken: tuple[Any, BodyTap] | None = (response, tap)

    def claim(self) -> tuple[Any, BodyTap] | None:
        taken, self._taken = self._taken, None
        return taken

    def discard(self) -> None:
        taken = self.claim()
        if taken is not None:
            taken[1].discard()


class NotMedia(Handover):
    """The upstream answered a media request with a playlist."""


@attrs.frozen
class ResponseHead:
    """Status and headers every viewer of a fetch is answered with."""

    code: int
    headers: Headers
    length: int | None
    cacheable: bool
    ttl_s: float | None = None


@attrs.frozen
class Opened:
    """An upstream response whose body is held in `tap`, not yet read."""

    head: ResponseHead
    tap: BodyTap


Opener = Callable[[], Coroutine[Any, Any, Opened]]


def parse_range(value: str, length: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as [start, end); None if not one we serve; False if unsatisfiable."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    try:
        if not dash:
            return None
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return False
            return (max(0, length - suffix), length)
        start = int(first)
        end = length if last == "" else min(length, int(last) + 1)
    except ValueError:
        return None
    if start >= length or end <= start:
        return False
    return (start, end)


class _FetchProtocol(Protocol):
    """Given to deliverBody: hands the body's bytes and its end to the fetch."""

    def __init__(self, fetch: _Fetch) -> None:
        self._fetch = fetch

    def connectionMade(self) -> None:
        self._fetch.upstream = cast(IPushProducer, self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._fetch.data_received(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self._fetch.ended(reason.check(ResponseDone, PotentialDataLoss) is not None)


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
        self._head_waiters: list[Deferred[ResponseHead]] = []
        self._opening: Deferred[Opened] | None = None
        self._upstream_paused = False
        self._timer: Any = None

    @property
    def joinable(self) -> bool:
        return self.first_index == 0 and self.error is None and not self.complete

    def start(self, open_upstream: Opener) -> None:
        self._opening = Deferred.fromCoroutine(open_upstream())
        self._opening.addCallbacks(self._opened, self._open_failed)

    def wait_head(self) -> Deferred[ResponseHead]:
        if self.head is not None:
            return _fired(self.head)
        waiter: Deferred[ResponseHead] = Deferred(canceller=self._head_waiter_left)
        self._head_waiters.append(waiter)
        return waiter

    def _head_waiter_left(self, waiter: Deferred[ResponseHead]) -> None:
        if waiter in self._head_waiters:
            self._head_waiters.remove(waiter)
        if self.head is None and not self._head_waiters and not self.pinned:
            self._forget()
            if self._opening is not None and not self._opening.called:
                self._opening.cancel()

    def _opened(self, opened: Opened) -> None:
        self.head = head = opened.head
        fanout = self._fanout
        cache = fanout.cache
        self.retained = (
            head.cacheable
            and (head.length is None or head.length <= cache.max_object_bytes)
            and fanout.retained_bytes + (head.length or 0) <= cache.budget_bytes
        )
        self._timer = fanout.clock.callLater(fanout.silence_timeout_s, self._silent)
        waiters, self._head_waiters = self._head_waiters, []
        for waiter in waiters:
            waiter.callback(head)  # each viewer attaches now, before any byte is delivered
        opened.tap.hand_over(_FetchProtocol(self))
        self._maybe_cancel()

    def _open_failed(self, failure: Failure) -> None:
        self._forget()
        waiters, self._head_waiters = self._head_waiters, []
        for waiter in waiters:
            waiter.errback(failure)
        if waiters:
            return
        if isinstance(failure.value, Handover):
            failure.value.discard()
        elif not failure.check(CancelledError, ProxyError):
            log.failure("prefetch failed", failure)

    def attach(self, viewer: Viewer) -> None:
        self.viewers.append(viewer)
        viewer.start()

    def data_received(self, data: bytes) -> None:
        if self.error is not None or self.complete:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._fanout.silence_timeout_s)
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
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not clean:
            self._fail(bad_gateway("upstream failed mid-body"))
            return
        self.complete = True
        self._forget()
        head = self.head
        if self.retained and head is not None:
            cached = CachedBody(head.headers, tuple(self.chunks), self.received)
            self._fanout.cache.put(self._key, cached, self.received, head.ttl_s)
        self._unretain()
        for viewer in list(self.viewers):
            viewer.pump()

    def _unretain(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self.retained:
            self._fanout.retained_bytes -= self.retained_bytes
            self.retained_bytes = 0

    def _forget(self) -> None:
        if self._fanout.inflight.get(self._key) is self:
            del self._fanout.inflight[self._key]


def _fired(value: ResponseHead) -> Deferred[ResponseHead]:
    d: Deferred[ResponseHead] = Deferred()
    d.callback(value)
    return d


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

    async def serve(self, request: Request, key: Hashable, open_upstream: Opener) -> None:
        """Answer a GET for `key`. Raises `NotMedia` when the upstream sent a playlist."""
        cached = self.cache.get(key)
        if cached is not None:
            await self._serve_cached(request, cached)
            return
        fetch = self.inflight.get(key)
        if fetch is None or not fetch.joinable:
            fetch = self._start(key, open_upstream, pinned=False)
        else:
            self.coalesced += 1
        head = await fetch.wait_head()
        if not fetch.joinable:  # it ended or moved on in between: serve on our own
            await self.serve(request, key, open_upstream)
            return
        _write_head(request, head.code, head.headers, head.length)
        viewer = Viewer(request, fetch)
        fetch.attach(viewer)
        await viewer.done

    def prefetch(self, key: Hashable, open_upstream: Opener) -> None:
        """Fetch `key` into the cache if it is neither cached nor being fetched."""
        if key in self.cache or key in self.inflight:
            return
        self._start(key, open_upstream, pinned=True)

    async def serve_range(self, request: Request, key: Hashable, range_value: bytes) -> bool:
        """Answer a Range request from a complete cached object; False if there is none."""
        cached = self.cache.get(key)
        if cached is None:
            return False
        if_range = request.getHeader(b"if-range")
        if if_range is not None:
            validator = if_range.encode("latin-1") if isinstance(if_range, str) else if_range
            if validator not in (cached.header(b"etag"), cached.header(b"last-modified")):
                await self._serve_cached(request, cached)
                return True
        wanted = parse_range(range_value.decode("latin-1"), cached.length)
        if wanted is None:
            return False
        if wanted is False:
            request.setResponseCode(416)
            request.setHeader(b"content-range", b"bytes */%d" % cached.length)
            request.setHeader(b"content-length", b"0")
            request.finish()
            return True
        assert isinstance(wanted, tuple)
        start, end = wanted
        content_range = b"bytes %d-%d/%d" % (start, end - 1, cached.length)
        headers = (*cached.headers, (b"content-range", (content_range,)))
        _write_head(request, 206, headers, end - start)
        viewer = Viewer(request, Body.whole(cached.slice(start, end)))
        viewer.start()
        await viewer.done
        return True

    async def _serve_cached(self, request: Request, cached: CachedBody) -> None:
        _write_head(request, 200, cached.headers, cached.length)
        viewer = Viewer(request, Body.whole(cached.chunks))
        viewer.start()
        await viewer.done

    def _start(self, key: Hashable, open_upstream: Opener, pinned: bool) -> _Fetch:
        fetch = _Fetch(self, key, pinned)
        self.inflight[key] = fetch
        self.upstream_fetches += 1
        fetch.start(open_upstream)
        return fetch


def _write_head(request: Request, code: int, headers: Headers, length: int | None) -> None:
    request.setResponseCode(code)
    for name, values in headers:
        request.responseHeaders.setRawHeaders(name, list(values))
    if length is not None:
        request.setHeader(b"content-length", b"%d" % length)
