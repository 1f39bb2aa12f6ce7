"""An endless real MPEG-TS channel through the real proxy on loopback: one upstream
connection for viewers joining at different times, late joiners near the live edge and
decodable, the upstream closed within the linger after the last viewer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.tools import require_tool, run_process

from .harness import client, later, proxied_url, reactor, start_origin, start_proxy
from .live_origin import Collector, LiveTs, make_loop

# The origin loops a 4 s file, so timestamps jump back every 4 s; ffmpeg's null muxer
# says so. A real channel's timestamps do not jump; this line is not about the proxy.
_LOOP_ARTEFACT = b"non monotonically increasing dts"


def _up_to_last_pat(data: bytes) -> bytes:
    """The capture without its last frames: a viewer that leaves cuts a frame in two, and
    a decoder rightly reports that half frame. ffmpeg's muxer starts PES packets after a
    PAT, so up to the last PAT every frame is whole."""
    pats = [o for o in range(0, len(data), 188) if data[o + 1] & 0x5F == 0x40 and not data[o + 2]]
    return data[: pats[-1]]


class LiveTsTests(TestCase):
    timeout = 60

    async def test_viewers_share_one_connection_and_late_joiners_start_near_the_edge(
        self,
    ) -> None:
        ffmpeg = require_tool("ffmpeg")
        live = LiveTs(make_loop(ffmpeg, Path(self.mktemp()).parent))
        origin, _ = start_origin(self, live)
        linger_s = 1.0
        proxy = start_proxy(self, live_linger_s=linger_s)
        url = proxied_url(proxy, origin + "/live/u/p/123.ts", endpoint="stream")
        http = client(self)

        async def watch(headers: dict[bytes, list[bytes]] | None = None) -> Collector:
            response = await http.get(url, headers=headers, unbuffered=True)
            self.assertEqual(response.code, 200)
            self.assertFalse(response.headers.hasHeader(b"content-range"))
            collector = Collector()
            self.addCleanup(collector.leave)  # also when an assertion fails first
            response.deliverBody(collector)
            return collector

        first = await watch()
        await later(4.5)  # past the young phase: a live channel now
        second = await watch()
        measured: dict[str, int] = {}
        second.on_first_bytes = lambda: measured.setdefault("first_len", len(first.data))
        await later(1.0)
        ranged = await watch({b"range": [b"bytes=0-"]})
        await later(2.0)
        self.assertEqual(live.opened, 1, "one upstream connection for three viewers")

        for viewer in (first, second, ranged):
            self.assertEqual(viewer.data[0], 0x47)
            self.assertEqual(len(viewer.data) % 188, 0, "whole packets only")
        start = bytes(second.data[:2048])
        position = bytes(first.data).rfind(start, 0, measured["first_len"])
        self.assertGreater(position, 0, "the late joiner's bytes are the channel's, not byte 0")
        behind_s = (measured["first_len"] - position) / live.rate_bytes_s
        self.assertLessEqual(behind_s, 3.5, f"joined {behind_s:.2f} s behind the live edge")
        self.assertEqual(second.data[1] & 0x5F, 0x40, "starts with a PAT")
        self.assertEqual(second.data[2], 0)

        path = Path(tempfile.mkdtemp(dir=Path(self.mktemp()).parent)) / "late.ts"
        path.write_bytes(_up_to_last_pat(bytes(second.data)))
        _, errors, code = await run_process(
            ffmpeg, ["-v", "error", "-i", str(path), "-f", "null", "-"]
        )
        problems = [line for line in errors.splitlines() if _LOOP_ARTEFACT not in line]
        self.assertEqual((code, problems), (0, []), "the late joiner's bytes decode cleanly")

        left_s = reactor.seconds()
        for viewer in (first, second, ranged):
            viewer.leave()
        for _ in range(60):
            if live.closed_at_s:
                break
            await later(0.05)
        self.assertEqual(len(live.closed_at_s), 1)
        self.assertLessEqual(live.closed_at_s[0] - left_s, linger_s + 0.5)
        self.assertGreaterEqual(live.closed_at_s[0] - left_s, linger_s - 0.1)
