"""Byte budgets, TTLs on a Clock, coalescing, and the pure playlist-cache rules."""

from __future__ import annotations

import random

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.cache import ByteLru, Coalescer
from hls_proxy.fanout import CachedBody
from hls_proxy.media import ResponseHead
from hls_proxy.playlist import playlist_info
from hls_proxy.playlists import etag_for, etag_matches, playlist_ttl_s, with_ll_hls
from hls_proxy.ranges import parse_range

LIVE = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n#EXTINF:6,\nb.ts\n"
LL = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1.0\n#EXTINF:4,\na.ts\n"
VOD = LIVE + b"#EXT-X-ENDLIST\n"
MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"


class ByteLruTests(SynchronousTestCase):
    def test_budget_is_never_exceeded_under_random_load(self) -> None:
        rng = random.Random(1234)
        for budget in (1, 1000, 65536):
            lru: ByteLru[int, bytes] = ByteLru(Clock(), budget, budget // 2 + 1)
            for _ in range(3000):
                key = rng.randrange(50)
                if rng.random() < 0.6:
                    size = rng.randrange(budget + 10)
                    lru.put(key, b"", size, rng.choice([None, 0.5, 5.0]))
                else:
                    lru.get(key)
                self.assertLessEqual(lru.used_bytes, budget)
                self.assertEqual(lru.used_bytes, sum(s.size for s in lru._slots.values()))

    def test_least_recently_used_goes_first(self) -> None:
        lru: ByteLru[str, str] = ByteLru(Clock(), 30, 30)
        lru.put("a", "A", 10)
        lru.put("b", "B", 10)
        lru.put("c", "C", 10)
        lru.get("a")  # now b is the oldest
        lru.put("d", "D", 10)
        self.assertEqual([k for k in "abcd" if lru.get(k) is not None], ["a", "c", "d"])

    def test_an_object_over_the_cap_is_refused_and_evicts_nothing(self) -> None:
        lru: ByteLru[str, str] = ByteLru(Clock(), 100, 40)
        lru.put("a", "A", 30)
        self.assertFalse(lru.put("big", "B", 41))
        self.assertEqual(lru.get("a"), "A")
        self.assertIsNone(lru.get("big"))

    def test_entries_expire_on_the_clock(self) -> None:
        clock = Clock()
        lru: ByteLru[str, str] = ByteLru(clock, 100, 100)
        lru.put("p", "P", 10, ttl_s=2.0)
        lru.put("s", "S", 10)
        clock.advance(1.9)
        self.assertEqual(lru.get("p"), "P")
        clock.advance(0.1)
        self.assertIsNone(lru.get("p"))
        self.assertEqual(lru.used_bytes, 10)
        clock.advance(10_000)
        self.assertEqual(lru.get("s"), "S")

    def test_zero_budget_stores_nothing(self) -> None:
        lru: ByteLru[str, str] = ByteLru(Clock(), 0, 32)
        self.assertFalse(lru.put("a", "A", 0 + 1))
        self.assertEqual(len(lru), 0)


class CachedBodyTests(SynchronousTestCase):
    def test_slice_spans_chunks(self) -> None:
        body = CachedBody(ResponseHead(200, (), 9, True), (b"abc", b"defg", b"hi"), 9)
        for start, end in [(0, 9), (0, 1), (2, 5), (3, 7), (8, 9), (4, 4)]:
            self.assertEqual(b"".join(body.slice(start, end)), b"abcdefghi"[start:end])


class CoalescerTests(SynchronousTestCase):
    def test_waiters_share_one_fetch_each_with_its_own_deferred(self) -> None:
        coalescer: Coalescer[str, str] = Coalescer()
        fetches: list[Deferred[str]] = []

        async def fetch() -> str:
            d: Deferred[str] = Deferred()
            fetches.append(d)
            return await d

        first = coalescer.run("k", fetch)
        second = coalescer.run("k", fetch)
        self.assertIsNot(first, second)
        self.assertEqual(len(fetches), 1)
        fetches[0].callback("body")
        self.assertEqual(self.successResultOf(first), "body")
        self.assertEqual(self.successResultOf(second), "body")
        coalescer.run("k", fetch)
        self.assertEqual(len(fetches), 2, "a finished fetch is not reused")

    def test_the_fetch_is_cancelled_only_when_every_waiter_left(self) -> None:
        coalescer: Coalescer[str, str] = Coalescer()
        cancelled: list[bool] = []
        pending: Deferred[str] = Deferred(canceller=lambda _: cancelled.append(True))

        async def fetch() -> str:
            return await pending

        first = coalescer.run("k", fetch)
        second = coalescer.run("k", fetch)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertEqual(cancelled, [])
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertEqual(cancelled, [True])
        self.assertEqual(len(coalescer), 0)

    def test_a_fetch_that_finishes_at_once_still_answers(self) -> None:
        coalescer: Coalescer[str, str] = Coalescer()

        async def fetch() -> str:
            return "now"

        self.assertEqual(self.successResultOf(coalescer.run("k", fetch)), "now")


class PlaylistRulesTests(SynchronousTestCase):
    def test_ttl(self) -> None:
        cases = [
            (LIVE, "", 3.0),
            (LIVE, "max-age=1", 1.0),
            (LIVE, "no-cache", 0.0),
            (LL, "", 0.5),
            (VOD, "", 30.0),
            (VOD, "public, max-age=10", 10.0),
            (MASTER, "", 30.0),
            (MASTER, "private", 0.0),
        ]
        for body, control, expected in cases:
            info = playlist_info(body, "http://o/x.m3u8")
            self.assertEqual(playlist_ttl_s(info, control, 30.0), expected, (body, control))

    def test_ll_hls_directives_are_forwarded_and_checked(self) -> None:
        args = {b"_HLS_msn": [b"12"], b"_HLS_part": [b"3"], b"_HLS_skip": [b"YES"], b"x": [b"1"]}
        self.assertEqual(
            with_ll_hls("http://o/l.m3u8?t=1", args),
            "http://o/l.m3u8?t=1&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
        )
        self.assertEqual(with_ll_hls("http://o/l.m3u8", {b"_HLS_msn": [b"1;x"]}), "http://o/l.m3u8")
        self.assertEqual(
            with_ll_hls("http://o/l.m3u8?_HLS_msn=5", {b"_HLS_msn": [b"5"]}),
            "http://o/l.m3u8?_HLS_msn=5",
        )

    def test_etags(self) -> None:
        etag = etag_for(b"body")
        self.assertTrue(etag_matches(etag, etag))
        self.assertTrue(etag_matches(b'"x", W/' + etag, etag))
        self.assertTrue(etag_matches(b"*", etag))
        self.assertFalse(etag_matches(etag_for(b"other"), etag))

    def test_parse_range(self) -> None:
        cases = [
            ("bytes=0-9", (0, 10)),
            ("bytes=5-", (5, 100)),
            ("bytes=-10", (90, 100)),
            ("bytes=90-500", (90, 100)),
            ("bytes=100-", False),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=x-1", None),
        ]
        for value, expected in cases:
            self.assertEqual(parse_range(value, 100), expected, value)
