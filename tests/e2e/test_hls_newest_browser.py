"""hls.js in headless Chromium plays the newest HLS through the proxy: variables."""

from __future__ import annotations

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
