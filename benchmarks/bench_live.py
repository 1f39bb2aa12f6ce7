"""Live MPEG-TS channels (issue 14): 50 viewers of one endless channel, on loopback.

    python3 benchmarks/bench_live.py            # about 20 s; needs ffmpeg
    python3 benchmarks/bench_live.py --viewers 10 --linger 1

An origin (tests/integration/live_origin.py) loops an ffmpeg-made TS at real time,
chunked, with no length, and counts its connections. The real proxy (build_site) runs in
this process on 127.0.0.1. A tenth of the viewers start at once, the rest join while
the channel is live (one with `Range: bytes=0-` in every five). Prints one table:
origin connections for the channel (goal 1), how far behind the live edge the late
joiners started, and the time from the last viewer leaving to the upstream closing.
Bounded: a watchdog stops the run after 90 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater, react
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site

from hls_proxy.config import Config
from hls_proxy.service import build_site
from tests.integration.live_origin import Collector, LiveTs, make_loop


async def sleep(reactor: Any, seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def run(reactor: Any, viewers: int, linger_s: float) -> dict[str, str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed (apt-get install -y ffmpeg)")
    live = LiveTs(make_loop(ffmpeg, Path(tempfile.mkdtemp(prefix="bench-live-"))))
    origin_port = reactor.listenTCP(0, Site(live), interface="127.0.0.1")
    config = Config(secret=b"bench", allow_private=True, live_linger_s=linger_s)
    parts = build_site(config, reactor)
    proxy_port = reactor.listenTCP(0, parts.site, interface="127.0.0.1")
    origin = f"http://127.0.0.1:{origin_port.getHost().port}/live/u/p/1.ts"
    url = f"http://127.0.0.1:{proxy_port.getHost().port}/stream?url={quote(origin, safe='')}"
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = viewers + 1
    http = HTTPClient(Agent(reactor, pool=pool))

    async def watch(ranged: bool) -> Collector:
        headers = {b"range": [b"bytes=0-"]} if ranged else None
        response = await http.get(url, headers=headers, unbuffered=True)
        collector = Collector()
        response.deliverBody(collector)
        return collector

    early_count = max(1, viewers // 10)
    early = [await watch(False) for _ in range(early_count)]
    reference = early[0]
    await sleep(reactor, 4.0)  # past the young phase: joiners now start near the edge
    late: list[tuple[Collector, int]] = []
    spacing_s = 2.0 / max(1, viewers - early_count)
    for index in range(viewers - early_count):
        collector = await watch(ranged=index % 5 == 4)
        late.append((collector, 0))
        collector.on_first_bytes = lambda c=collector: late.append((c, len(reference.data)))
        await sleep(reactor, spacing_s)
    await sleep(reactor, 1.0)
    behind_s = []
    for collector, reference_length in late:
        if reference_length == 0:
            continue
        start = bytes(collector.data[:2048])
        position = bytes(reference.data).rfind(start, 0, reference_length)
        if position >= 0:
            behind_s.append((reference_length - position) / live.rate_bytes_s)
    connections = live.opened
    left_s = reactor.seconds()
    for collector in [*early, *(c for c, _ in late)]:
        collector.leave()
    for _ in range(int((linger_s + 5) / 0.05)):
        if live.closed_at_s:
            break
        await sleep(reactor, 0.05)
    close_s = live.closed_at_s[0] - left_s if live.closed_at_s else float("nan")
    stats = parts.dispatcher.channels.stats()
    await pool.closeCachedConnections()
    await parts.registry.close_all()
    await proxy_port.stopListening()
    await origin_port.stopListening()
    return {
        "viewers (late joiners)": f"{viewers} ({viewers - early_count})",
        "origin connections for the channel (goal 1)": str(connections),
        "late-join distance from the live edge, median s": f"{statistics.median(behind_s):.2f}",
        "late-join distance from the live edge, max s": f"{max(behind_s):.2f}",
        "late joiners measured": str(len(behind_s)),
        "viewers detached (laggards)": str(stats["live_viewers_detached"]),
        f"last viewer left -> upstream closed, s (linger {linger_s:g})": f"{close_s:.2f}",
    }


def main(reactor: Any, viewers: int, linger_s: float) -> Deferred[None]:
    async def go() -> None:
        watchdog = reactor.callLater(90, reactor.stop)
        rows = await run(reactor, viewers, linger_s)
        watchdog.cancel()
        width = max(len(name) for name in rows)
        print(f"{'measure':<{width}}  value")
        print(f"{'-' * width}  -----")
        for name, value in rows.items():
            print(f"{name:<{width}}  {value}")

    return ensureDeferred(go())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--linger", type=float, default=5.0)
    arguments = parser.parse_args()
    react(main, (arguments.viewers, arguments.linger))
