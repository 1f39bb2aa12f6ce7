"""Viewers of a body: each writes the body's chunks to its client at its own pace.

A Body is a list of chunks that grows while an upstream fetch runs (fanout.py) or is
complete (a cached object). A Viewer is one client's push producer with its own read
position: it writes while its socket has room and never buffers chunks of its own.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.server import Request
from zope.interface import implementer

from ._http import abort_client, finish_if_connected, render_error, settle
from .errors import ProxyError

__all__ = ["Body", "Viewer"]


class Body:
    """Chunks from index `first_index` on; complete or failed once the upstream ends."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.first_index = 0
        self.received = 0
        self.complete = False
        self.error: ProxyError | None = None

    @classmethod
    def whole(cls, chunks: tuple[bytes, ...]) -> Body:
        body = cls()
        body.chunks = list(chunks)
        body.received = sum(len(chunk) for chunk in chunks)
        body.complete = True
        return body

    @property
    def end_index(self) -> int:
        return self.first_index + len(self.chunks)

    def viewer_paused(self) -> None:
        pass

    def viewer_resumed(self) -> None:
        pass

    def detach(self, viewer: Viewer) -> None:
        pass


@implementer(IPushProducer)
class Viewer:
    """One client of a body: writes chunks when its socket has room, never buffers its own.

    With a byte window [`start`, `end`) it writes only those bytes of the body (a Range
    answered from a shared fetch); `end` None means to the end of the body.
    """

    def __init__(
        self, request: Request, body: Body, start: int = 0, end: int | None = None
    ) -> None:
        self._request = request
        self.body = body
        self.next_index = body.first_index
        self.position = 0  # body offset of the chunk at next_index (windows need index 0)
        self._window = (start, end)
        self.sent = 0
        self.paused = False
        self._ended = False
        self._pumping = False
        self.done: Deferred[None] = Deferred(canceller=lambda _: self._leave())

    def start(self) -> None:
        self._request.registerProducer(self, True)
        self.pump()

    def pump(self) -> None:
        if self._pumping or self._ended:
            return  # request.write may re-enter through pauseProducing/resumeProducing
        self._pumping = True
        try:
            body = self.body
            while not self.paused and self.next_index < body.end_index:
                chunk = body.chunks[self.next_index - body.first_index]
                chunk_start = self.position
                self.next_index += 1
                self.position += len(chunk)
                start, end = self._window
                if start > chunk_start or (end is not None and end < self.position):
                    low = max(0, start - chunk_start)
                    high = len(chunk) if end is None else end - chunk_start
                    chunk = chunk[low:high]
                if chunk:
                    self.sent += len(chunk)
                    self._request.write(chunk)
                if self._ended:
                    return
                if end is not None and self.position >= end:
                    self._finish()
                    return
            if self.next_index >= body.end_index and body.complete:
                self._finish()
            elif body.error is not None:
                self.abort(body.error)
        finally:
            self._pumping = False

    def lag(self) -> int:
        return self.body.received - self.position

    def pauseProducing(self) -> None:
        self.paused = True
        self.body.viewer_paused()

    def resumeProducing(self) -> None:
        self.paused = False
        self.pump()
        self.body.viewer_resumed()

    def stopProducing(self) -> None:
        self._leave()

    def _leave(self) -> None:
        """The client left (first `stopProducing`, then the cancelled Deferred)."""
        if self._end():
            return
        self.body.detach(self)
        self._settle(None)

    def _finish(self) -> None:
        if self._end():
            return
        finish_if_connected(self._request)
        self.body.detach(self)
        self._settle(None)

    def abort(self, error: ProxyError | None) -> None:
        """End this viewer: an error answer if nothing was sent yet, else an aborted
        connection (never a clean-looking short body)."""
        if self._end():
            return
        if error is None:
            abort_client(self._request)
        else:
            render_error(self._request, error.status, error.message)
        self.body.detach(self)
        self._settle(error)

    def _end(self) -> bool:
        was_ended, self._ended = self._ended, True
        return was_ended

    def _settle(self, error: ProxyError | None) -> None:
        settle(self.done, error)
