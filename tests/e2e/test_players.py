"""VLC, mpv and ffmpeg play proxied streams: byte ranges, a live window, remuxing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web.server import Request
from twisted.web.static import File

from tests.integration import hls_media
from tests.integration.harness import proxied_url, reactor, start_origin, start_proxy
from tests.integration.origin import Scripted
from tests.integration.test_ffmpeg_playback import framemd5
from tests.tools import require_tool, run_process

# VLC refuses to run as root; CI runs as root, so VLC runs as this unprivileged user.
PLAYER_USER = "hlsplayer"


def as_unprivileged(command: list[str]) -> tuple[str, list[str]]:
    if os.geteuid() != 0:
        return command[0], command[1:]
    runuser = require_tool("runuser")
    return runuser, ["-u", PLAYER_USER, "--", *command]


def live_window(segments: Path, window: int = 3) -> Scripted:
    """A sliding-window live playlist over `segments`, advancing one segment a second."""
    started = reactor.seconds()

    def playlist(request: Request) -> bytes:
        newest = min(int(reactor.seconds() - started) + window, 12)
        first = max(0, newest - window)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]  # fmt: skip
        for index in range(first, newest):
            lines += ["#EXTINF:1.000000,", f"seg{index:03d}.ts"]
        request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
        request.setHeader(b"cache-control", b"no-cache")
        return ("\n".join(lines) + "\n").encode()

    return Scripted(playlist)


class PlayerTests(TestCase):
    timeout = 120

    async def test_vlc_remuxes_a_proxied_stream_that_ffprobe_reads_back(self) -> None:
        await self._vlc_remuxes("master.m3u8")

    async def test_vlc_plays_a_big_vod_entry_through_its_redirect(self) -> None:
        # Any VOD entry counts as big here: 302 to its sealed URL, relative segments there.
        await self._vlc_remuxes("v0/index.m3u8", redirect_playlist_uris=1)

    async def _vlc_remuxes(self, playlist: str, **proxy_settings: Any) -> None:
        vlc = require_tool("cvlc")
        ffprobe = require_tool("ffprobe")
        origin, _ = start_origin(self, File(str(hls_media.ts_vod())))
        proxy = start_proxy(self, **proxy_settings)
        out_dir = Path(tempfile.mkdtemp(prefix="hlsproxy-vlc-"))
        self.addCleanup(shutil.rmtree, out_dir, True)
        out_dir.chmod(0o777)
        output = out_dir / "out.ts"
        executable, arguments = as_unprivileged([
            vlc, "-I", "dummy", "--no-interact", proxied_url(proxy, f"{origin}/{playlist}"),
            "--sout", f"#std{{access=file,mux=ts,dst={output}}}", "--play-and-exit", "vlc://quit",
        ])  # fmt: skip
        _, err, code = await run_process(executable, arguments)
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        probe, _, probe_code = await run_process(
            ffprobe,
            ["-v", "error", "-show_streams", "-show_format", "-of", "json", str(output)],
        )
        self.assertEqual(probe_code, 0)
        info = json.loads(probe)
        kinds = sorted(stream["codec_type"] for stream in info["streams"])
        self.assertEqual(kinds, ["audio", "video"])
        self.assertGreater(float(info["format"]["duration"]), 3.0)

    async def test_mpv_plays_a_proxied_stream_to_its_end(self) -> None:
        await self._mpv_plays()

    async def test_mpv_plays_a_big_vod_entry_through_its_redirect(self) -> None:
        await self._mpv_plays(redirect_playlist_uris=1)

    async def _mpv_plays(self, **proxy_settings: Any) -> None:
        mpv = require_tool("mpv")
        origin, recording = start_origin(self, File(str(hls_media.fmp4_vod())))
        proxy = start_proxy(self, **proxy_settings)
        _, err, code = await run_process(
            mpv, ["--no-config", "--vo=null", "--ao=null", "--really-quiet",
                  proxied_url(proxy, origin + "/index.m3u8")],
        )  # fmt: skip
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        self.assertIn("/seg003.m4s", recording.paths())  # it played to the last segment

    async def test_ffmpeg_byte_range_single_file_stream(self) -> None:
        origin, recording = start_origin(self, File(str(hls_media.ts_single_file())))
        proxy = start_proxy(self)
        direct = await framemd5(origin + "/index.m3u8")
        proxied = await framemd5(proxied_url(proxy, origin + "/index.m3u8"))
        self.assertEqual(proxied, direct)
        ranges = [seen.headers.get("range") for seen in recording.seen if seen.path == "/index.ts"]
        self.assertTrue(all(ranges), ranges)  # every segment read was a byte range

    async def test_ffmpeg_reads_a_live_sliding_window_for_seconds(self) -> None:
        ffmpeg = require_tool("ffmpeg")
        segments = hls_media.ts_segments(12)
        files = File(str(segments))
        files.putChild(b"live.m3u8", live_window(segments))
        origin, recording = start_origin(self, files)
        proxy = start_proxy(self)
        _, err, code = await run_process(
            ffmpeg, ["-nostdin", "-v", "error", "-i", proxied_url(proxy, origin + "/live.m3u8"),
                     "-t", "6", "-f", "null", "-"],
        )  # fmt: skip
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        playlist_fetches = recording.paths().count("/live.m3u8")
        self.assertGreaterEqual(playlist_fetches, 3)  # it kept reloading the live window
        self.assertIn("/seg005.ts", recording.paths())
