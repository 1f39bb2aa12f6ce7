"""Headless Chromium plays proxied streams from the project's own page with hls.js."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web.static import File

from tests.integration import hls_media
from tests.integration.harness import start_origin, start_proxy
from tests.tools import require_tool, run_process

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent.parent / "test-artifacts"


def require_driver() -> None:
    require_tool("chromium")
    require_tool("node")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        require_tool("tests/e2e/node_modules/playwright-core (run scripts/setup-test-env.sh)")


async def play_in_page(
    page_url: str, stream_url: str, screenshot: Path, api_key: str = ""
) -> dict[str, object]:
    node = require_tool("node")
    out, err, code = await run_process(
        node, [str(HERE / "play.js"), page_url, stream_url, str(screenshot), api_key],
        seconds=90, path=str(HERE),
    )  # fmt: skip
    if code != 0:
        raise AssertionError(f"play.js exited {code}: {err.decode(errors='replace')[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


class BrowserPlaybackTests(TestCase):
    timeout = 180

    async def _plays(
        self,
        make: Callable[[], Path],
        playlist: str,
        name: str,
        api_key: str = "",
        **proxy_settings: Any,
    ) -> None:
        require_driver()
        media = make()
        origin, recording = start_origin(self, File(str(media)))
        hlsjs, _ = start_origin(self, File(str(HERE / "node_modules" / "hls.js" / "dist")))
        proxy = start_proxy(
            self, hlsjs_url=f"{hlsjs}/hls.min.js", api_key=api_key, **proxy_settings
        )
        ARTIFACTS.mkdir(exist_ok=True)
        state = await play_in_page(
            f"{proxy}/", f"{origin}/{playlist}", ARTIFACTS / f"{name}.png", api_key
        )
        if api_key:
            self.assertNotIn(api_key, str(state["proxied"]))  # never in a shareable link
        self.assertIsNone(state["fatal"], state)
        self.assertGreater(float(state["currentTime"]), 3.0, state)  # type: ignore[arg-type]
        self.assertEqual(state["pageErrors"], [])
        self.assertTrue(str(state["proxied"]).startswith(f"{proxy}/playlist.m3u8?url="), state)
        # Every request reached the origin through the proxy (with the identity the proxy
        # derives), none straight from the browser (whose Referer would be the page).
        self.assertGreater(len(recording.seen), 4)
        for seen in recording.seen:
            self.assertEqual(seen.headers.get("referer"), origin + "/", seen.path)

    async def test_ts_stream(self) -> None:
        await self._plays(hls_media.ts_vod, "master.m3u8", "browser-ts")

    async def test_fmp4_with_alternate_audio(self) -> None:
        await self._plays(hls_media.fmp4_alternate_audio, "master.m3u8", "browser-fmp4-audio")

    async def test_with_an_api_key_the_page_plays_and_links_do_not_carry_it(self) -> None:
        await self._plays(hls_media.ts_vod, "master.m3u8", "browser-api-key", api_key="k-123")

    async def test_aes_128_stream(self) -> None:
        await self._plays(hls_media.aes_vod, "enc/index.m3u8", "browser-aes")

    async def test_a_big_vod_entry_redirected_to_its_own_url_plays(self) -> None:
        # Any VOD entry playlist counts as big here: answered 302 to its sealed URL, where
        # its segments are relative references that hls.js resolves against that URL.
        await self._plays(
            hls_media.aes_vod, "enc/index.m3u8", "browser-redirected", redirect_playlist_uris=1
        )
