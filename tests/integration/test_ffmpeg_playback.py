"""ffmpeg as the player: frames read through the proxy equal frames read directly."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web.static import File

from tests.tools import require_tool, run_process

from . import hls_media
from .harness import client, proxied_url, start_origin, start_proxy


async def framemd5(url: str) -> list[str]:
    """The per-frame checksums ffmpeg decodes from `url` (no -allowed_extensions: strict)."""
    ffmpeg = require_tool("ffmpeg")
    arguments = ["-nostdin", "-v", "error", "-rw_timeout", "20000000", "-i", url,
                 "-map", "0", "-f", "framemd5", "-"]  # fmt: skip
    out, err, code = await run_process(ffmpeg, arguments)
    if code != 0:
        raise AssertionError(f"ffmpeg exited {code}: {err.decode(errors='replace')[-2000:]}")
    return [line for line in out.decode().splitlines() if line and not line.startswith("#")]


class FfmpegPlaybackTests(TestCase):
    timeout = 120

    async def _same_frames(
        self, make: Callable[[], Path], playlist: str, **proxy_settings: Any
    ) -> None:
        media = make()
        origin, recording = start_origin(self, File(str(media)))
        proxy = start_proxy(self, **proxy_settings)
        direct = await framemd5(f"{origin}/{playlist}")
        self.assertGreater(len(direct), 150)  # ~4 s of video at 25 fps plus audio frames
        seen_direct = len(recording.seen)
        proxied = await framemd5(proxied_url(proxy, f"{origin}/{playlist}"))
        self.assertEqual(proxied, direct)
        # The proxied run fetched every file itself: nothing went around the proxy.
        files_direct = sorted(r.path for r in recording.seen[:seen_direct])
        files_proxied = sorted(r.path for r in recording.seen[seen_direct:])
        self.assertEqual(files_proxied, files_direct)
        for path in re.findall(r"\S+", " ".join(files_proxied)):
            self.assertTrue(path.endswith((".m3u8", ".ts", ".m4s", ".mp4", ".key")), path)
        body = await (await client(self).get(proxied_url(proxy, f"{origin}/{playlist}"))).content()
        self.assertNotIn(origin.split("//")[1].encode(), body)

    async def test_ts_through_a_master_playlist(self) -> None:
        await self._same_frames(hls_media.ts_vod, "master.m3u8")

    async def test_fmp4_with_an_init_map(self) -> None:
        await self._same_frames(hls_media.fmp4_vod, "index.m3u8")

    async def test_aes_128_with_a_relative_key(self) -> None:
        await self._same_frames(hls_media.aes_vod, "enc/index.m3u8")

    async def test_a_big_vod_entry_redirected_to_its_own_url(self) -> None:
        await self._same_frames(hls_media.fmp4_vod, "index.m3u8", redirect_playlist_uris=1)
