"""The fan-out over StringTransports: one upstream connection, many clients, each paced alone.

Clients are StringTransports on the proxy's HTTPChannels; each upstream connection the
proxy dials on the MemoryReactorClock is fed raw HTTP bytes by the test.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind

from .memory import MemoryProxy as Proxy
from .memory import body_of, child
from .memory import media_head as head

SEG = "http://o.example/s1.ts"


class CoalescingTests(SynchronousTestCase):
    def test_many_clients_one_upstream_request_and_bytes_as_they_arrive(self) -> None:
        proxy = Proxy(self)
        clients = [proxy.get(child(SEG)) for _ in range(5)]
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        proxy.answer(0, head(300) + b"a" * 100)
        for transport, _ in clients:
            self.assertEqual(body_of(transport), b"a" * 100)
        late, _ = proxy.get(child(SEG))  # joins mid-body, gets byte 0 on
        proxy.answer(0, b"b" * 200)
        for transport, _ in [*clients, (late, None)]:
            self.assertEqual(body_of(transport), b"a" * 100 + b"b" * 200)
            self.assertIn(b"Cache-Control: public, max-age=86400", transport.value())
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        cached, _ = proxy.get(child(SEG))
        self.assertEqual(body_of(cached), b"a" * 100 + b"b" * 200)
        self.assertEqual(len(proxy.reactor.tcpClients), 1, "a cache hit dials nothing")

    def test_a_slow_viewer_does_not_slow_the_fetch_or_the_fast_one(self) -> None:
        proxy = Proxy(self)
        slow, _ = proxy.get(child(SEG))
        fast, _ = proxy.get(child(SEG))
        upstream, _ = proxy.answer(0, head(4000) + b"x" * 1000)
        slow.producer.pauseProducing()
        self.assertEqual(upstream.producerState, "producing")
        proxy.answer(0, b"y" * 3000)
        self.assertEqual(len(body_of(fast)), 4000)
        self.assertEqual(len(body_of(slow)), 1000)
        slow.producer.resumeProducing()
        self.assertEqual(len(body_of(slow)), 4000)

    def test_streamed_regime_pauses_upstream_only_when_every_viewer_is_full(self) -> None:
        proxy = Proxy(self, cache_size_bytes=0)
        first, _ = proxy.get(child(SEG))
        second, _ = proxy.get(child(SEG))
        upstream, _ = proxy.answer(0, head(10_000) + b"x" * 100)
        first.producer.pauseProducing()
        self.assertEqual(upstream.producerState, "producing")
        second.producer.pauseProducing()
        self.assertEqual(upstream.producerState, "paused")
        first.producer.resumeProducing()
        self.assertEqual(upstream.producerState, "producing")

    def test_a_viewer_past_the_lag_bound_is_detached(self) -> None:
        proxy = Proxy(self, cache_size_bytes=0)
        proxy.dispatcher.fanout.lag_bound_bytes = 1000
        slow, _ = proxy.get(child(SEG))
        fast, _ = proxy.get(child(SEG))
        proxy.answer(0, head(10_000) + b"x" * 100)
        slow.producer.pauseProducing()
        proxy.answer(0, b"y" * 2000)
        self.assertTrue(slow.disconnecting, "the laggard's connection is aborted")
        self.assertFalse(fast.disconnecting)
        self.assertEqual(len(body_of(fast)), 2100)

    def test_last_viewer_leaving_cancels_a_streamed_fetch(self) -> None:
        proxy = Proxy(self, cache_size_bytes=0)
        clients = [proxy.get(child(SEG)) for _ in range(2)]
        upstream, _ = proxy.answer(0, head(10_000) + b"x" * 100)
        for index, (transport, channel) in enumerate(clients):
            self.assertEqual(upstream.producerState, "producing", index)
            transport.producer.stopProducing()
            channel.connectionLost(Exception("client left"))
        self.assertTrue(upstream.disconnecting or upstream.producerState == "stopped")

    def test_a_fetch_being_cached_outlives_its_viewers_and_serves_the_next(self) -> None:
        proxy = Proxy(self)
        transport, channel = proxy.get(child(SEG))
        upstream, _ = proxy.answer(0, head(200) + b"x" * 100)
        transport.producer.stopProducing()
        channel.connectionLost(Exception("client left"))
        self.assertFalse(upstream.disconnecting)
        proxy.answer(0, b"y" * 100)
        again, _ = proxy.get(child(SEG))
        self.assertEqual(body_of(again), b"x" * 100 + b"y" * 100)
        self.assertEqual(len(proxy.reactor.tcpClients), 1)

    def test_upstream_error_is_passed_to_every_waiter_and_not_cached(self) -> None:
        proxy = Proxy(self)
        clients = [proxy.get(child(SEG)) for _ in range(3)]
        proxy.answer(0, b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        for transport, _ in clients:
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 404"))
            self.assertIn(b"no-store", transport.value())
        proxy.get(child(SEG))
        self.assertEqual(len(proxy.reactor.tcpClients), 2)

    def test_no_store_upstream_is_not_cached_nor_marked_public(self) -> None:
        proxy = Proxy(self)
        transport, _ = proxy.get(child(SEG))
        proxy.answer(0, head(10, b"Cache-Control: no-store\r\n") + b"z" * 10)
        self.assertIn(b"Cache-Control: no-store", transport.value())
        proxy.get(child(SEG))
        self.assertEqual(len(proxy.reactor.tcpClients), 2)

    def test_range_is_served_from_a_complete_cached_object(self) -> None:
        proxy = Proxy(self)
        proxy.get(child(SEG))
        proxy.answer(0, head(100) + bytes(range(100)))
        ranged, _ = proxy.get(child(SEG), "Range: bytes=10-19\r\n")
        self.assertTrue(ranged.value().startswith(b"HTTP/1.1 206"))
        self.assertIn(b"Content-Range: bytes 10-19/100", ranged.value())
        self.assertIn(b"Content-Length: 10", ranged.value())
        self.assertEqual(body_of(ranged), bytes(range(10, 20)))
        outside, _ = proxy.get(child(SEG), "Range: bytes=100-\r\n")
        self.assertTrue(outside.value().startswith(b"HTTP/1.1 416"))
        stale, _ = proxy.get(child(SEG), 'Range: bytes=0-1\r\nIf-Range: "other"\r\n')
        self.assertTrue(stale.value().startswith(b"HTTP/1.1 200"))
        self.assertEqual(len(proxy.reactor.tcpClients), 1)

    def test_range_without_a_cached_object_goes_upstream_as_before(self) -> None:
        proxy = Proxy(self)
        proxy.get(child(SEG), "Range: bytes=0-9\r\n")
        upstream, _ = proxy.answer(0, b"")
        self.assertIn(b"range: bytes=0-9", upstream.value().lower())

    def test_cache_budget_holds_under_random_load(self) -> None:
        rng = random.Random(7)
        budget = 5000
        proxy = Proxy(self, cache_size_bytes=budget, cache_object_max_bytes=2000)
        cache = proxy.dispatcher.fanout.cache
        dialled = 0
        for _ in range(60):
            url = f"http://o.example/r{rng.randrange(12)}.ts"
            size = rng.choice([10, 500, 1500, 2500])
            proxy.get(child(url))
            if len(proxy.reactor.tcpClients) > dialled:
                proxy.answer(dialled, head(size) + b"q" * size)
                dialled += 1
            self.assertLessEqual(cache.used_bytes, budget)
            self.assertLessEqual(proxy.dispatcher.fanout.retained_bytes, budget)
        self.assertGreater(cache.hits, 0)
        self.assertEqual(proxy.dispatcher.fanout.retained_bytes, 0)


PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXTINF:4,\nb.ts\n"


def playlist_head(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.apple.mpegurl\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class PlaylistCacheTests(SynchronousTestCase):
    def test_live_playlist_is_shared_for_half_a_target_duration(self) -> None:
        proxy = Proxy(self)
        path = child("http://o.example/live.m3u8", UriKind.PLAYLIST)
        first = [proxy.get(path) for _ in range(3)]
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        proxy.answer(0, playlist_head(PLAYLIST))
        for transport, _ in first:
            self.assertIn(b"200 OK", transport.value())
            self.assertIn(b"Cache-Control: max-age=2", transport.value())
        proxy.reactor.advance(1.9)
        proxy.get(path)
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        proxy.reactor.advance(0.2)
        proxy.get(path)
        self.assertEqual(len(proxy.reactor.tcpClients), 2)

    def test_etag_gives_304(self) -> None:
        proxy = Proxy(self)
        path = child("http://o.example/vod.m3u8", UriKind.PLAYLIST)
        transport, _ = proxy.get(path)
        proxy.answer(0, playlist_head(PLAYLIST + b"#EXT-X-ENDLIST\n"))
        [etag] = [
            line.partition(b": ")[2]
            for line in transport.value().split(b"\r\n")
            if line.lower().startswith(b"etag:")
        ]
        self.assertIn(b"Cache-Control: max-age=30", transport.value())
        again, _ = proxy.get(path, f"If-None-Match: {etag.decode()}\r\n")
        self.assertTrue(again.value().startswith(b"HTTP/1.1 304"))
        self.assertEqual(len(proxy.reactor.tcpClients), 1)

    def test_ll_hls_directives_reach_upstream_and_key_the_cache(self) -> None:
        proxy = Proxy(self)
        path = child("http://o.example/ll.m3u8", UriKind.PLAYLIST)
        proxy.get(path + "?_HLS_msn=7&_HLS_part=2")
        upstream, _ = proxy.answer(0, b"")
        self.assertIn(b"GET /ll.m3u8?_HLS_msn=7&_HLS_part=2 HTTP/1.1", upstream.value())
        proxy.get(path + "?_HLS_msn=8&_HLS_part=0")
        self.assertEqual(len(proxy.reactor.tcpClients), 2)

    def test_prefetch_warms_the_newest_segments(self) -> None:
        proxy = Proxy(self, prefetch=1)
        proxy.get(child("http://o.example/live.m3u8", UriKind.PLAYLIST))
        proxy.answer(0, playlist_head(PLAYLIST))
        self.assertEqual(len(proxy.reactor.tcpClients), 2)
        upstream, _ = proxy.answer(1, head(50) + b"p" * 50)
        self.assertIn(b"GET /b.ts HTTP/1.1", upstream.value())
        viewer, _ = proxy.get(child("http://o.example/b.ts"))
        self.assertEqual(body_of(viewer), b"p" * 50)
        self.assertEqual(len(proxy.reactor.tcpClients), 2)


class SharedRangeTests(SynchronousTestCase):
    """libavformat's `Range: bytes=0-` shares the fetch a plain GET makes."""

    def test_plain_and_open_ranges_from_zero_cost_one_upstream_fetch(self) -> None:
        proxy = Proxy(self)
        clients = [
            proxy.get(child(SEG), "Range: bytes=0-\r\n" if index % 2 else "")[0]
            for index in range(10)
        ]
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        upstream, _ = proxy.answer(0, head(300) + b"a" * 100)
        self.assertNotIn(b"range", upstream.value().lower(), "the shared fetch is a plain GET")
        for index, transport in enumerate(clients):
            self.assertEqual(body_of(transport), b"a" * 100, "bytes as they arrive")
            if index % 2:
                self.assertTrue(transport.value().startswith(b"HTTP/1.1 206"))
                self.assertIn(b"Content-Range: bytes 0-299/300", transport.value())
            else:
                self.assertTrue(transport.value().startswith(b"HTTP/1.1 200"))
            self.assertIn(b"Content-Length: 300", transport.value())
        proxy.answer(0, b"b" * 200)
        for transport in clients:
            self.assertEqual(body_of(transport), b"a" * 100 + b"b" * 200)
        self.assertEqual(proxy.dispatcher.fanout.upstream_fetches, 1)

    def test_a_range_inside_the_received_bytes_is_answered_from_the_fetch(self) -> None:
        proxy = Proxy(self)
        proxy.get(child(SEG))
        proxy.answer(0, head(300) + bytes(range(100)))
        ranged, _ = proxy.get(child(SEG), "Range: bytes=50-149\r\n")
        self.assertEqual(len(proxy.reactor.tcpClients), 1)
        self.assertIn(b"Content-Range: bytes 50-149/300", ranged.value())
        self.assertIn(b"Content-Length: 100", ranged.value())
        self.assertEqual(body_of(ranged), bytes(range(50, 100)))
        proxy.answer(0, bytes(range(100, 200)) + bytes(100))
        self.assertEqual(body_of(ranged), bytes(range(50, 150)))
        self.assertTrue(ranged.value().startswith(b"HTTP/1.1 206"))

    def test_a_range_beyond_the_received_bytes_goes_upstream_as_a_range(self) -> None:
        proxy = Proxy(self)
        proxy.get(child(SEG))
        proxy.answer(0, head(300) + b"x" * 10)
        proxy.get(child(SEG), "Range: bytes=200-\r\n")
        upstream, _ = proxy.answer(1, b"")
        self.assertIn(b"range: bytes=200-", upstream.value().lower())

    def test_an_open_range_of_a_body_without_length_is_a_200_of_all_of_it(self) -> None:
        proxy = Proxy(self, cache_size_bytes=0)
        client, _ = proxy.get(child(SEG), "Range: bytes=0-\r\n")
        proxy.answer(
            0, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: video/mp2t\r\n\r\nabc"
        )
        self.assertTrue(client.value().startswith(b"HTTP/1.1 200"))
        self.assertNotIn(b"Content-Range: bytes", client.value())
        self.assertIn(b"\r\n3\r\nabc\r\n", client.value(), "chunked, no length known")
