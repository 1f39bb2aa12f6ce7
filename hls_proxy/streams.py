"""Per-stream contexts and the registry that drops idle ones.

A stream is one viewer-facing entry (entry URL + upstream headers). It owns an
Upstream (pool, cookie jar, headers) so streams never share cookies or connections.
There is no global "current stream": every request names its stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime

from .errors import ProxyError
from .signing import StreamSpec
from .streamspec import stream_spec

if TYPE_CHECKING:
    from .upstream import Upstream

__all__ = ["Stream", "StreamRegistry", "stream_spec"]


def jar_cookies(stream: Stream, url: str) -> str:
    """The cookies the stream's upstream has set that a request for `url` would send."""
    cookies = stream.upstream.cookies
    return cookies.header(url) if len(cookies) else ""


@attrs.define
class Stream:
    """One stream's live state: its upstream client and when it was last used."""

    spec: StreamSpec
    upstream: Upstream
    last_used_s: float
    in_flight: int = 0


class StreamRegistry:
    """Streams by id, created on first use and closed after they idle."""

    def __init__(
        self,
        clock: IReactorTime,
        make_upstream: Callable[[StreamSpec], Upstream],
        idle_timeout_s: float,
        max_streams: int = 1000,
    ) -> None:
        self._clock = clock
        self._max_streams = max_streams
        self._make_upstream = make_upstream
        self._idle_timeout_s = idle_timeout_s
        self._streams: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, spec: StreamSpec) -> Stream:
        now = self._clock.seconds()
        stream = self._streams.get(spec.stream_id)
        if stream is None or stream.spec != spec:
            if stream is not None:  # same id, other headers: never mix them
                del self._streams[spec.stream_id]
                stream.upstream.close()
            if len(self._streams) >= self._max_streams:
                self._make_room()
            stream = Stream(spec, self._make_upstream(spec), now)
            self._streams[spec.stream_id] = stream
        stream.last_used_s = now
        return stream

    def _make_room(self) -> None:
        """Close the least recently used idle stream; 503 when every stream is busy.

        Each stream has its own pool and cookie jar, so a stream per distinct h_* set
        would otherwise let a client open streams (and sockets) without end.
        """
        idle = [stream for stream in self._streams.values() if stream.in_flight == 0]
        if not idle:
            raise ProxyError(503, "too many streams")
        oldest = min(idle, key=lambda stream: stream.last_used_s)
        del self._streams[oldest.spec.stream_id]
        oldest.upstream.close()

    @contextmanager
    def using(self, spec: StreamSpec) -> Iterator[Stream]:
        """The stream, kept from expiring while the block runs."""
        stream = self.get(spec)
        stream.in_flight += 1
        try:
            yield stream
        finally:
            stream.in_flight -= 1
            stream.last_used_s = self._clock.seconds()

    def expire(self) -> None:
        """Close streams idle for longer than the timeout."""
        deadline = self._clock.seconds() - self._idle_timeout_s
        for stream_id, stream in list(self._streams.items()):
            if stream.in_flight == 0 and stream.last_used_s < deadline:
                del self._streams[stream_id]
                stream.upstream.close()

    def close_all(self) -> Deferred[None]:
        streams, self._streams = list(self._streams.values()), {}
        closing = DeferredList([stream.upstream.close() for stream in streams])
        return closing.addCallback(lambda _: None)
