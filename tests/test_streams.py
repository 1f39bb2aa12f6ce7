"""Streams: identity from entry URL + headers, isolation, idle expiry on a Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.signing import StreamSpec
from hls_proxy.streams import StreamRegistry, stream_spec


class FakeUpstream:
    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.closed = 0

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)


class StreamSpecTests(SynchronousTestCase):
    def test_same_entry_and_headers_same_stream_in_any_order_and_case(self) -> None:
        first = stream_spec("http://a/x.m3u8", {"Referer": "r", "user-agent": "u"})
        second = stream_spec("http://a/x.m3u8", {"User-Agent": "u", "referer": "r"})
        self.assertEqual(first, second)
        self.assertEqual(first.headers, (("referer", "r"), ("user-agent", "u")))

    def test_other_headers_or_entry_make_another_stream(self) -> None:
        base = stream_spec("http://a/x.m3u8", {"referer": "r"})
        self.assertNotEqual(
            base.stream_id, stream_spec("http://a/x.m3u8", {"referer": "s"}).stream_id
        )
        self.assertNotEqual(
            base.stream_id, stream_spec("http://a/y.m3u8", {"referer": "r"}).stream_id
        )


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.made: list[FakeUpstream] = []

        def make(spec: StreamSpec) -> FakeUpstream:
            upstream = FakeUpstream(spec)
            self.made.append(upstream)
            return upstream

        self.registry = StreamRegistry(self.clock, make, idle_timeout_s=60)  # type: ignore[arg-type]

    def test_one_upstream_per_stream_reused(self) -> None:
        spec = stream_spec("http://a/x.m3u8", {})
        self.assertIs(self.registry.get(spec).upstream, self.registry.get(spec).upstream)
        self.registry.get(stream_spec("http://a/y.m3u8", {}))
        self.assertEqual((len(self.made), len(self.registry)), (2, 2))

    def test_idle_streams_expire_and_close_their_pool_used_ones_stay(self) -> None:
        idle, busy = stream_spec("http://a/1", {}), stream_spec("http://a/2", {})
        self.registry.get(idle)
        with self.registry.using(busy):
            self.clock.advance(61)
            self.registry.expire()
            self.assertEqual(len(self.registry), 1)
            self.assertEqual([u.closed for u in self.made], [1, 0])
        self.clock.advance(30)
        self.registry.expire()
        self.assertEqual(len(self.registry), 1)  # used 30 s ago
        self.clock.advance(31)
        self.registry.expire()
        self.assertEqual((len(self.registry), self.made[1].closed), (0, 1))

    def test_close_all(self) -> None:
        self.registry.get(stream_spec("http://a/1", {}))
        self.registry.close_all()
        self.assertEqual((len(self.registry), self.made[0].closed), (0, 1))


class StreamBoundTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.made: list[FakeUpstream] = []

        def make(spec: StreamSpec) -> FakeUpstream:
            upstream = FakeUpstream(spec)
            self.made.append(upstream)
            return upstream

        self.registry = StreamRegistry(self.clock, make, idle_timeout_s=60, max_streams=2)  # type: ignore[arg-type]

    def test_when_full_the_least_recently_used_idle_stream_is_closed(self) -> None:
        first, second, third = (stream_spec(f"http://a/{i}", {}) for i in range(3))
        self.registry.get(first)
        self.clock.advance(1)
        self.registry.get(second)
        self.clock.advance(1)
        self.registry.get(first)  # used again: `second` is now the oldest
        self.registry.get(third)
        self.assertEqual((len(self.registry), [u.closed for u in self.made]), (2, [0, 1, 0]))

    def test_when_every_stream_is_busy_a_new_one_is_503(self) -> None:
        with self.registry.using(stream_spec("http://a/1", {})):
            with self.registry.using(stream_spec("http://a/2", {})):
                with self.assertRaises(ProxyError) as raised:
                    self.registry.get(stream_spec("http://a/3", {}))
        self.assertEqual(raised.exception.status, 503)
        self.assertEqual([u.closed for u in self.made], [0, 0])
