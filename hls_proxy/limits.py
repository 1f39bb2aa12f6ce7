"""Client-side limits: a cap on connections, and a deadline for request headers.

Beyond `--max-clients` a new connection gets a 503 with Retry-After and is closed
before any request is read. A new connection that has not sent a complete request
within `--client-header-timeout` (slowloris) is dropped; idle keep-alive connections
are closed by the Site's own timeout (`--client-idle-timeout`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol

__all__ = ["Busy", "HeaderDeadline"]

_BUSY_BODY = b"too many clients, retry shortly\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 2\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(_BUSY_BODY)
) + _BUSY_BODY


class Busy(Protocol):
    """Answers 503 and closes: the proxy is at --max-clients."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(_BUSY)
        self.transport.loseConnection()


class HeaderDeadline:
    """Aborts a connection whose first request has not arrived in time."""

    def __init__(self, clock: IReactorTime, seconds: float, protocol: Any) -> None:
        self._protocol = protocol
        self._call: IDelayedCall = clock.callLater(seconds, self._expired)

    def met(self) -> None:
        if self._call.active():
            self._call.cancel()

    def _expired(self) -> None:
        transport = getattr(self._protocol, "transport", None)
        if transport is not None:
            transport.abortConnection()
