"""hls.js in headless Chromium plays the newest HLS through the proxy: variables and
interstitials (hls.js 1.6 or later)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase
from twisted.web.static import File

from tests.e2e.test_browser import ARTIFACTS, HERE, play_in_page, require_driver
from tests.integration import hls_media
from tests.integration.harness import start_origin, start_proxy


def variables_stream() -> Path:
    """The TS stream with a QUERYPARAM + IMPORT master: every URI needs `sid`."""
    root = Path(tempfile.mkdtemp(prefix="hlsproxy-vars-"))
    shutil.copytree(hls_media.ts_vod(), root, dirs_exist_ok=True)
    (root / "vars.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-DEFINE:QUERYPARAM="sid"\n'
        '#EXT-X-DEFINE:NAME="dir",VALUE="v0"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.42c00d,mp4a.40.2"\n'
        "{$dir}/index.m3u8?sid={$sid}\n"
    )
    index = (root / "v0" / "index.m3u8").read_text()
    lines = []
    for line in index.splitlines():
        if line.startswith("#EXTM3U"):
            lines += [line, '#EXT-X-DEFINE:IMPORT="sid"']
        elif line and not line.startswith("#"):
            lines.append(line + "?sid={$sid}")
        else:
            lines.append(line)
    (root / "v0" / "index.m3u8").write_text("\n".join(lines) + "\n")
    return root


def interstitial_stream() -> Path:
    """The TS stream with a pre-roll interstitial from an asset list: the same stream
    again under /ad/ (so the origin can tell the asset's requests apart)."""
    root = Path(tempfile.mkdtemp(prefix="hlsproxy-ads-"))
    shutil.copytree(hls_media.ts_vod(), root, dirs_exist_ok=True)
    shutil.copytree(hls_media.ts_vod(), root / "ad", dirs_exist_ok=True)
    index = (root / "v0" / "index.m3u8").read_text()
    head, _, rest = index.partition("#EXTINF")
    (root / "v0" / "ads.m3u8").write_text(
        head
        + "#EXT-X-PROGRAM-DATE-TIME:2026-11-24T17:00:00.000Z\n"
        + '#EXT-X-DATERANGE:ID="pre",CLASS="com.apple.hls.interstitial",'
        + 'START-DATE="2026-11-24T17:00:00.000Z",CUE="PRE",X-ASSET-LIST="../ad/list.json",'
        + "X-RESUME-OFFSET=0\n"
        + "#EXTINF"
        + rest
    )
    (root / "ads.m3u8").write_text(
        (root / "master.m3u8").read_text().replace("v0/index.m3u8", "v0/ads.m3u8")
    )
    assets = {"ASSETS": [{"URI": "master.m3u8", "DURATION": 4.0}]}
    (root / "ad" / "list.json").write_text(json.dumps(assets))
    return root


class NewestHlsBrowserTests(TestCase):
    timeout = 180

    async def test_queryparam_and_import_stream_plays(self) -> None:
        require_driver()
        media = variables_stream()
        self.addCleanup(shutil.rmtree, media, True)
        origin, recording = start_origin(self, File(str(media)))
        hlsjs, _ = start_origin(self, File(str(HERE / "node_modules" / "hls.js" / "dist")))
        proxy = start_proxy(self, hlsjs_url=f"{hlsjs}/hls.min.js")
        ARTIFACTS.mkdir(exist_ok=True)
        state = await play_in_page(
            f"{proxy}/", f"{origin}/vars.m3u8?sid=s-42", ARTIFACTS / "browser-variables.png"
        )
        self.assertIsNone(state["fatal"], state)
        self.assertGreater(float(state["currentTime"]), 3.0, state)  # type: ignore[arg-type]
        self.assertEqual(state["pageErrors"], [])
        segments = [path for path in recording.paths() if ".ts" in path]
        self.assertGreater(len(segments), 2, recording.paths())
        for path in [*segments, "/v0/index.m3u8?sid=s-42"]:
            self.assertIn(path.partition("?")[0] + "?sid=s-42", recording.paths())
        for seen in recording.seen:  # all of it through the proxy, none from the page
            self.assertEqual(seen.headers.get("referer"), origin + "/", seen.path)

    async def test_interstitial_from_an_asset_list_plays_through_the_proxy(self) -> None:
        require_driver()
        media = interstitial_stream()
        self.addCleanup(shutil.rmtree, media, True)
        origin, recording = start_origin(self, File(str(media)))
        hlsjs, _ = start_origin(self, File(str(HERE / "node_modules" / "hls.js" / "dist")))
        proxy = start_proxy(self, hlsjs_url=f"{hlsjs}/hls.min.js")
        ARTIFACTS.mkdir(exist_ok=True)
        state = await play_in_page(
            f"{proxy}/", f"{origin}/ads.m3u8", ARTIFACTS / "browser-interstitial.png"
        )
        self.assertIsNone(state["fatal"], state)
        self.assertGreater(float(state["currentTime"]), 3.0, state)  # type: ignore[arg-type]
        self.assertEqual(state["pageErrors"], [])
        paths = recording.paths()
        # The asset list, the asset's playlists and its segments all came via the proxy,
        # with the player's _HLS_primary_id passed on.
        lists = [path for path in paths if path.startswith("/ad/list.json")]
        self.assertEqual(len(lists), 1, paths)
        self.assertIn("_HLS_primary_id=", lists[0])
        self.assertTrue(
            any(path.startswith("/ad/master.m3u8?_HLS_primary_id=") for path in paths), paths
        )
        self.assertGreater(len([path for path in paths if path.startswith("/ad/v0/seg")]), 1, paths)
        self.assertTrue(any(path.startswith("/v0/seg") for path in paths), paths)
        for seen in recording.seen:  # all of it through the proxy, none from the page
            self.assertEqual(seen.headers.get("referer"), origin + "/", seen.path)
