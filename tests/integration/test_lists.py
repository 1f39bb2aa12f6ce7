"""`/list.m3u`: a whole IPTV channel list through the real proxy, on loopback."""

from __future__ import annotations

import base64
import gzip
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import File

from tests.tools import require_tool, run_process

from . import hls_media
from .harness import client, later, start_origin, start_proxy
from .origin import Body

# Channel -> (the headers the origin insists on, how the list declares them)
CHANNELS: dict[str, dict[bytes, bytes]] = {
    "ch1": {b"user-agent": b"UA one", b"referer": b"https://site.example/",
            b"origin": b"https://site.example"},
    "ch2": {b"user-agent": b"UA two", b"referer": b"https://r.example/?a=1&b=2"},
    "ch3": {b"user-agent": b"UA=three&x", b"referer": b"https://r3.example/"},
    "ch4": {b"user-agent": b"UA four", b"referer": b"https://four.example/"},
    "ch5": {b"user-agent": b"UA5", b"x-custom-header": b"v=5"},
    "ch6": {b"user-agent": b"Default UA"},  # declares nothing: the list's h_user-agent
    "ch7": {b"user-agent": b"UA seven"},
    "ch8": {b"user-agent": b"UA eight"},
}  # fmt: skip


def fixture_list(origin: str) -> bytes:
    return f"""\
#EXTM3U url-tvg="{origin}/epg.xml.gz" x-tvg-url="{origin}/epg.xml,{origin}/epg.xml.gz"
#EXTINF:-1 tvg-id="one" group-title="News",One, with a comma
#EXTVLCOPT:http-referrer=https://site.example/
#EXTVLCOPT:http-user-agent=UA one
#EXTVLCOPT:http-origin=https://site.example
#EXTVLCOPT:network-caching=1000
{origin}/ch1/master.m3u8
#EXTINF:-1 group-title="Sports",Two
{origin}/ch2/master.m3u8|User-Agent=UA%20two&Referer=https://r.example/?a=1&b=2
#EXTINF:-1 group-title="Sports",Three
{origin}/ch3/master.m3u8|User-Agent="UA=three&x"|Referer="https://r3.example/"

#EXTINF:-1 user-agent="UA four" group-title="Movies",Four
#EXTHTTP:{{"Referer": "https://four.example/"}}
{origin}/ch4/master.m3u8
#EXTINF:-1 group-title="Movies",Five
#KODIPROP:inputstream.adaptive.manifest_type=hls
#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=UA5&X-Custom-Header=v%3D5
{origin}/ch5/master.m3u8
#EXTINF:-1 tvg-logo="{origin}/logo.png",Six (plain)
{origin}/ch6/v0/index.m3u8
#EXTINF:-1,Seven (TS)
#EXTVLCOPT:http-user-agent=UA seven
{origin}/ch7/v0/seg001.ts
#EXTINF:-1 http-user-agent="UA eight",Eight
{origin}/ch8/master.m3u8\r
#EXTINF:-1,Radio
rtmp://radio.example/live/stream
""".encode()


REMOVED = (
    b"#EXTVLCOPT:http-referrer=https://site.example/\n",
    b"#EXTVLCOPT:http-user-agent=UA one\n",
    b"#EXTVLCOPT:http-origin=https://site.example\n",
    b'#EXTHTTP:{"Referer": "https://four.example/"}\n',
    b"#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=UA5&X-Custom-Header=v%3D5\n",
    b"#EXTVLCOPT:http-user-agent=UA seven\n",
)
EPG = b'<?xml version="1.0"?><tv><channel id="one"/></tv>\n'


class Guarded(Resource):
    """Refuses (403) every request that lacks exactly the headers of its channel."""

    def __init__(self, inner: IResource, required: dict[bytes, bytes]) -> None:
        super().__init__()
        self.inner = inner
        self.required = required

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        for name, value in self.required.items():
            if request.getHeader(name) != value:
                return Body(b"wrong headers\n", b"text/plain", 403)
        return self.inner.getChildWithDefault(path, request)


class Held(Resource):
    """Sends the first part of a list, then holds the rest until `release` fires."""

    isLeaf = True

    def __init__(self, first: bytes, rest: bytes) -> None:
        super().__init__()
        self.first, self.rest = first, rest
        self.release: Deferred[None] = Deferred()

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"content-type", b"audio/x-mpegurl")
        request.write(self.first)
        self.release.addCallback(lambda _: (request.write(self.rest), request.finish()))
        return NOT_DONE_YET


def channel_origin(case: TestCase, extra: dict[bytes, IResource] | None = None) -> tuple[str, Any]:
    media = File(str(hls_media.ts_vod()))
    root = Resource()
    for name, required in CHANNELS.items():
        root.putChild(name.encode(), Guarded(media, required))
    for name, resource in (extra or {}).items():
        root.putChild(name, resource)
    origin, recording = start_origin(case, root)
    lists = {
        b"list.m3u": Body(fixture_list(origin), b"text/plain"),
        b"epg.xml": Body(EPG, b"application/xml"),
        b"epg.xml.gz": Body(gzip.compress(EPG), b"application/gzip"),
        b"gzipped.m3u": Body(
            gzip.compress(fixture_list(origin)),
            b"audio/x-mpegurl",
            headers={b"content-encoding": b"gzip"},
        ),
        b"page.html": Body(b"<!DOCTYPE html><html>login</html>", b"text/html"),
        b"bare.m3u": Body(
            b"#EXTINF:-1,A\n" + origin.encode() + b"/ch6/v0/index.m3u8\n", b"text/plain"
        ),
    }
    for name, resource in lists.items():
        root.putChild(name, resource)
    return origin, recording


def list_url(proxy: str, upstream: str, **params: str) -> str:
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    return f"{proxy}/list.m3u?url={quote(upstream, safe='')}" + (f"&{query}" if query else "")


async def decode_all(url: str) -> None:
    """ffmpeg reads every frame of `url` (playlist and segments) or the test fails."""
    ffmpeg = require_tool("ffmpeg")
    arguments = ["-nostdin", "-v", "error", "-rw_timeout", "20000000", "-i", url,
                 "-map", "0", "-f", "null", "-"]  # fmt: skip
    _, err, code = await run_process(ffmpeg, arguments)
    if code != 0:
        raise AssertionError(f"ffmpeg exited {code} for {url}: {err.decode()[-1500:]}")


def url_lines(body: bytes) -> list[str]:
    return [
        line.decode().strip()
        for line in body.splitlines()
        if line.strip() and not line.startswith(b"#")
    ]


class ListTests(TestCase):
    timeout = 180

    async def fetch(self, url: str) -> tuple[int, dict[str, str], bytes]:
        response = await client(self).get(url)
        body = await response.content()
        names = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, names, body

    async def test_every_channel_plays_with_its_own_headers(self) -> None:
        origin, recording = channel_origin(self)
        proxy = start_proxy(self)
        url = list_url(proxy, f"{origin}/list.m3u", **{"h_user-agent": "Default UA"})
        code, headers, body = await self.fetch(url)
        self.assertEqual((code, headers["content-type"]), (200, "audio/x-mpegurl"))
        channels = url_lines(body)
        self.assertEqual(len(channels), 9)
        self.assertEqual(channels[-1], "rtmp://radio.example/live/stream")
        self.assertEqual(len(recording.seen), 1)  # the list only: no channel opened
        for channel in channels[:-1]:
            self.assertTrue(channel.startswith(proxy + "/p/3"), channel)  # absolute, sealed
            self.assertNotIn("|", channel)
            sealed = channel.split("/")[4]
            for secret in (origin.split("//")[1], "Default UA", "User-Agent"):
                self.assertNotIn(secret, channel)
                self.assertNotIn(base64.urlsafe_b64encode(secret.encode()).decode()[:8], sealed)
        self.assertTrue(channels[0].endswith(".m3u8") and channels[6].endswith(".ts"))
        for channel in channels[:-1]:
            await decode_all(channel)
        for name in CHANNELS:  # playlist and segments alike went through, with headers
            paths = [seen.path for seen in recording.seen if seen.path.startswith(f"/{name}/")]
            self.assertTrue(any(path.endswith(".ts") for path in paths), (name, paths))

    async def test_non_url_lines_are_kept_byte_for_byte(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        _, _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        original = fixture_list(origin)
        for line in REMOVED:
            original = original.replace(line, b"", 1)

        def without_urls(text: bytes) -> list[bytes]:
            kept = []
            for line in text.splitlines(keepends=True):
                if line.strip() and not line.startswith(b"#") and not line.startswith(b"rtmp"):
                    line = b"<url>" + line[len(line.rstrip(b"\r\n")) :]
                kept.append(line)
            return kept

        _, *rest_original = without_urls(original)
        header_proxied, *rest_proxied = without_urls(body)
        self.assertEqual(rest_proxied, rest_original)
        self.assertNotIn(origin.encode(), header_proxied)  # EPG URLs proxied
        self.assertEqual(header_proxied.count(f"{proxy}/p/".encode()), 3)

    async def test_group_filters(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        _, _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u", group="news,MOV*"))
        self.assertEqual(body.count(b"#EXTINF"), 3)
        _, _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u", exclude_group="sports"))
        self.assertEqual(body.count(b"#EXTINF"), 7)
        self.assertNotIn(b"Two", body)

    async def test_epg_urls_return_the_xmltv_unchanged(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        _, _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        header = body.splitlines()[0].decode()
        epg_urls = [part.strip('"') for part in header.replace(",", " ").split() if proxy in part]
        epg_urls = [url.split("=", 1)[1].strip('"') if "=" in url else url for url in epg_urls]
        self.assertEqual(len(epg_urls), 3)
        for url, expected in zip(
            epg_urls, [gzip.compress(EPG), EPG, gzip.compress(EPG)], strict=True
        ):
            code, _, got = await self.fetch(url)
            self.assertEqual(code, 200)
            self.assertEqual(gzip.decompress(got) if got[:2] == b"\x1f\x8b" else got, EPG)
            self.assertEqual(got[:2] == b"\x1f\x8b", expected[:2] == b"\x1f\x8b")

    async def test_gzip_encoded_list_is_decoded_as_it_streams(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        code, _, body = await self.fetch(list_url(proxy, f"{origin}/gzipped.m3u"))
        self.assertEqual(code, 200)
        self.assertEqual(len(url_lines(body)), 9)

    async def test_html_answer_is_a_one_line_502(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        code, _, body = await self.fetch(list_url(proxy, f"{origin}/page.html"))
        self.assertEqual(code, 502)
        self.assertEqual(body, b"upstream did not return a channel list (#EXTM3U)\n")

    async def test_list_starting_with_extinf_is_accepted_with_a_header_added(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self)
        code, headers, body = await self.fetch(list_url(proxy, f"{origin}/bare.m3u"))
        self.assertEqual(code, 200)
        self.assertTrue(body.startswith(b"#EXTM3U\n#EXTINF:-1,A\n" + proxy.encode()), body)
        self.assertIn("x-hlsproxy-note", headers)

    async def test_api_key_is_needed_for_the_list_not_for_its_channels(self) -> None:
        origin, _ = channel_origin(self)
        proxy = start_proxy(self, api_key="api~key")
        code, _, _ = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        self.assertEqual(code, 401)
        url = list_url(
            proxy, f"{origin}/list.m3u", api_key="api~key", **{"h_user-agent": "Default UA"}
        )
        code, _, body = await self.fetch(url)
        self.assertEqual(code, 200)
        self.assertNotIn(b"api~key", body)
        code, _, _ = await self.fetch(url_lines(body)[5])  # ch6, no key
        self.assertEqual(code, 200)

    async def test_saved_list_plays_on_another_instance_with_the_same_secret(self) -> None:
        origin, _ = channel_origin(self)
        first = start_proxy(self, secret=b"shared")
        second = start_proxy(self, secret=b"shared")
        _, _, body = await self.fetch(list_url(first, f"{origin}/list.m3u"))
        channel = url_lines(body)[0].replace(first, second)
        await decode_all(channel)
        other = start_proxy(self, secret=b"other")
        code, _, _ = await self.fetch(url_lines(body)[0].replace(first, other))
        self.assertEqual(code, 403)

    async def test_loading_a_list_opens_no_channel_even_with_prefetch(self) -> None:
        origin, recording = channel_origin(self)
        proxy = start_proxy(self, prefetch=5)
        code, _, _ = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        self.assertEqual(code, 200)
        await later(0.2)
        self.assertEqual(recording.paths(), ["/list.m3u"])

    async def test_first_channels_arrive_before_the_upstream_list_ends(self) -> None:
        first = b"#EXTM3U\n#EXTINF:-1,A\nhttp://a.example/a.m3u8\n"
        held = Held(first, b"#EXTINF:-1,B\nhttp://a.example/b.m3u8\n")
        origin, _ = start_origin(self, held)
        proxy = start_proxy(self)
        response = await client(self).get(list_url(proxy, origin + "/"), unbuffered=True)
        self.assertEqual(response.code, 200)
        received: list[bytes] = []
        arrived: Deferred[None] = Deferred()

        class Collect(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)
                if (
                    b"\n" in b"".join(received).split(b"#EXTINF:-1,A\n", 1)[-1]
                    and not arrived.called
                ):
                    arrived.callback(None)

            def connectionLost(self, reason: object = None) -> None:
                done.callback(None)

        done: Deferred[None] = Deferred()
        response.deliverBody(Collect())
        await arrived  # the first channel, while the upstream still holds the rest
        self.assertIn(proxy.encode() + b"/p/", b"".join(received))
        held.release.callback(None)
        await done
        self.assertEqual(b"".join(received).count(b"/p/"), 2)


class CatchupTests(TestCase):
    timeout = 60

    async def fetch(self, url: str) -> tuple[int, bytes]:
        response = await client(self).get(url)
        return response.code, await response.content()

    async def test_append_query_reaches_the_upstream_channel_with_its_headers(self) -> None:
        live = Body(
            b"\x47" * 188 * 4,
            b"video/mp2t",
            check=lambda r: None if r.getHeader(b"user-agent") == b"CU" else 403,
        )
        origin, recording = start_origin(self, Resource())
        root = recording.wrapped
        root.putChild(b"live.ts", live)  # type: ignore[attr-defined]
        text = (
            f'#EXTM3U catchup="append" catchup-source="?utc={{utc}}&lutc={{lutc}}"\n'
            f"#EXTINF:-1,T\n#EXTVLCOPT:http-user-agent=CU\n{origin}/live.ts?token=abc\n"
        )
        root.putChild(b"list.m3u", Body(text.encode(), b"text/plain"))  # type: ignore[attr-defined]
        proxy = start_proxy(self)
        _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        self.assertIn(b'catchup-source="?utc={utc}&lutc={lutc}"', body)
        channel = url_lines(body)[0]
        self.assertTrue(channel.startswith(proxy + "/c/"), channel)
        code, _ = await self.fetch(channel + "?utc=1700000000&lutc=1700003600")
        self.assertEqual(code, 200)
        self.assertEqual(
            recording.seen[-1].path, "/live.ts?token=abc&utc=1700000000&lutc=1700003600"
        )
        code, _ = await self.fetch(channel)  # live: no query added
        self.assertEqual(recording.seen[-1].path, "/live.ts?token=abc")
        # The same path under /p/ is not a channel, and a /p/ child cannot take a query.
        code, _ = await self.fetch(channel.replace("/c/", "/p/"))
        self.assertIn(code, (400, 403, 502))

    async def test_template_placeholders_are_filled_and_the_rest_stays_signed(self) -> None:
        origin, recording = start_origin(self, Resource())
        root = recording.wrapped
        catch = Body(
            b"\x47" * 188,
            b"video/mp2t",
            check=lambda r: None if r.getHeader(b"user-agent") == b"CU" else 403,
        )
        text = (
            f'#EXTM3U\n#EXTINF:-1 catchup="default" '
            f'catchup-source="{origin}/archive/{{utc}}/x.ts?d=${{duration}}&k=secret",T\n'
            f"{origin}/live.ts|User-Agent=CU\n"
        )
        root.putChild(b"list.m3u", Body(text.encode(), b"text/plain"))  # type: ignore[attr-defined]
        archive = Resource()
        archive.putChild(b"1700000000", Resource())
        archive.children[b"1700000000"].putChild(b"x.ts", catch)
        archive.putChild(b"a%2Fb", Resource())
        root.putChild(b"archive", archive)  # type: ignore[attr-defined]
        proxy = start_proxy(self)
        _, body = await self.fetch(list_url(proxy, f"{origin}/list.m3u"))
        source = body.split(b'catchup-source="', 1)[1].split(b'"', 1)[0].decode()
        self.assertTrue(source.startswith(proxy + "/c/"), source)
        self.assertTrue(source.endswith("?v0={utc}&v1=${duration}"), source)
        filled = source.replace("{utc}", "1700000000").replace("${duration}", "3600")
        code, _ = await self.fetch(filled)
        self.assertEqual(code, 200)
        self.assertEqual(recording.seen[-1].path, "/archive/1700000000/x.ts?d=3600&k=secret")
        # A value cannot leave its position; the signed parts cannot change.
        await self.fetch(source.replace("{utc}", "a/b?k=x").replace("${duration}", "1"))
        self.assertEqual(recording.seen[-1].path, "/archive/a%2Fb%3Fk%3Dx/x.ts?d=1&k=secret")
        tampered = filled.replace("/c/", "/c/x", 1)
        seen = len(recording.seen)
        code, _ = await self.fetch(tampered)
        self.assertEqual(code, 403)
        self.assertEqual(len(recording.seen), seen)
