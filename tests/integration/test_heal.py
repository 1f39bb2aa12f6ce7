"""A token origin (issue 14 #3): tokens valid a few seconds, an entry URL that redirects
to a freshly tokenized CDN URL, playlists and segments refused once their token expired.
Through the proxy ffmpeg and ten polling viewers keep playing for many token lifetimes;
directly, ffmpeg dies at the first expiry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from tests.tools import require_tool, run_process

from . import hls_media
from .harness import client, later, proxied_url, reactor, start_origin, start_proxy

_SEGMENTS = 24  # one second each: the live window runs out after about 20 s


class TokenOrigin(Resource):
    """`/entry.m3u8` -> 302 to `/cdn/master.m3u8?tok=<expiry>`; everything under `/cdn/`
    needs an unexpired `tok`, which each playlist repeats on its URIs."""

    isLeaf = True

    def __init__(self, segments: Path, lifetime_s: float) -> None:
        super().__init__()
        self.segments = segments
        self.lifetime_s = lifetime_s
        self.started_s = reactor.seconds()
        self.entry_agents: list[str] = []  # User-Agent of each entry request
        self.entry_status: int | None = None  # set: the entry URL is refused with it
        self.refused = 0

    def render_GET(self, request: Request) -> bytes:
        path = request.path.decode()
        now = reactor.seconds()
        if path == "/entry.m3u8":
            self.entry_agents.append((request.getHeader(b"user-agent") or b"").decode())
            if self.entry_status is not None:
                request.setResponseCode(self.entry_status)
                return b"refused\n"
            request.redirect(b"/cdn/master.m3u8?tok=%.3f" % (now + self.lifetime_s))
            return b""
        token = (request.args or {}).get(b"tok", [b"0"])[0].decode()
        if float(token) < now:
            self.refused += 1
            request.setResponseCode(403)
            return b"token expired\n"
        if path == "/cdn/master.m3u8":
            return _playlist(
                "#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180",
                f"v0/index.m3u8?tok={token}",
                "#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180",
                f"v1/index.m3u8?tok={token}",
            )
        if re.fullmatch(r"/cdn/v[01]/index\.m3u8", path):
            edge = min(int(now - self.started_s) + 3, _SEGMENTS - 1)
            first = max(0, edge - 5)
            lines = ["#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
            for number in range(first, edge + 1):
                lines += ["#EXTINF:1.000000,", f"seg{number:03d}.ts?tok={token}"]
            return _playlist(*lines)
        found = re.fullmatch(r"/cdn/v[01]/(seg[0-9]{3}\.ts)", path)
        if found and (self.segments / found[1]).exists():
            request.setHeader(b"content-type", b"video/mp2t")
            return (self.segments / found[1]).read_bytes()
        request.setResponseCode(404)
        return b"not found\n"


def _playlist(*lines: str) -> bytes:
    return ("#EXTM3U\n#EXT-X-VERSION:3\n" + "\n".join(lines) + "\n").encode()


async def _ffmpeg_seconds(url: str, seconds: int, level: str = "error") -> tuple[float, str]:
    """Seconds of video ffmpeg decoded from `url` (as a live player, up to `seconds`), and
    what it logged at `level`."""
    ffmpeg = require_tool("ffmpeg")
    arguments = ["-nostdin", "-v", level, "-rw_timeout", "5000000", "-i", url,
                 "-map", "0:v:0", "-t", str(seconds), "-f", "framecrc", "-"]  # fmt: skip
    out, err, _ = await run_process(ffmpeg, arguments, seconds=seconds + 20)
    frames = [line for line in out.decode().splitlines() if line and not line.startswith("#")]
    return len(frames) / 25, err.decode(errors="replace")


class _Viewer:
    """A player's requests: the master once, then the same variant's proxy URL polled and
    its newest segment fetched, until `until_s`; every status that was not 200 is kept."""

    def __init__(self, http: HTTPClient, entry: str) -> None:
        self._http = http
        self._entry = entry
        self.requests = 0
        self.failures: list[tuple[int, str]] = []

    async def _get(self, url: str) -> bytes:
        response = await self._http.get(url)
        body: bytes = await response.content()
        self.requests += 1
        if response.code != 200:
            self.failures.append((response.code, url.rsplit("/", 1)[-1][:30]))
        return body

    async def watch(self, until_s: float) -> None:
        master = (await self._get(self._entry)).decode()
        variant = urljoin(self._entry, [ln for ln in master.splitlines() if ln[:1] == "/"][1])
        fetched: set[str] = set()
        while reactor.seconds() < until_s:
            playlist = (await self._get(variant)).decode()
            uris = [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")]
            for uri in uris[-2:]:
                if uri not in fetched:
                    fetched.add(uri)
                    await self._get(urljoin(variant, uri))
            await later(0.4)


class TokenExpiryTests(TestCase):
    timeout = 90

    async def test_playback_survives_many_token_lifetimes_and_viewers_share_re_resolves(
        self,
    ) -> None:
        lifetime_s, play_s = 3.0, 14
        origin = TokenOrigin(hls_media.ts_segments(_SEGMENTS), lifetime_s)
        base, _ = start_origin(self, origin)
        proxy = start_proxy(self)
        entry = proxied_url(proxy, f"{base}/entry.m3u8")
        viewers = [_Viewer(client(self), entry) for _ in range(10)]
        started_s = reactor.seconds()
        watching = [v.watch(started_s + play_s) for v in viewers]
        results: Any = await gatherResults(
            [
                Deferred.fromCoroutine(_ffmpeg_seconds(entry, play_s)),
                Deferred.fromCoroutine(_ffmpeg_seconds(f"{base}/entry.m3u8", play_s, "warning")),
                *(Deferred.fromCoroutine(w) for w in watching),
            ]
        )
        (proxied_s, proxied_err), (direct_s, direct_err) = results[0], results[1]
        elapsed_s = reactor.seconds() - started_s
        # Through the proxy: all of it, no error; directly: dead at the first expiry.
        self.assertEqual(proxied_err.strip(), "")
        self.assertGreaterEqual(proxied_s, play_s - 0.5)
        self.assertIn("403", direct_err)
        self.assertLess(direct_s, lifetime_s + 5, direct_err[-2000:])
        # Ten viewers polling the proxy never saw a refusal, though the origin refused.
        self.assertEqual([v.failures for v in viewers], [[]] * 10)
        self.assertGreater(sum(v.requests for v in viewers), 10 * play_s)
        self.assertGreater(origin.refused, 0)
        # About one entry re-resolve per token lifetime for everyone through the proxy.
        by_proxy = [agent for agent in origin.entry_agents if not agent.startswith("Lavf")]
        expiries = elapsed_s / lifetime_s
        self.assertGreaterEqual(len(by_proxy), expiries - 2, (by_proxy, elapsed_s))
        self.assertLessEqual(len(by_proxy), expiries + 2, (len(by_proxy), elapsed_s))

    async def test_a_refused_entry_url_is_passed_on_once_and_heal_0_turns_it_off(self) -> None:
        origin = TokenOrigin(hls_media.ts_segments(_SEGMENTS), lifetime_s=1.0)
        base, _ = start_origin(self, origin)
        proxy = start_proxy(self)
        http = client(self)
        for switch, expected in (("", 401), ("&heal=0", 403)):
            # bypass=0: no derived Referer, so a refusal is not retried without it.
            entry = proxied_url(proxy, f"{base}/entry.m3u8") + "&bypass=0" + switch
            master = await (await http.get(entry)).text()
            variant = urljoin(entry, next(ln for ln in master.splitlines() if ln[:1] == "/"))
            self.assertEqual((await http.get(variant)).code, 200)
            origin.entry_status = 401
            await later(1.2)  # the token expired; the entry URL now refuses too
            asked = len(origin.entry_agents)
            response = await http.get(variant)
            await response.content()
            self.assertEqual(response.code, expected)
            self.assertEqual(len(origin.entry_agents) - asked, 1 if expected == 401 else 0)
            origin.entry_status = None
