"""The real proxy in front of a real origin, both on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any
from urllib.parse import urljoin

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import File

from hls_proxy.guard import Guard

from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Redirect, Scripted, Tree

MASTER = b"""#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="a/audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"
v/index.m3u8
"""
VARIANT = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI="init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="../keys/k.key?kid=1",IV=0x00000000000000000000000000000001
#EXTINF:2.0,
s1.m4s?token=abc
#EXTINF:2.0,
/tv/v/s2.m4s
#EXT-X-ENDLIST
"""
AUDIO = b"""#EXTM3U
#EXT-X-TARGETDURATION:2
#EXTINF:2.0,
a1.aac
#EXT-X-ENDLIST
"""
MEDIA = {
    "/tv/v/init.mp4": b"INIT" * 100,
    "/tv/v/s1.m4s": b"S1" * 5000,
    "/tv/v/s2.m4s": b"S2" * 5000,
    "/tv/keys/k.key": b"0123456789abcdef",
    "/tv/a/a1.aac": b"AAC" * 1000,
}


def proxy_uris(playlist: bytes, served_at: str = "/") -> list[str]:
    """Every URI in a playlist (URI lines and URI="..." attributes) as a proxy path,
    resolved against the path the playlist was served at (children may be relative)."""
    text = playlist.decode()
    found = re.findall(r'URI="([^"]+)"', text)
    found += [line for line in text.splitlines() if line and not line.startswith("#")]
    return [urljoin(served_at, reference) for reference in found]


def tv_tree(check: Any = None) -> Tree:
    resources: dict[str, Any] = {
        "/tv/master.m3u8": Body(MASTER, check=check),
        "/tv/v/index.m3u8": Body(VARIANT, check=check),
        "/tv/a/audio.m3u8": Body(AUDIO, check=check),
    }
    for path, body in MEDIA.items():
        resources[path] = Body(body, b"application/octet-stream", check=check)
    return Tree(resources)


class PlaybackPathTests(TestCase):
    async def test_master_variant_rendition_segments_keys_and_maps_all_through_the_proxy(
        self,
    ) -> None:
        origin, recording = start_origin(self, tv_tree())
        proxy = start_proxy(self)
        http = client(self)
        url = proxied_url(proxy, origin + "/tv/master.m3u8", referer="https://site.example/")
        response = await http.get(url)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["application/vnd.apple.mpegurl"],
        )
        master = await response.content()
        self.assertNotIn(origin.encode(), master)
        children = proxy_uris(master)
        self.assertEqual(len(children), 2)
        self.assertTrue(all(child.endswith(".m3u8") for child in children), children)
        fetched: dict[str, bytes] = {}
        for child in children:
            body = await (await http.get(proxy + child)).content()
            self.assertNotIn(origin.encode(), body)
            for grandchild in proxy_uris(body, child):
                answer = await http.get(proxy + grandchild)
                self.assertEqual(answer.code, 200, grandchild)
                fetched[grandchild.rsplit("/", 1)[1]] = await answer.content()
        self.assertEqual(
            fetched,
            {
                "init.mp4": MEDIA["/tv/v/init.mp4"],
                "k.key": MEDIA["/tv/keys/k.key"],
                "s1.m4s": MEDIA["/tv/v/s1.m4s"],
                "s2.m4s": MEDIA["/tv/v/s2.m4s"],
                "a1.aac": MEDIA["/tv/a/a1.aac"],
            },
        )
        self.assertIn("/tv/v/s1.m4s?token=abc", recording.paths())
        self.assertIn("/tv/keys/k.key?kid=1", recording.paths())
        for seen in recording.seen:
            self.assertEqual(seen.headers.get("referer"), "https://site.example/", seen.path)
            self.assertIn("Mozilla/5.0", seen.headers.get("user-agent", ""))

    async def test_explicit_user_agent_and_any_header_reach_every_request(self) -> None:
        origin, recording = start_origin(self, tv_tree())
        proxy = start_proxy(self)
        http = client(self)
        url = proxied_url(
            proxy, origin + "/tv/v/index.m3u8", user_agent="MyPlayer/1", x_custom="v 1"
        )
        variant = await (await http.get(url)).content()
        for child in proxy_uris(variant):
            self.assertEqual((await http.get(proxy + child)).code, 200)
        self.assertEqual(len(recording.seen), 5)
        for seen in recording.seen:
            self.assertEqual(seen.headers["user-agent"], "MyPlayer/1")
            self.assertEqual(seen.headers["x-custom"], "v 1")

    async def test_cookies_set_on_the_playlist_are_sent_with_segments_and_h_cookie_kept(
        self,
    ) -> None:
        def needs_cookie(request: Request) -> int | None:
            cookie = (request.getHeader(b"cookie") or b"").decode()
            return None if "session=s3cret" in cookie and "user=u1" in cookie else 403

        playlist = Body(
            b"#EXTM3U\n#EXTINF:1,\nseg.ts\n#EXT-X-ENDLIST\n",
            headers={b"set-cookie": b"session=s3cret; Path=/"},
        )
        origin, recording = start_origin(
            self,
            Tree(
                {
                    "/live.m3u8": playlist,
                    "/seg.ts": Body(b"TS", b"video/mp2t", check=needs_cookie),
                }
            ),
        )
        proxy = start_proxy(self)
        http = client(self)
        body = await (
            await http.get(proxied_url(proxy, origin + "/live.m3u8", cookie="user=u1"))
        ).content()
        [segment] = proxy_uris(body)
        answer = await http.get(proxy + segment)
        self.assertEqual((answer.code, await answer.content()), (200, b"TS"))
        self.assertEqual(recording.seen[0].headers["cookie"], "user=u1")

    async def test_streams_do_not_share_cookies(self) -> None:
        def needs_cookie(request: Request) -> int | None:
            return None if request.getHeader(b"cookie") else 403

        playlist = Body(
            b"#EXTM3U\n#EXTINF:1,\nseg.ts\n",
            headers={b"set-cookie": b"session=1; Path=/"},
        )
        origin, _ = start_origin(
            self,
            Tree(
                {
                    "/a.m3u8": playlist,
                    "/b.m3u8": Body(b"#EXTM3U\n#EXTINF:1,\nseg.ts\n"),
                    "/seg.ts": Body(b"TS", b"video/mp2t", check=needs_cookie),
                }
            ),
        )
        proxy = start_proxy(self)
        http = client(self)
        await (await http.get(proxied_url(proxy, origin + "/a.m3u8"))).content()
        other = await (await http.get(proxied_url(proxy, origin + "/b.m3u8"))).content()
        [segment] = proxy_uris(other)
        self.assertEqual((await http.get(proxy + segment)).code, 403)

    async def test_relative_uris_resolve_against_the_final_url_after_redirects(self) -> None:
        origin, recording = start_origin(
            self,
            Tree(
                {
                    "/short": Redirect(b"/deep/er/list.m3u8"),
                    "/deep/er/list.m3u8": Body(b"#EXTM3U\n#EXTINF:1,\nseg.ts\n"),
                    "/deep/er/seg.ts": Body(b"SEG", b"video/mp2t"),
                }
            ),
        )
        proxy = start_proxy(self)
        http = client(self)
        body = await (await http.get(proxied_url(proxy, origin + "/short"))).content()
        [segment] = proxy_uris(body)
        answer = await http.get(proxy + segment)
        self.assertEqual(await answer.content(), b"SEG")
        self.assertEqual(answer.headers.getRawHeaders("content-type"), ["video/mp2t"])
        self.assertEqual(recording.paths()[-1], "/deep/er/seg.ts")

    async def test_gzip_encoded_playlist_is_decoded_before_rewriting(self) -> None:
        compressed = gzip.compress(b"#EXTM3U\n#EXTINF:1,\nseg.ts\n#EXT-X-ENDLIST\n")
        origin, _ = start_origin(
            self, Tree({"/z.m3u8": Body(compressed, headers={b"content-encoding": b"gzip"})})
        )
        proxy = start_proxy(self)
        body = await (await client(self).get(proxied_url(proxy, origin + "/z.m3u8"))).content()
        self.assertTrue(body.startswith(b"#EXTM3U\n#EXTINF:1,\n/p/"), body)
        self.assertTrue(body.endswith(b"/seg.ts\n#EXT-X-ENDLIST\n"), body)


class SigningTests(TestCase):
    async def test_tampered_child_is_403_without_an_upstream_fetch(self) -> None:
        origin, recording = start_origin(self, tv_tree())
        proxy = start_proxy(self)
        http = client(self)
        master = await (await http.get(proxied_url(proxy, origin + "/tv/master.m3u8"))).content()
        child = proxy_uris(master)[0]
        before = len(recording.seen)
        for index in (5, len(child) // 2, len(child) - 3):
            swapped = "A" if child[index] != "A" else "B"
            tampered = child[:index] + swapped + child[index + 1 :]
            answer = await http.get(proxy + tampered)
            self.assertEqual(answer.code, 403, tampered)
        self.assertEqual(len(recording.seen), before)

    async def test_child_urls_work_on_another_instance_with_the_same_secret(self) -> None:
        origin, _ = start_origin(self, tv_tree())
        first = start_proxy(self)
        http = client(self)
        master_url = proxied_url(first, origin + "/tv/v/index.m3u8")
        variant = await (await http.get(master_url)).content()
        second = start_proxy(self)  # a restart, or a second instance
        third = start_proxy(self, secret=b"another secret")
        again = await (await http.get(proxied_url(second, origin + "/tv/v/index.m3u8"))).content()
        self.assertEqual(variant, again)  # deterministic: same URL, same headers
        child = proxy_uris(variant)[-1]
        self.assertEqual(await (await http.get(second + child)).content(), MEDIA["/tv/v/s2.m4s"])
        self.assertEqual((await http.get(third + child)).code, 403)


class ErrorTests(TestCase):
    async def _status(self, url: str) -> tuple[int, bytes]:
        answer = await client(self).get(url)
        return answer.code, await answer.content()

    async def test_upstream_statuses_are_passed_on_with_a_one_line_message(self) -> None:
        origin, _ = start_origin(
            self,
            Tree(
                {
                    "/403.m3u8": Body(b"no", status=403),
                    "/500.m3u8": Body(b"no", status=500),
                    "/503.m3u8": Body(b"no", status=503),
                }
            ),
        )
        proxy = start_proxy(self)
        for status in (403, 404, 500, 503):
            code, body = await self._status(proxied_url(proxy, f"{origin}/{status}.m3u8"))
            self.assertEqual(code, status)
            self.assertEqual(body, f"upstream answered {status}\n".encode())

    async def test_bad_input_and_unreachable_and_non_playlists(self) -> None:
        origin, _ = start_origin(
            self,
            Tree(
                {
                    "/video.m3u8": Body(b"\x00\x01binary", b"application/octet-stream"),
                    "/big.m3u8": Body(b"#EXTM3U\n" + b"#" * 5000),
                    "/loop": Redirect(b"/loop"),
                }
            ),
        )
        proxy = start_proxy(self, max_playlist_bytes=4096)
        cases = [
            (f"{proxy}/playlist.m3u8", 400, b"missing url parameter\n"),
            (
                f"{proxy}/playlist.m3u8?url=ftp%3A%2F%2Fx%2Fa",
                400,
                b"url must be http or https\n",
            ),
            (proxied_url(proxy, "http://127.0.0.1:1/a.m3u8"), 502, b"upstream unreachable"),
            (proxied_url(proxy, origin + "/video.m3u8"), 502, b"#EXTM3U missing"),
            (proxied_url(proxy, origin + "/big.m3u8"), 502, b"larger than 4096 bytes"),
            (proxied_url(proxy, origin + "/loop"), 502, b"too many upstream redirects"),
            (f"{proxy}/nothing-here", 404, b"not found\n"),
            (f"{proxy}/p/x/y/z.ts", 403, b"bad signature\n"),
        ]
        for url, status, message in cases:
            code, body = await self._status(url)
            self.assertEqual(code, status, url)
            self.assertIn(message, body, url)

    async def test_an_upstream_that_never_answers_is_504(self) -> None:
        origin, _ = start_origin(self, Tree({"/hang.m3u8": Scripted(lambda r: NOT_DONE_YET)}))
        proxy = start_proxy(self, upstream_timeout_s=0.3)
        code, body = await self._status(proxied_url(proxy, origin + "/hang.m3u8"))
        self.assertEqual((code, body), (504, b"upstream timed out\n"))

    async def test_private_upstreams_are_refused_by_default_without_connecting(self) -> None:
        origin, recording = start_origin(self, tv_tree())
        proxy = start_proxy(self, allow_private=False)
        port = origin.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost", "127.1", "2130706433", "[::ffff:127.0.0.1]"):
            code, body = await self._status(
                proxied_url(proxy, f"http://{host}:{port}/tv/master.m3u8")
            )
            self.assertEqual(code, 403, host)
            self.assertIn(b"not a public address", body)
        self.assertEqual(recording.seen, [])

    async def test_redirect_to_a_private_address_is_refused(self) -> None:
        # Pretend "localhost" is public; the hop to 127.0.0.1 must be checked again.
        original_check = Guard.check

        def check(guard: Guard, host: str, addresses: Any) -> None:
            if host != "localhost":
                original_check(guard, host, addresses)

        self.patch(Guard, "check", check)
        origin, recording = start_origin(self, tv_tree())
        redirector, hops = start_origin(self, Redirect(f"{origin}/tv/master.m3u8".encode()))
        proxy = start_proxy(self, allow_private=False)
        entry = redirector.replace("127.0.0.1", "localhost") + "/x.m3u8"
        code, _ = await self._status(proxied_url(proxy, entry))
        self.assertEqual(code, 403)
        self.assertEqual(len(hops.seen), 1)
        self.assertEqual(recording.seen, [])


class HttpSurfaceTests(TestCase):
    async def test_health(self) -> None:
        proxy = start_proxy(self)
        answer = await client(self).get(proxy + "/health")
        status = json.loads(await answer.content())
        self.assertEqual(status["status"], "ok")
        self.assertEqual(status["streams"], 0)
        self.assertIn("version", status)
        self.assertGreaterEqual(status["uptime_s"], 0)

    async def test_cors_preflight_and_head(self) -> None:
        origin, _ = start_origin(self, tv_tree())
        proxy = start_proxy(self)
        http = client(self)
        url = proxied_url(proxy, origin + "/tv/master.m3u8")
        preflight = await http.request(
            "OPTIONS", url, headers={"Access-Control-Request-Headers": "range"}
        )
        self.assertEqual(preflight.code, 204)
        self.assertEqual(preflight.headers.getRawHeaders("access-control-allow-origin"), ["*"])
        self.assertEqual(preflight.headers.getRawHeaders("access-control-allow-headers"), ["range"])
        head = await http.head(url)
        self.assertEqual(head.code, 200)
        self.assertEqual(await head.content(), b"")
        get = await http.get(url)
        body = await get.content()
        self.assertEqual(head.headers.getRawHeaders("content-length"), [str(len(body))])
        self.assertIn(
            "Content-Range", get.headers.getRawHeaders("access-control-expose-headers")[0]
        )
        segment_head = await http.head(
            proxy
            + proxy_uris(
                await (await http.get(proxied_url(proxy, origin + "/tv/v/index.m3u8"))).content()
            )[-1]
        )
        self.assertEqual(segment_head.headers.getRawHeaders("content-length"), ["10000"])

    async def test_range_requests_pass_through_as_206(self) -> None:
        data = bytes(range(256)) * 40
        movie = FilePath(self.mktemp())
        movie.makedirs()
        movie.child("movie.mp4").setContent(data)
        origin, recording = start_origin(self, File(movie.path))
        proxy = start_proxy(self)
        http = client(self)
        answer = await http.get(
            proxied_url(proxy, origin + "/movie.mp4", endpoint="stream"),
            headers={"Range": "bytes=100-199"},
        )
        self.assertEqual(answer.code, 206)
        self.assertEqual(answer.headers.getRawHeaders("content-range"), ["bytes 100-199/10240"])
        self.assertEqual(await answer.content(), data[100:200])
        self.assertEqual(recording.seen[-1].headers["range"], "bytes=100-199")

    async def test_stream_endpoint_rewrites_a_playlist_it_recognises_by_its_body(self) -> None:
        origin, _ = start_origin(
            self,
            Tree(
                {
                    "/get.php": Body(b"\xef\xbb\xbf#EXTM3U\n#EXTINF:1,\nseg.ts\n", b"text/plain"),
                    "/clip.bin": Body(b"#EXTM3U but really video", b"video/mp4"),
                }
            ),
        )
        proxy = start_proxy(self)
        http = client(self)
        answer = await http.get(proxied_url(proxy, origin + "/get.php", endpoint="mx"))
        self.assertEqual(
            answer.headers.getRawHeaders("content-type"), ["application/vnd.apple.mpegurl"]
        )
        self.assertTrue((await answer.content()).startswith(b"#EXTM3U\n#EXTINF:1,\n/p/"))
        clip = await http.get(proxied_url(proxy, origin + "/clip.bin", endpoint="stream"))
        self.assertEqual(await clip.content(), b"#EXTM3U but really video")
