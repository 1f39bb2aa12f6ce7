"""Soak: normal viewers mixed with every kind of misbehaving origin, for a bounded time.

Starts a scripted origin (in this process) and `twistd hlsproxy` (a child process) on
127.0.0.1, then for --seconds keeps launching normal viewers (playlist + a 1 MB segment)
next to faulty requests (404/500/503, a stall mid-body, a reset mid-body, an origin that
never answers, garbage, a redirect loop, an endless chunked playlist, slowloris clients).
Every 5 s it samples the proxy's RSS and open file descriptors. It reports those samples,
the normal viewers' failures (which should be 0) and the statuses the faults got.

    python3 benchmarks/soak.py --seconds 120
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

reactor: Any = _reactor
ROOT = Path(__file__).resolve().parent.parent
SEGMENT = b"\x47" * (1024 * 1024)
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg.ts\n#EXT-X-ENDLIST\n"


class Origin(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes | int:
        path = request.path.decode()
        if path == "/ok.m3u8":
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            return PLAYLIST
        if path == "/seg.ts":
            request.setHeader(b"content-type", b"video/mp2t")
            return SEGMENT
        if path in ("/404.m3u8", "/500.m3u8", "/503.m3u8"):
            request.setResponseCode(int(path[1:4]))
            return b"no\n"
        if path == "/garbage.m3u8":
            return os.urandom(4096)
        if path == "/loop.m3u8":
            request.setResponseCode(302)
            request.setHeader(b"location", b"/loop.m3u8")
            return b""
        if path == "/hang.m3u8":
            return NOT_DONE_YET
        if path in ("/stall.ts", "/reset.ts"):
            request.setHeader(b"content-type", b"video/mp2t")
            request.setHeader(b"content-length", b"%d" % len(SEGMENT))
            request.write(SEGMENT[:100_000])
            if path == "/reset.ts":
                reactor.callLater(0.05, request.channel.transport.abortConnection)
            return NOT_DONE_YET
        if path == "/endless.m3u8":
            request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
            request.write(b"#EXTM3U\n")
            alive = {"yes": True}
            request.notifyFinish().addBoth(lambda _: alive.update(yes=False))

            def more() -> None:
                if alive["yes"]:
                    request.write(b"#X:" + b"x" * 65536 + b"\n")
                    reactor.callLater(0.001, more)

            more()
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"not found\n"


FAULTS = ["/404.m3u8", "/500.m3u8", "/503.m3u8", "/garbage.m3u8", "/loop.m3u8", "/hang.m3u8",
          "/stall.ts", "/reset.ts", "/endless.m3u8"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_sample(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


class Slowloris(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"GET /health HTTP/1.1\r\nX-a: ")  # type: ignore[union-attr]


async def soak(seconds: float, viewers_per_second: int) -> int:
    origin_port = reactor.listenTCP(0, Site(Origin()), interface="127.0.0.1").getHost().port
    origin = f"http://127.0.0.1:{origin_port}"
    proxy_port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak-proxy-{proxy_port}.log"
    proxy = subprocess.Popen(
        [sys.executable, shutil.which("twistd") or "twistd", "-n", "--pidfile=",
         f"--logfile={log_path}", "hlsproxy", "--port", f"tcp:{proxy_port}:interface=127.0.0.1",
         "--allow-private", "--secret", "soak", "--upstream-timeout", "3", "--idle-timeout", "2",
         "--client-header-timeout", "3", "--max-playlist-bytes", "1MB"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    base = f"http://127.0.0.1:{proxy_port}"
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 64
    http = HTTPClient(Agent(reactor, pool=pool))
    for _ in range(100):
        try:
            await (await http.get(base + "/health")).content()
            break
        except Exception:
            await deferLater(reactor, 0.1, lambda: None)
    normal_ok = normal_failed = 0
    fault_statuses: dict[str, collections.Counter[str]] = {f: collections.Counter() for f in FAULTS}
    samples: list[tuple[float, float, int]] = []

    def entry(path: str) -> str:
        return f"{base}/playlist.m3u8?url={quote(origin + path, safe='')}"

    async def viewer() -> None:
        nonlocal normal_ok, normal_failed
        try:
            playlist = await (await http.get(entry("/ok.m3u8"))).content()
            child = next(line for line in playlist.decode().splitlines() if line.startswith("/p/"))
            body = await (await http.get(base + child)).content()
            if body == SEGMENT:
                normal_ok += 1
            else:
                normal_failed += 1
        except Exception:
            normal_failed += 1

    async def fault(path: str) -> None:
        url = (
            entry(path)
            if path.endswith(".m3u8")
            else f"{base}/stream?url={quote(origin + path, safe='')}"
        )
        try:
            answer = await http.get(url)
            await answer.content()
            fault_statuses[path][str(answer.code)] += 1
        except Exception as error:
            fault_statuses[path][type(error).__name__] += 1

    started = time.monotonic()
    pending: list[Deferred[None]] = []
    slowloris: list[Any] = []
    next_sample = 0.0
    while (elapsed := time.monotonic() - started) < seconds:
        if elapsed >= next_sample:
            rss, fds = proc_sample(proxy.pid)
            samples.append((elapsed, rss, fds))
            print(
                f"{elapsed:6.0f} s  RSS {rss:7.1f} MB  fds {fds:4d}  "
                f"ok {normal_ok}  failed {normal_failed}",
                flush=True,
            )
            next_sample += 5
        pending += [Deferred.fromCoroutine(viewer()) for _ in range(viewers_per_second)]
        pending += [Deferred.fromCoroutine(fault(path)) for path in FAULTS]
        slowloris.append(
            connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy_port), Slowloris())
        )
        pending = [d for d in pending if not d.called]
        await deferLater(reactor, 1.0, lambda: None)
    await gatherResults(pending)
    await deferLater(reactor, 4.0, lambda: None)  # let timeouts and slowloris drops settle
    rss, fds = proc_sample(proxy.pid)
    samples.append((time.monotonic() - started, rss, fds))
    health = await http.get(base + "/health")
    await health.content()
    await pool.closeCachedConnections()
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(20)
    print()
    print("| time s | proxy RSS MB | open fds |")
    print("|---|---|---|")
    for elapsed, rss, fds in samples:
        print(f"| {elapsed:.0f} | {rss:.1f} | {fds} |")
    print()
    print(f"normal viewers: {normal_ok} ok, {normal_failed} failed; /health after: {health.code}")
    for path, statuses in fault_statuses.items():
        print(f"  {path}: {dict(statuses)}")
    return 0 if normal_failed == 0 and health.code == 200 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--viewers-per-second", type=int, default=10)
    args = parser.parse_args()
    result: list[int] = []
    d = Deferred.fromCoroutine(soak(args.seconds, args.viewers_per_second))
    d.addBoth(lambda outcome: (result.append(outcome if isinstance(outcome, int) else 2),
                               outcome if isinstance(outcome, int) else print(outcome),
                               reactor.stop()))  # fmt: skip
    reactor.run()
    return result[0] if result else 2


if __name__ == "__main__":
    sys.exit(main())
