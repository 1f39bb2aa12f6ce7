"""Upstream connection pools: one per stream, one bound on idle sockets across all of them.

Each stream keeps its own HTTPConnectionPool (streams never share connections), so
a thousand streams could each park a few idle keep-alive sockets and run the process
out of file descriptors. `IdleConnections` is one LRU of every pool's idle
connections: parking one beyond the bound closes the least recently parked one,
whichever stream owns it.

The pool's connections also tell a reset from a clean close: an upstream body
without a length that ends in a TCP reset is cut short, not complete (Twisted
reports both as PotentialDataLoss).
"""

from __future__ import annotations

import resource
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import attrs
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.http import _IdentityTransferDecoder

__all__ = ["IdleConnections", "StreamPool", "UpstreamBounds", "upstream_bounds"]

log = Logger()


class IdleConnections:
    """The least recently parked idle upstream connections of every pool, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # connection -> how to close it and take it out of its pool
        self._idle: OrderedDict[HTTP11ClientProtocol, Callable[[], None]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._idle)

    def parked(self, connection: HTTP11ClientProtocol, drop: Callable[[], None]) -> None:
        self._idle[connection] = drop
        self._idle.move_to_end(connection)
        while len(self._idle) > self.limit:
            _, oldest_drop = self._idle.popitem(last=False)
            self.evicted += 1
            oldest_drop()

    def taken(self, connection: Any) -> None:
        self._idle.pop(connection, None)


class _ResetAwareProtocol(HTTP11ClientProtocol):
    """HTTP11ClientProtocol that fails a length-less body cut by a reset, and tells its
    pool when it dies while idle."""

    def __init__(
        self,
        quiescent: Callable[[HTTP11ClientProtocol], None],
        lost_idle: Callable[[HTTP11ClientProtocol], None],
    ) -> None:
        super().__init__(quiescent)
        self._lost_idle = lost_idle

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]  # untyped base
        was_idle = self.state == "QUIESCENT"
        parser = getattr(self, "_parser", None)
        decoder = getattr(parser, "bodyDecoder", None)
        if (
            not reason.check(ConnectionDone)
            and isinstance(decoder, _IdentityTransferDecoder)
            and decoder.contentLength is None
        ):
            # A body delimited by the close that ends in a reset (not a FIN) was cut
            # short. Claiming one byte is still due makes the parser report data loss
            # (ResponseFailed, as for a body short of its Content-Length) instead of
            # PotentialDataLoss, which every reader takes as the end of the body.
            decoder.contentLength = 1
        super().connectionLost(reason)
        if was_idle:
            self._lost_idle(self)


class _ClientFactory(_HTTP11ClientFactory):
    # Every pooled connection would log "Starting/Stopping factory" at info level.
    noisy = False

    def __init__(
        self,
        quiescent: Callable[[HTTP11ClientProtocol], None],
        metadata: str,
        lost_idle: Callable[[HTTP11ClientProtocol], None],
    ) -> None:
        super().__init__(quiescent, metadata)
        self._lost_idle = lost_idle

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _ResetAwareProtocol(self._quiescentCallback, self._lost_idle)


class StreamPool(HTTPConnectionPool):
    """One stream's pool, whose idle connections count against the shared bound.

    A request that finds its reused connection closed by the origin before any byte
    of the response arrived is sent again, once, on a new connection (RFC 9112
    section 9.3.1; Twisted does this for idempotent methods without a body only).
    """

    def __init__(self, reactor: IReactorTime, idle: IdleConnections, per_host: int) -> None:
        super().__init__(reactor, persistent=True)
        self.maxPersistentPerHost = per_host
        self.retryAutomatically = True
        self._idle = idle

        def factory(
            quiescent: Callable[[HTTP11ClientProtocol], None], metadata: str
        ) -> _ClientFactory:
            return _ClientFactory(quiescent, metadata, self._forget)

        self._factory = factory  # type: ignore[assignment]  # a class attribute upstream

    def getConnection(self, key: Hashable, endpoint: Any) -> Any:
        parked = list(self._connections.get(key, ()))
        try:
            return super().getConnection(key, endpoint)
        finally:
            still = self._connections.get(key, [])
            for connection in parked:
                if connection not in still:
                    self._idle.taken(connection)

    def _putConnection(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        before = list(self._connections.get(key, ()))
        super()._putConnection(key, connection)
        after = self._connections.get(key, [])
        for dropped in before:
            if dropped not in after:  # over maxPersistentPerHost: the pool closed it
                self._idle.taken(dropped)
        if connection in after:
            self._idle.parked(connection, lambda: self._drop(key, connection))

    def _removeConnection(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        self._idle.taken(connection)
        super()._removeConnection(key, connection)

    def _drop(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        """Evicted from the shared bound: close it and forget it."""
        connections = self._connections.get(key, [])
        if connection in connections:
            connections.remove(connection)
            self._timeouts.pop(connection).cancel()
        if connection.transport is not None:
            connection.transport.loseConnection()

    def _forget(self, connection: HTTP11ClientProtocol) -> None:
        """An idle connection the origin closed: out of the pool and the bound now, not
        when its idle timer fires minutes later."""
        self._idle.taken(connection)
        for connections in self._connections.values():
            if connection in connections:
                connections.remove(connection)
                self._timeouts.pop(connection).cancel()
                return

    def closeCachedConnections(self) -> Any:
        for connections in self._connections.values():
            for connection in connections:
                self._idle.taken(connection)
        return super().closeCachedConnections()


@attrs.frozen
class UpstreamBounds:
    """How many idle upstream sockets and live streams this process keeps at most."""

    max_idle: int
    max_streams: int


def upstream_bounds(
    max_idle: int,
    max_streams: int,
    nofile: Callable[[], tuple[int, int]] = lambda: resource.getrlimit(resource.RLIMIT_NOFILE),
) -> UpstreamBounds:
    """The configured bounds, lowered to stay well under the open-file limit (logged).

    Idle upstream sockets get at most a quarter of the descriptors: the rest is for
    clients and for upstream requests in flight.
    """
    soft, _ = nofile()
    chosen = max_idle
    if soft != resource.RLIM_INFINITY and soft > 0:
        chosen = max(1, min(max_idle, soft // 4))
    log.info(
        "upstream bounds: {max_idle} idle upstream connections (asked {asked}), "
        "{max_streams} streams; open-file limit {soft}",
        max_idle=chosen,
        asked=max_idle,
        max_streams=max_streams,
        soft=soft,
    )
    return UpstreamBounds(chosen, max_streams)
