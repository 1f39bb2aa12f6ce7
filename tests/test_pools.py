"""pools.py: one idle bound across streams' pools; a reset is not the end of a body."""

from __future__ import annotations

import resource

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.client import PotentialDataLoss, ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from hls_proxy.pools import IdleConnections, StreamPool, upstream_bounds


class BodyReader(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.reason = reason


def connection(pool: StreamPool) -> tuple[HTTP11ClientProtocol, StringTransport]:
    """A connected client protocol built by the pool's own factory."""
    protocol = pool._factory(lambda p: pool._putConnection("key", p), "test").buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


class IdleBoundTests(SynchronousTestCase):
    def test_parking_beyond_the_bound_closes_the_oldest_idle_of_any_pool(self) -> None:
        clock = Clock()
        idle = IdleConnections(limit=3)
        pools = [StreamPool(clock, idle, per_host=8) for _ in range(2)]
        made = []
        for i in range(5):
            pool = pools[i % 2]
            protocol, transport = connection(pool)
            pool._putConnection(("http", "a", i), protocol)
            made.append(transport)
        self.assertEqual(len(idle), 3)
        self.assertEqual([t.disconnecting for t in made], [True, True, False, False, False])
        self.assertEqual(idle.evicted, 2)
        # The evicted ones left their pools (and their idle timers) too.
        self.assertEqual(sum(len(c) for p in pools for c in p._connections.values()), 3)
        self.assertEqual(len(clock.getDelayedCalls()), 3)

    def test_an_idle_connection_the_origin_closes_leaves_the_bound(self) -> None:
        clock = Clock()
        idle = IdleConnections(limit=3)
        pool = StreamPool(clock, idle, per_host=8)
        protocol, _ = connection(pool)
        pool._putConnection("key", protocol)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            (len(idle), pool._connections["key"], clock.getDelayedCalls()), (0, [], [])
        )

    def test_a_reused_connection_leaves_the_bound_until_parked_again(self) -> None:
        idle = IdleConnections(limit=3)
        pool = StreamPool(Clock(), idle, per_host=8)
        protocol, _ = connection(pool)
        pool._putConnection("key", protocol)
        self.successResultOf(pool.getConnection("key", None))
        self.assertEqual(len(idle), 0)

    def test_bounds_stay_under_the_open_file_limit(self) -> None:
        self.assertEqual(upstream_bounds(256, 1000, lambda: (100, 4096)).max_idle, 25)
        self.assertEqual(upstream_bounds(256, 1000, lambda: (20000, 20000)).max_idle, 256)
        infinite = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        self.assertEqual(upstream_bounds(256, 7, lambda: infinite).max_idle, 256)


class BodyEndTests(SynchronousTestCase):
    def body_ending_with(self, head: bytes, reason: Failure) -> BodyReader:
        protocol, _ = connection(StreamPool(Clock(), IdleConnections(8), per_host=8))
        d = protocol.request(Request(b"GET", b"/", Headers({b"host": [b"a"]}), None))
        protocol.dataReceived(head + b"partial")
        response: IResponse = self.successResultOf(d)
        reader = BodyReader()
        response.deliverBody(reader)
        protocol.connectionLost(reason)
        self.assertEqual(reader.data, b"partial")
        return reader

    def test_a_length_less_body_cut_by_a_reset_is_a_failure(self) -> None:
        reader = self.body_ending_with(b"HTTP/1.1 200 OK\r\n\r\n", Failure(ConnectionLost()))
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(ResponseFailed))
        self.assertFalse(reader.reason.check(ResponseDone, PotentialDataLoss))

    def test_a_length_less_body_ended_by_a_fin_is_complete(self) -> None:
        reader = self.body_ending_with(b"HTTP/1.1 200 OK\r\n\r\n", Failure(ConnectionDone()))
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(PotentialDataLoss))

    def test_a_body_short_of_its_content_length_is_a_failure_even_after_a_fin(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        for reason in (ConnectionDone(), ConnectionLost()):
            reader = self.body_ending_with(head, Failure(reason))
            assert reader.reason is not None
            self.assertTrue(reader.reason.check(ResponseFailed), reason)

    def test_a_chunked_body_cut_short_is_a_failure(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n"
        reader = self.body_ending_with(head, Failure(ConnectionDone()))
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(ResponseFailed))
