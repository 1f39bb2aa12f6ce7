"""/metrics in Prometheus text and one access-log line per request, without URLs."""

from __future__ import annotations

import re

from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from hls_proxy.observe import player_kind

from .harness import client, proxied_url, start_origin, start_proxy
from .origin import Body, Tree

PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts?token=SECRET\n#EXT-X-ENDLIST\n"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, or 0."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, label_text = metric.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if base == name and found == wanted:
            return float(value)
    return 0.0


class MetricsAndLogTests(TestCase):
    async def test_requests_upstreams_cache_and_refusals_are_counted_and_logs_hold_no_url(
        self,
    ) -> None:
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        origin, _ = start_origin(
            self,
            Tree({"/live.m3u8": Body(PLAYLIST), "/seg.ts": Body(b"S" * 1000, b"video/mp2t")}),
        )
        proxy = start_proxy(self)
        http = client(self)
        playlist = await (
            await http.get(
                proxied_url(proxy, origin + "/live.m3u8"),
                headers={"User-Agent": "VLC/3.0.20 LibVLC/3.0.20"},
            )
        ).content()
        [segment] = re.findall(rb"^/p/\S+$", playlist, re.M)
        for _ in range(2):
            self.assertEqual(
                await (await http.get(proxy + segment.decode())).content(), b"S" * 1000
            )
        refused_proxy = start_proxy(self, allow_private=False)
        await (await http.get(proxied_url(refused_proxy, origin + "/live.m3u8"))).content()
        text = (await (await http.get(proxy + "/metrics")).content()).decode()
        self.assertEqual(
            sample(text, "hlsproxy_requests_total", endpoint="playlist", status="200"), 1
        )
        self.assertEqual(sample(text, "hlsproxy_requests_total", endpoint="child", status="200"), 2)
        self.assertEqual(sample(text, "hlsproxy_upstream_requests_total", outcome="2xx"), 2)
        self.assertEqual(sample(text, "hlsproxy_cache_hits_total"), 1)
        self.assertEqual(sample(text, "hlsproxy_cache_misses_total"), 1)
        self.assertEqual(sample(text, "hlsproxy_cache_bytes"), 1000)
        self.assertEqual(sample(text, "hlsproxy_active_streams"), 1)
        self.assertGreaterEqual(sample(text, "hlsproxy_client_connections"), 1)
        self.assertEqual(
            sample(text, "hlsproxy_time_to_first_byte_seconds_count", endpoint="child"), 2
        )
        self.assertGreaterEqual(sample(text, "hlsproxy_sent_bytes_total"), 2000)
        refused_text = (await (await http.get(refused_proxy + "/metrics")).content()).decode()
        self.assertEqual(sample(refused_text, "hlsproxy_ssrf_refusals_total"), 1)
        lines = [
            formatEvent(event)
            for event in events
            if event.get("log_namespace") == "hlsproxy.access"
        ]
        self.assertTrue(
            any(line.startswith("GET playlist 200 ") and "player=vlc" in line for line in lines),
            lines,
        )
        self.assertTrue(any(line.startswith("GET child 200 1000B") for line in lines), lines)
        for line in lines:
            self.assertNotIn("SECRET", line)
            self.assertNotIn(origin.split("//")[1], line)  # no upstream host:port
            self.assertNotIn("/p/", line)
            self.assertRegex(line, r"stream=(-|[A-Za-z0-9_-]{12})")


class PlayerKindTests(SynchronousTestCase):
    def test_table(self) -> None:
        cases = {
            "MXPlayer/1.85.3 (Linux; Android 13)": "mxplayer",
            "VLC/3.0.20 LibVLC/3.0.20": "vlc",
            "mpv 0.35.1": "mpv",
            "Lavf/59.27.100": "ffmpeg",
            "ExoPlayerLib/2.19.1": "exoplayer",
            "Kodi/20.2 (X11; Linux x86_64)": "kodi",
            "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15": "safari",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36": "browser",
            "curl/8.0": "other",
            "": "none",
        }
        for user_agent, kind in cases.items():
            self.assertEqual(player_kind(user_agent), kind, user_agent)
