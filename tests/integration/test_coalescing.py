"""Many viewers, one upstream, on real loopback sockets: the origin counts the fetches."""

from __future__ import annotations

import random
import re

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from .harness import (
    client,
    connect,
    http_get,
    proxied_url,
    proxy_parts,
    start_origin,
    start_proxy,
    until,
    within,
)
from .origin import Body, Streaming, Tree


def _playlist(names: list[str]) -> Body:
    lines = "".join(f"#EXTINF:4,\n{name}\n" for name in names)
    return Body(f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n{lines}".encode())


async def _children(case: TestCase, proxy: str, origin: str) -> list[str]:
    url = proxied_url(proxy, origin + "/live.m3u8")
    playlist = await (await client(case).get(url)).content()
    return [path.decode() for path in re.findall(rb"^/p/\S+$", playlist, re.M)]


class CoalescingTests(TestCase):
    async def test_concurrent_clients_cause_exactly_one_origin_fetch(self) -> None:
        segment = Streaming(3 * 1024 * 1024)
        origin, seen = start_origin(
            self, Tree({"/live.m3u8": _playlist(["s.ts"]), "/s.ts": segment})
        )
        proxy = start_proxy(self)
        [path] = await _children(self, proxy, origin)
        http = client(self)

        async def fetch() -> bytes:
            body: bytes = await (await http.get(proxy + path)).content()
            return body

        bodies = await gatherResults([Deferred.fromCoroutine(fetch()) for _ in range(20)])
        self.assertEqual({len(body) for body in bodies}, {3 * 1024 * 1024})
        self.assertEqual(seen.paths().count("/s.ts"), 1)
        again = await fetch()  # and now from the cache
        self.assertEqual(len(again), 3 * 1024 * 1024)
        self.assertEqual(seen.paths().count("/s.ts"), 1)

    async def test_slow_and_fast_viewer_on_one_fetch_fast_finishes_first(self) -> None:
        total = 16 * 1024 * 1024
        segment = Streaming(total)
        origin, seen = start_origin(
            self, Tree({"/live.m3u8": _playlist(["s.ts"]), "/s.ts": segment})
        )
        proxy = start_proxy(self)
        [path] = await _children(self, proxy, origin)
        slow = await connect(self, proxy, http_get(path))
        await within(5, slow.received_at_least(1), "the slow viewer's first bytes")
        slow.transport.pauseProducing()  # type: ignore[union-attr]  # stops reading
        answer = await client(self).get(proxy + path)
        body = await answer.content()
        self.assertEqual(len(body), total)
        self.assertLess(slow.received, total, "the slow viewer is still behind")
        self.assertEqual(seen.paths().count("/s.ts"), 1)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await within(10, slow.received_at_least(total), "the slow viewer's last bytes")
        slow.transport.loseConnection()  # type: ignore[union-attr]

    async def test_last_viewer_leaving_cancels_the_upstream_fetch(self) -> None:
        total = 256 * 1024 * 1024  # over the per-object cap: streamed, not cached
        segment = Streaming(total)
        origin, _ = start_origin(
            self, Tree({"/live.m3u8": _playlist(["big.ts"]), "/big.ts": segment})
        )
        proxy = start_proxy(self)
        [path] = await _children(self, proxy, origin)
        viewers = [await connect(self, proxy, http_get(path)) for _ in range(3)]
        for viewer in viewers:  # all three are on the one fetch
            await within(5, viewer.received_at_least(1), "a viewer's first bytes")
        site = proxy_parts(self, proxy).site
        before = site.open_connections
        for viewer in viewers[:-1]:
            viewer.transport.abortConnection()  # type: ignore[union-attr]
        await until(lambda: site.open_connections == before - 2, "two viewers gone")
        # More than socket buffers hold still leaves the origin: the fetch goes on.
        more = min(segment.sent + 16 * 1024 * 1024, total)
        await within(5, segment.sent_at_least(more), "the origin still sending")
        self.assertIsNone(segment.disconnected_at, "one viewer is still there")
        viewers[-1].transport.abortConnection()  # type: ignore[union-attr]
        await within(5, segment.disconnected, "the upstream cancelled")
        self.assertLess(segment.sent, total)

    async def test_cache_budget_is_never_exceeded_under_random_load(self) -> None:
        rng = random.Random(2024)
        sizes = {f"/s{index}.ts": rng.choice([20_000, 300_000, 700_000]) for index in range(8)}
        tree = {name: Body(b"\x47" * size, b"video/mp2t") for name, size in sizes.items()}
        tree["/live.m3u8"] = _playlist([name[1:] for name in sizes])
        origin, _ = start_origin(self, Tree(tree))
        budget = 1024 * 1024
        proxy = start_proxy(self, cache_size_bytes=budget, cache_object_max_bytes=800_000)
        paths = await _children(self, proxy, origin)
        http = client(self)
        fanout = proxy_parts(self, proxy).dispatcher.fanout

        async def fetch(path: str) -> None:
            await (await http.get(proxy + path)).content()
            self.assertLessEqual(fanout.cache.used_bytes, budget)

        for _ in range(6):
            batch = [rng.choice(paths) for _ in range(5)]
            await gatherResults([Deferred.fromCoroutine(fetch(path)) for path in batch])
            self.assertLessEqual(fanout.cache.used_bytes, budget)
        self.assertEqual(fanout.retained_bytes, 0)
