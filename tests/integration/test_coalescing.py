"""Many viewers, one upstream, on real loopback sockets: the origin counts the fetches."""

from __future__ import annotations

import random
import re

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from .harness import client, later, proxied_url, start_origin, start_proxy
from .origin import Body, Streaming, Tree
from .test_backpressure import _connect, _until_steady, run


def _playlist(names: list[str]) -> Body:
    lines = "".join(f"#EXTINF:4,\n{name}\n" for name in names)
    return Body(f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n{lines}".encode())


async def _children(case: TestCase, proxy: str, origin: str) -> list[str]:
    url = proxied_url(proxy, origin + "/live.m3u8")
    playlist = await (await client(case).get(url)).content()
    return [path.decode() for path in re.findall(rb"^/p/\S+$", playlist, re.M)]


class CoalescingTests(TestCase):
    def test_concurrent_clients_cause_exactly_one_origin_fetch(self) -> Deferred[None]:
        async def go() -> None:
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

        return run(go())

    def test_slow_and_fast_viewer_on_one_fetch_fast_finishes_first(self) -> Deferred[None]:
        async def go() -> None:
            total = 16 * 1024 * 1024
            segment = Streaming(total)
            origin, seen = start_origin(
                self, Tree({"/live.m3u8": _playlist(["s.ts"]), "/s.ts": segment})
            )
            proxy = start_proxy(self)
            [path] = await _children(self, proxy, origin)
            slow = await _connect(proxy, path)
            await later(0.02)
            slow.transport.pauseProducing()  # type: ignore[union-attr]  # stops reading
            answer = await client(self).get(proxy + path)
            body = await answer.content()
            self.assertEqual(len(body), total)
            self.assertLess(slow.received, total, "the slow viewer is still behind")
            self.assertEqual(seen.paths().count("/s.ts"), 1)
            slow.transport.resumeProducing()  # type: ignore[union-attr]
            received = await _until_steady(lambda: slow.received)
            self.assertGreaterEqual(received, total)
            slow.transport.loseConnection()  # type: ignore[union-attr]

        return run(go())

    def test_last_viewer_leaving_cancels_the_upstream_fetch(self) -> Deferred[None]:
        async def go() -> None:
            total = 256 * 1024 * 1024  # over the per-object cap: streamed, not cached
            segment = Streaming(total)
            origin, _ = start_origin(
                self, Tree({"/live.m3u8": _playlist(["big.ts"]), "/big.ts": segment})
            )
            proxy = start_proxy(self)
            [path] = await _children(self, proxy, origin)
            viewers = [await _connect(proxy, path) for _ in range(3)]
            await later(0.05)
            for viewer in viewers[:-1]:
                viewer.transport.abortConnection()  # type: ignore[union-attr]
            await later(0.1)
            self.assertIsNone(segment.disconnected_at, "one viewer is still there")
            viewers[-1].transport.abortConnection()  # type: ignore[union-attr]
            for _ in range(20):
                if segment.disconnected_at is not None:
                    break
                await later(0.05)
            self.assertIsNotNone(segment.disconnected_at, "upstream was not cancelled")
            self.assertLess(segment.sent, total)

        return run(go())

    def test_cache_budget_is_never_exceeded_under_random_load(self) -> Deferred[None]:
        async def go() -> None:
            rng = random.Random(2024)
            sizes = {f"/s{index}.ts": rng.choice([20_000, 300_000, 700_000]) for index in range(8)}
            tree = {name: Body(b"\x47" * size, b"video/mp2t") for name, size in sizes.items()}
            tree["/live.m3u8"] = _playlist([name[1:] for name in sizes])
            origin, _ = start_origin(self, Tree(tree))
            budget = 1024 * 1024
            proxy = start_proxy(self, cache_size_bytes=budget, cache_object_max_bytes=800_000)
            paths = await _children(self, proxy, origin)
            http = client(self)
            from twisted.internet import reactor

            site_proxy = _proxy_of_port(reactor, proxy)

            async def fetch(path: str) -> None:
                await (await http.get(proxy + path)).content()
                self.assertLessEqual(site_proxy.fanout.cache.used_bytes, budget)

            for _ in range(6):
                batch = [rng.choice(paths) for _ in range(5)]
                await gatherResults([Deferred.fromCoroutine(fetch(path)) for path in batch])
                self.assertLessEqual(site_proxy.fanout.cache.used_bytes, budget)
            self.assertEqual(site_proxy.fanout.retained_bytes, 0)

        return run(go())


def _proxy_of_port(reactor: object, base_url: str) -> object:
    """The Proxy object behind the listening port of `base_url` (to read its cache)."""
    port_number = int(base_url.rsplit(":", 1)[1])
    for selectable in reactor.getReaders():  # type: ignore[attr-defined]
        factory = getattr(selectable, "factory", None)
        if getattr(selectable, "getHost", None) and factory is not None:
            if getattr(selectable.getHost(), "port", None) == port_number:
                return factory.resource._children_by_name[b"p"]._dispatcher
    raise AssertionError("proxy port not found")
