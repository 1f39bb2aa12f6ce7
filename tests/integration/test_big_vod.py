"""A big VOD asked for at its entry URL is redirected to its own sealed URL."""

from __future__ import annotations

from urllib.parse import urljoin

from twisted.trial.unittest import TestCase
from twisted.web.client import Agent

from .harness import client, proxied_url, reactor, start_origin, start_proxy
from .origin import Body, Tree


def vod(segments: int) -> bytes:
    lines = [b"#EXTM3U", b"#EXT-X-TARGETDURATION:4"]
    for index in range(segments):
        lines += [b"#EXTINF:4.0,", b"seg%03d.ts?token=abc" % index]
    return b"\n".join([*lines, b"#EXT-X-ENDLIST", b""])


class BigVodTests(TestCase):
    async def test_the_entry_answers_302_and_the_segments_are_relative_there(self) -> None:
        tree = {"/v/index.m3u8": Body(vod(30))}
        tree.update({f"/v/seg{i:03d}.ts": Body(b"T" * 10, b"video/mp2t") for i in range(30)})
        origin, recording = start_origin(self, Tree(tree))
        proxy = start_proxy(self, redirect_playlist_uris=10)
        entry = proxied_url(proxy, origin + "/v/index.m3u8")
        answer = await Agent(reactor).request(b"GET", entry.encode())
        self.assertEqual(answer.code, 302)
        [location] = answer.headers.getRawHeaders(b"location")
        self.assertTrue(location.startswith(b"/p/3"), location)
        home = proxy + location.decode()
        playlist = await (await client(self).get(home)).content()
        refs = [line for line in playlist.decode().splitlines() if line and line[0] != "#"]
        self.assertEqual(len(refs), 30)
        self.assertTrue(all(not ref.startswith("/") for ref in refs), refs[:2])  # relative
        self.assertLess(len(playlist), 3 * len(vod(30)))
        segment = await client(self).get(urljoin(home, refs[7]))
        self.assertEqual(await segment.content(), b"T" * 10)
        self.assertEqual(recording.paths().count("/v/index.m3u8"), 1, "fetched once")
        self.assertIn("/v/seg007.ts?token=abc", recording.paths())

    async def test_small_or_live_entry_playlists_are_answered_in_place(self) -> None:
        live = vod(30).replace(b"#EXT-X-ENDLIST\n", b"")
        origin, _ = start_origin(
            self, Tree({"/v/small.m3u8": Body(vod(3)), "/v/live.m3u8": Body(live)})
        )
        proxy = start_proxy(self, redirect_playlist_uris=10)
        for name in ("small", "live"):
            url = proxied_url(proxy, f"{origin}/v/{name}.m3u8")
            answer = await Agent(reactor).request(b"GET", url.encode())
            self.assertEqual(answer.code, 200, name)
