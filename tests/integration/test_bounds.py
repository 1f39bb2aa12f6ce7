"""Bounded playlist work: no input makes the proxy rewrite without end or stall the loop."""

from __future__ import annotations

import gzip
import time

from twisted.internet.defer import DeferredList
from twisted.trial.unittest import TestCase

from .harness import client, proxied_url, reactor, start_origin, start_proxy
from .origin import Body, Tree


def vod(segments: int) -> bytes:
    lines = [b"#EXTM3U", b"#EXT-X-TARGETDURATION:4", b"#EXT-X-PLAYLIST-TYPE:VOD"]
    for index in range(segments):
        lines += [b"#EXTINF:4.0,", b"https://cdn.example/v/seg%05d.ts?token=abcdef" % index]
    return b"\n".join([*lines, b"#EXT-X-ENDLIST", b""])


class AmplificationTests(TestCase):
    timeout = 60

    async def test_a_tiny_gzip_playlist_of_millions_of_uris_is_a_quick_502(self) -> None:
        body = b"#EXTM3U\n" + b"a\n" * 3_900_000  # 7.8 MB decoded, a few KB gzip'd
        packed = gzip.compress(body)
        self.assertLess(len(packed), 64 * 1024)
        headers = {b"content-encoding": b"gzip"}
        origin, _ = start_origin(self, Tree({"/amp.m3u8": Body(packed, headers=headers)}))
        proxy = start_proxy(self)
        started = time.monotonic()
        answer = await client(self).get(proxied_url(proxy, origin + "/amp.m3u8"))
        text = await answer.content()
        self.assertEqual(answer.code, 502)
        self.assertIn(b"more than 200000 URIs", text)
        self.assertLess(time.monotonic() - started, 20)
        health = await client(self).get(proxy + "/health")
        self.assertEqual(health.code, 200)

    async def test_a_uri_that_would_make_an_unservable_child_is_a_502_naming_the_limit(
        self,
    ) -> None:
        long_uri = b"https://cdn.example/" + b"x" * 70_000 + b".ts"
        body = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n" + long_uri + b"\n"
        origin, _ = start_origin(self, Tree({"/long.m3u8": Body(body)}))
        proxy = start_proxy(self, max_playlist_bytes=1024 * 1024)
        answer = await client(self).get(proxied_url(proxy, origin + "/long.m3u8"))
        self.assertEqual(answer.code, 502)
        self.assertIn(b"request line limit", await answer.content())

    async def test_health_answers_while_a_50000_segment_playlist_is_rewritten(self) -> None:
        origin, _ = start_origin(self, Tree({"/vod.m3u8": Body(vod(50_000))}))
        proxy = start_proxy(self)
        http = client(self)
        rewrite = http.get(proxied_url(proxy, origin + "/vod.m3u8"))
        latencies: list[float] = []
        finished = False

        def done(result: object) -> object:
            nonlocal finished
            finished = True
            return result

        rewrite.addBoth(done)
        for _ in range(200):  # bounded: the rewrite takes well under 200 health checks
            started = time.monotonic()
            await (await http.get(proxy + "/health")).content()
            latencies.append(time.monotonic() - started)
            if finished:
                break
        answer = await rewrite
        self.assertEqual(answer.code, 200)
        self.assertGreater(len(latencies), 1, "health checks ran during the rewrite")
        # The rewrite runs off the reactor thread; inline it blocked the loop ~1 s.
        self.assertLess(max(latencies), 0.5, latencies)
        await DeferredList([answer.content()])
        self.assertIsNotNone(reactor)
