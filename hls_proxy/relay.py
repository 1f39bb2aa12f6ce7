"""One upstream body written to one client, with backpressure: the cheap path.

Used for answers that cannot be shared (Range requests the cache cannot answer, HEAD
never reaches here). The Relay is given to `IResponse.deliverBody`; its transport is
the upstream connection, registered as the client request's push producer, so a full
client socket pauses the upstream socket (and TCP slows the upstream down).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.server import Request

from ._http import finish_if_connected, render_error, settle
from .bodies import DONE, SilenceTimer, ended_cleanly, upstream_of
from .errors import ProxyError, bad_gateway, gateway_timeout

__all__ = ["Relay"]


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
        self._timer: SilenceTimer | None = None
        self._ended = False
        self.bytes_relayed = 0
        self.done: Deferred[None] = Deferred(canceller=lambda _: self._stop_upstream())

    def connectionMade(self) -> None:
        self._request.registerProducer(upstream_of(self), True)
        self._timer = SilenceTimer(self._clock, self._idle_timeout_s, self._upstream_silent)

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        assert self._timer is not None
        self._timer.reset()
        self.bytes_relayed += len(data)
        self._request.write(data)

    def connectionLost(self, reason: Failure = DONE) -> None:
        if self._end():
            return
        if ended_cleanly(reason):
            finish_if_connected(self._request)
            self._settle(None)
        else:
            self._fail(bad_gateway("upstream failed mid-body"))

    def _upstream_silent(self) -> None:
        if self._end():
            return
        upstream_of(self).stopProducing()
        self._fail(gateway_timeout("upstream body stalled"))

    def _stop_upstream(self) -> None:
        if not self._end():
            upstream_of(self).stopProducing()

    def _end(self) -> bool:
        """Mark the relay ended; True if it already was (teardown arrives twice)."""
        was_ended, self._ended = self._ended, True
        if self._timer is not None:
            self._timer.cancel()
        return was_ended

    def _fail(self, error: ProxyError) -> None:
        """An error answer if no byte was sent yet; else the client connection is aborted."""
        render_error(self._request, error.status, error.message)
        self._settle(error)

    def _settle(self, error: ProxyError | None) -> None:
        settle(self.done, error)
