"""Domain-locked and token streams played by ffmpeg through the proxy: each plays with
the feature on and fails with it off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twisted.trial.unittest import TestCase
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.static import File

from . import hls_media
from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Scripted
from .test_ffmpeg_playback import framemd5

Check = Callable[[Request], bool]


class Locked(Resource):
    """Serves a directory only to requests that pass `allowed` (403 otherwise)."""

    def __init__(
        self,
        directory: Path,
        allowed: Check,
        on_request: Callable[[Request], None] = lambda r: None,
    ) -> None:
        super().__init__()
        self.files = File(str(directory))
        self.allowed = allowed
        self.on_request = on_request
        self.refused = 0

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        self.on_request(request)
        if not self.allowed(request):
            self.refused += 1
            return Body(b"forbidden\n", b"text/plain", 403)
        return self.files.getChildWithDefault(path, request)


class RestrictedStreamTests(TestCase):
    timeout = 120

    async def _plays(self, entry: str, proxy: str, **switches: str) -> bool:
        url = proxied_url(proxy, entry)
        for name, value in switches.items():
            url += f"&{name}={value}"
        try:
            frames = await framemd5(url)
        except AssertionError:
            return False
        return len(frames) > 150

    async def test_referer_and_origin_locked_cdn(self) -> None:
        base: list[str] = []

        def from_its_own_site(request: Request) -> bool:
            referer = (request.getHeader(b"referer") or b"").decode()
            origin = (request.getHeader(b"origin") or b"").decode()
            return referer.startswith(base[0] + "/") and origin == base[0]

        origin, _ = start_origin(self, Locked(hls_media.ts_vod(), from_its_own_site))
        base.append(origin)
        proxy = start_proxy(self)
        self.assertTrue(await self._plays(origin + "/master.m3u8", proxy))
        self.assertFalse(await self._plays(origin + "/master.m3u8", proxy, bypass="0"))
        off = start_proxy(self, bypass="off")
        self.assertFalse(await self._plays(origin + "/master.m3u8", off))
        self.assertTrue(await self._plays(origin + "/master.m3u8", off, bypass="1"))

    async def test_a_cdn_that_refuses_a_foreign_referer_gets_none_on_retry(self) -> None:
        def no_referer(request: Request) -> bool:
            return request.getHeader(b"referer") is None

        locked = Locked(hls_media.fmp4_vod(), no_referer)
        origin, _ = start_origin(self, locked)
        proxy = start_proxy(self)
        self.assertTrue(await self._plays(origin + "/index.m3u8", proxy))
        # One refused first attempt, then the stream remembers: no more refusals.
        self.assertEqual(locked.refused, 1)

    async def _token_test(self, token: str) -> None:
        def has_token(request: Request) -> bool:
            return request.uri.decode().endswith(token)

        proxy = start_proxy(self)
        for switch, plays, refusals in (("", True, 1), ("1", True, 0), ("0", False, None)):
            locked = Locked(hls_media.ts_vod(), has_token)
            origin, recording = start_origin(self, locked)
            entry = f"{origin}/master.m3u8?{token}"
            extra = {"inherit_query": switch} if switch else {}
            self.assertEqual(await self._plays(entry, proxy, **extra), plays, switch)
            if refusals is None:
                continue
            # By default the variant, listed without the token, is refused once; then
            # the stream knows this host needs it and every later child has it at once.
            self.assertEqual(locked.refused, refusals, switch)
            without = [path for path in recording.paths() if not path.endswith(token)]
            self.assertEqual(len(without), refusals, without)

    async def test_an_origin_that_checks_the_exact_query_gets_the_uris_as_written(
        self,
    ) -> None:
        media = hls_media.ts_vod() / "v0"
        queries = ["X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=5eg{n}", "session=1", ""]
        files: dict[str, tuple[Path, bytes]] = {}
        lines = []
        for line in (media / "index.m3u8").read_text().splitlines():
            if line.endswith(".ts"):
                query = queries[len(files) % len(queries)].format(n=len(files))
                line = f"{line}?{query}" if query else line
                files["/v0/" + line] = (media / line.partition("?")[0], b"video/mp2t")
            lines.append(line)
        playlist = "\n".join(lines).encode() + b"\n"
        entry_path = "/v0/index.m3u8?token=T0k&Expires=1999999999"

        def exact(request: Request) -> bytes:
            uri = request.uri.decode()
            if uri == entry_path:
                return playlist
            if uri not in files:  # S3 and GCS: any other query is SignatureDoesNotMatch
                request.setResponseCode(403)
                return b"SignatureDoesNotMatch"
            path, content_type = files[uri]
            request.setHeader(b"content-type", content_type)
            return path.read_bytes()

        origin, recording = start_origin(self, Scripted(exact))
        proxy = start_proxy(self)
        self.assertTrue(await self._plays(origin + entry_path, proxy))
        self.assertEqual(sorted(set(recording.paths())), sorted([entry_path, *files]))
        # The old rule (every child gets the playlist's tokens) breaks this origin.
        self.assertFalse(await self._plays(origin + entry_path, proxy, inherit_query="1"))

    async def test_akamai_token_on_every_request(self) -> None:
        await self._token_test("hdnts=exp%3D1999999999~acl%3D%2F*~hmac%3D0a1b2c")

    async def test_cloudfront_signed_query_on_every_request(self) -> None:
        await self._token_test(
            "Policy=eyJTdGF0ZW1lbnQiOlt7&Signature=Zm9v~YmFy&Key-Pair-Id=K2JCJMDEHXQW5F"
        )

    async def test_session_cookie_from_the_master_required_on_keys_and_segments(self) -> None:
        def set_on_playlist(request: Request) -> None:
            if request.path.endswith(b"index.m3u8"):
                request.addCookie(b"session", b"s3cret", path=b"/")

        def cookie_on_media(request: Request) -> bool:
            if request.path.endswith(b"index.m3u8"):
                return True
            return b"session=s3cret" in (request.getHeader(b"cookie") or b"")

        locked = Locked(hls_media.aes_vod(), cookie_on_media, set_on_playlist)
        origin, _ = start_origin(self, locked)
        proxy = start_proxy(self)
        self.assertTrue(await self._plays(origin + "/enc/index.m3u8", proxy))
        self.assertEqual(locked.refused, 0)
        # Without the stream's cookie jar (another instance, same secret): refused.
        playlist = await (
            await client(self).get(proxied_url(proxy, origin + "/enc/index.m3u8"))
        ).content()
        segment = next(line for line in playlist.decode().splitlines() if line.startswith("/p/"))
        other = start_proxy(self)
        self.assertEqual((await client(self).get(other + segment)).code, 403)


class CookieRuleTests(TestCase):
    async def test_cookie_path_is_honoured(self) -> None:
        from .origin import Tree

        seen: dict[str, str] = {}

        def record(name: str) -> Callable[[Request], int | None]:
            def check(request: Request) -> int | None:
                seen[name] = (request.getHeader(b"cookie") or b"").decode()
                return None

            return check

        playlist = Body(
            b"#EXTM3U\n#EXTINF:1,\nsecure/a.ts\n#EXTINF:1,\nopen/b.ts\n",
            headers={b"set-cookie": b"scoped=1; Path=/secure"},
        )
        origin, _ = start_origin(
            self,
            Tree(
                {
                    "/live.m3u8": playlist,
                    "/secure/a.ts": Body(b"A", b"video/mp2t", check=record("secure")),
                    "/open/b.ts": Body(b"B", b"video/mp2t", check=record("open")),
                }
            ),
        )
        proxy = start_proxy(self)
        http = client(self)
        body = (
            await (await http.get(proxied_url(proxy, origin + "/live.m3u8"))).content()
        ).decode()
        children = [line for line in body.splitlines() if line.startswith("/p/")]
        for child in children:
            await (await http.get(proxy + child)).content()
        self.assertIn("scoped=1", seen["secure"])
        self.assertNotIn("scoped=1", seen["open"])
