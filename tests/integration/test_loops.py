"""Loops through the proxy itself end at once (Via carries this instance's id)."""

from __future__ import annotations

import time
from urllib.parse import quote

from twisted.trial.unittest import TestCase

from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Redirect, Tree


class LoopTests(TestCase):
    timeout = 30

    async def test_an_origin_redirecting_to_the_proxy_itself_ends_within_a_second(self) -> None:
        tree = Tree({})
        origin, recording = start_origin(self, tree)
        proxy = start_proxy(self, upstream_timeout_s=20)
        loop_url = proxied_url(proxy, origin + "/loop.m3u8")
        tree.by_path["/loop.m3u8"] = Redirect(loop_url.encode())
        started = time.monotonic()
        answer = await client(self).get(loop_url)
        body = await answer.content()
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(answer.code, 508, body)
        self.assertEqual(len(recording.paths()), 1, "the origin saw the request once")

    async def test_a_playlist_listing_the_proxys_own_entry_url_ends_within_a_second(
        self,
    ) -> None:
        tree = Tree({})
        origin, _ = start_origin(self, tree)
        proxy = start_proxy(self)
        own = proxied_url(proxy, origin + "/master.m3u8")
        master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n" + own.encode() + b"\n"
        tree.by_path["/master.m3u8"] = Body(master)
        http = client(self)
        rewritten = await (await http.get(own)).content()
        child = next(line for line in rewritten.decode().splitlines() if line and line[0] != "#")
        self.assertNotIn(quote(origin, safe=""), child)
        started = time.monotonic()
        answer = await http.get(proxy + child if child.startswith("/") else child)
        await answer.content()
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(answer.code, 508)
