"""An endless MPEG-TS channel on loopback, as IPTV providers serve one, and its viewers.

The origin loops a short ffmpeg-made TS at its real-time rate, chunked, with no length,
in odd-sized writes (never on packet boundaries), and counts its connections. Shared by
tests/integration/test_live_ts.py and benchmarks/bench_live.py.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

__all__ = ["LOOP_SECONDS", "Collector", "LiveTs", "make_loop"]

reactor: Any = _reactor
LOOP_SECONDS = 4


def make_loop(ffmpeg: str, directory: Path | None = None) -> bytes:
    """A LOOP_SECONDS TS (H.264 + AAC, a keyframe every second), made by ffmpeg."""
    where = Path(directory or tempfile.mkdtemp(prefix="hlsproxy-live-"))
    target = where / "loop.ts"
    subprocess.run(
        [
            ffmpeg, "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine", "-t", str(LOOP_SECONDS),
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "400k",
            "-c:a", "aac", "-threads", "1", "-f", "mpegts", str(target),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return target.read_bytes()


class LiveTs(Resource):
    """Serves `data` over and over at len(data)/LOOP_SECONDS bytes per second."""

    isLeaf = True

    def __init__(self, data: bytes, tick_s: float = 0.05) -> None:
        super().__init__()
        self.data = data
        self.rate_bytes_s = len(data) / LOOP_SECONDS
        self._tick_s = tick_s
        self.opened = 0
        self.open_now = 0
        self.max_open = 0
        self.closed_at_s: list[float] = []

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"content-type", b"video/mp2t")
        self.opened += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        position = 0
        step = int(self.rate_bytes_s * self._tick_s) | 1  # odd: never packet-aligned

        def tick() -> None:
            nonlocal position
            out = bytearray()
            while len(out) < step:
                take = min(step - len(out), len(self.data) - position)
                out += self.data[position : position + take]
                position = (position + take) % len(self.data)
            request.write(bytes(out))

        loop = LoopingCall(tick)
        loop.clock = reactor
        loop.start(self._tick_s)

        def gone(_: object) -> None:
            loop.stop()
            self.open_now -= 1
            self.closed_at_s.append(reactor.seconds())

        request.notifyFinish().addBoth(gone)
        return NOT_DONE_YET


class Collector(Protocol):
    """Keeps a viewer's body and when its first bytes came; `leave` closes its socket."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.first_byte_s: float | None = None
        self.on_first_bytes: Any = None
        self.ended: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.first_byte_s is None:
            self.first_byte_s = reactor.seconds()
            if self.on_first_bytes is not None:
                self.on_first_bytes()
        self.data += data

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.ended = reason

    def leave(self) -> None:
        if self.ended is None and self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
