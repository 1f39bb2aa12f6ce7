"""Big playlists over HTTP (issues 11 and 12): size, cold and cached latency, /health
while a big rewrite runs, and the length of a locked stream's child URLs.

    python3 benchmarks/bench_playlists.py            # about a minute
    python3 benchmarks/bench_playlists.py --quick    # one run per measure

Starts, on 127.0.0.1 only, a loopback origin (threads in this process) serving a
50,000-segment VOD media playlist whose URIs carry a token query (relative ones, and
absolute ones in a second copy), a master playlist listing it, and a small "locked"
stream; and `twistd -n hlsproxy` with this tree on PYTHONPATH (as bench.py does). The
media playlist is requested through the master (it is then a child `/p/...` and its
segments are relative references) and directly as an entry (`/playlist.m3u8?url=`).
Each run uses a new upstream URL (`&v=N`), so its first request is cold: a new stream,
nothing cached. The proxy's very first request (a fresh process: heap growth, the
worker thread starting) is timed apart, before the runs. A thread polls /health every
5 ms during every cold request.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from common import akamai_token, locked_headers, start_proxy, stop_process

SEGMENTS = 50_000
TOKEN = "token=" + "".join(random.Random(1).choices(string.ascii_letters + string.digits, k=43))
LOCKED_DIR = "/hls/live/2012345/channel1"
HDNTS = akamai_token(LOCKED_DIR)


def media_playlist(segments: int, prefix: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for number in range(1, segments + 1):
        lines += ["#EXTINF:4.0,", f"{prefix}seg{number:05d}.ts?{TOKEN}"]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def master_playlist(variant: str) -> bytes:
    return (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,"
        f'CODECS="avc1.640028,mp4a.40.2"\n{variant}\n'
    ).encode()


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, segments: int) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        absolute = f"{self.base}/abs/1080p/"
        self.bodies = {
            "/vod/master.m3u8": master_playlist(f"1080p/index.m3u8?{TOKEN}"),
            "/vod/1080p/index.m3u8": media_playlist(segments, ""),
            "/abs/master.m3u8": master_playlist(f"{absolute}index.m3u8?{TOKEN}"),
            "/abs/1080p/index.m3u8": media_playlist(segments, absolute),
            f"{LOCKED_DIR}/master.m3u8": master_playlist("720p/index.m3u8"),
            f"{LOCKED_DIR}/720p/index.m3u8": b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
            b"#EXTINF:4.0,\nseg-1.ts\n#EXT-X-ENDLIST\n",
            f"{LOCKED_DIR}/720p/seg-1.ts": b"\x47" * 188 * 10,
        }


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def do_GET(self) -> None:
        body = self.server.bodies.get(urlsplit(self.path).path)
        self.send_response(200 if body is not None else 404)
        kind = "video/mp2t" if self.path.endswith(".ts") else "application/vnd.apple.mpegurl"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


class Client:
    """One keep-alive connection to the proxy."""

    def __init__(self, port: int) -> None:
        self.connection = HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, ms to the last byte), following a redirect on this host (a big
        VOD entry playlist is answered 302 to its own sealed URL) as a player does."""
        started = time.perf_counter()
        for _ in range(3):
            self.connection.request("GET", path)
            response = self.connection.getresponse()
            body = response.read()
            location = response.getheader("location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                break
            path = location
        return response.status, body, (time.perf_counter() - started) * 1000


class HealthPoller:
    """Polls /health every 5 ms on its own connection while `active` is set."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()
        self.active = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        client = Client(self.port)
        while not self.stopping.is_set():
            if not self.active.wait(0.05):
                continue
            try:
                status, _, ms = client.get("/health")
            except OSError:
                self.failures += 1
                client = Client(self.port)
                continue
            if status == 200:
                self.samples.append(ms)
            else:
                self.failures += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def entry_path(url: str, headers: dict[str, str] | None = None) -> str:
    query = "".join(f"&h_{name}={quote(value, safe='')}" for name, value in (headers or {}).items())
    return f"/playlist.m3u8?url={quote(url, safe='')}{query}"


def first_child(body: bytes) -> str:
    return next(ln for ln in body.decode().splitlines() if ln and not ln.startswith("#"))


class Bench:
    def __init__(self, runs: int, segments: int) -> None:
        self.runs = runs
        self.segments = segments
        self.rows: list[tuple[str, str, str, str]] = []
        self.root = Path(tempfile.mkdtemp(prefix="hlsbench-playlists-"))
        self.proxy: subprocess.Popen[bytes] | None = None

    def row(self, name: str, value: str, baseline: str, goal: str) -> None:
        self.rows.append((name, value, baseline, goal))
        print(f"  {name}: {value} | {baseline} | {goal}", flush=True)

    def close(self) -> None:
        if self.proxy is not None:
            stop_process(self.proxy)
        shutil.rmtree(self.root, ignore_errors=True)

    def run(self) -> None:
        origin = Origin(self.segments)
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        try:
            port, self.proxy = start_proxy(self.root / "proxy.log")
            self.measure(port, origin)
        finally:
            origin.shutdown()
            origin.server_close()

    def measure(self, port: int, origin: Origin) -> None:
        client = Client(port)
        poller = HealthPoller(port)
        upstream = {name: origin.bodies[f"/{name}/1080p/index.m3u8"] for name in ("vod", "abs")}
        direct = Client(int(origin.base.rpartition(":")[2]))
        direct_ms: list[float] = []
        cold: dict[str, list[float]] = {"child": [], "entry": []}
        cached: dict[str, list[float]] = {"child": [], "entry": []}
        sizes: dict[tuple[str, str], int] = {}
        health_baseline: list[float] = []

        def timed_cold(path: str) -> tuple[bytes, float]:
            poller.active.set()
            try:
                status, body, ms = client.get(path)
            finally:
                poller.active.clear()
            assert status == 200, (status, body[:300])
            return body, ms

        def repeat(path: str) -> float:
            times = []
            for _ in range(5):
                status, _, ms = client.get(path)
                assert status == 200, status
                times.append(ms)
            return statistics.median(times)

        # /health alone first: the baseline for the latency under a cold rewrite.
        poller.active.set()
        time.sleep(0.5)
        poller.active.clear()
        time.sleep(0.1)
        health_baseline, poller.samples = poller.samples, []
        # A fresh process's first big rewrite also grows the heap and starts the worker
        # thread: timed on its own (an upstream URL of its own), not among the runs.
        status, _, fresh_ms = client.get(
            entry_path(f"{origin.base}/vod/1080p/index.m3u8?{TOKEN}&v=warm-up")
        )
        assert status == 200, status
        print(f"{self.runs} run(s), {self.segments:,} segments", flush=True)
        for run in range(self.runs):
            for name in ("vod", "abs"):
                suffix = f"?{TOKEN}&v={run}"
                # Directly, as an entry.
                entry = entry_path(f"{origin.base}/{name}/1080p/index.m3u8{suffix}")
                body, ms = timed_cold(entry)
                sizes[(name, "entry")] = len(body)
                if name == "vod":
                    direct_ms.append(direct.get(f"/vod/1080p/index.m3u8{suffix}")[2])
                    cold["entry"].append(ms)
                    cached["entry"].append(repeat(entry))
                # Through the master: the media playlist is a child.
                status, master, _ = client.get(
                    entry_path(f"{origin.base}/{name}/master.m3u8{suffix}")
                )
                assert status == 200, master
                child = first_child(master)
                body, ms = timed_cold(child)
                sizes[(name, "child")] = len(body)
                if name == "vod":
                    cold["child"].append(ms)
                    cached["child"].append(repeat(child))
        poller.stop()

        def ratio(name: str, where: str) -> str:
            return f"{sizes[(name, where)] / len(upstream[name]):.2f}x"

        for name, label in (("vod", "relative"), ("abs", "absolute")):
            for where, how in (("child", "via master (child)"), ("entry", "direct (entry)")):
                self.row(
                    f"rewritten / upstream size, {label} URIs, {how}",
                    ratio(name, where),
                    f"{sizes[(name, where)]:,} / {len(upstream[name]):,} B",
                    "<= 3x",
                )
        for where, how in (("child", "via master (child)"), ("entry", "direct (entry)")):
            self.row(
                f"first answer (cold), {how}, ms",
                f"{statistics.median(cold[where]):.0f}",
                "runs "
                + ", ".join(f"{ms:.0f}" for ms in cold[where])
                + f"; origin alone {statistics.median(direct_ms):.0f}",
                "< 400",
            )
            self.row(
                f"repeated answer (cached), {how}, ms",
                f"{statistics.median(cached[where]):.1f}",
                "median of 5 per run",
                "< 50",
            )
        self.row(
            "first answer of a fresh process (cold), direct (entry), ms",
            f"{fresh_ms:.0f}",
            "the proxy's first request: not among the runs",
            "",
        )
        samples = poller.samples
        self.row(
            "/health during cold rewrites, p50/p99/max ms",
            f"{percentile(samples, 0.5):.1f} / {percentile(samples, 0.99):.1f} / "
            f"{max(samples):.1f}",
            f"{len(samples)} polls, {poller.failures} failed; idle p50/p99 "
            f"{percentile(health_baseline, 0.5):.1f} / {percentile(health_baseline, 0.99):.1f}",
            "p99 < 100",
        )
        self.locked(client, origin)

    def locked(self, client: Client, origin: Origin) -> None:
        """A stream locked to its site: Chrome UA, Referer, Origin, a 200-char cookie,
        an Akamai `hdnts=` token on the master URL."""
        headers = locked_headers()
        cookie = headers["cookie"]
        master_url = f"{origin.base}{LOCKED_DIR}/master.m3u8?{HDNTS}"
        status, master, _ = client.get(entry_path(master_url, headers))
        assert status == 200, master
        variant = first_child(master)
        status, media, _ = client.get(variant)
        assert status == 200, media
        segment_ref = first_child(media)
        segment = urljoin(variant, segment_ref)
        status, body, _ = client.get(segment)
        assert status == 200 and body == origin.bodies[f"{LOCKED_DIR}/720p/seg-1.ts"], status
        where = f"{len(master_url)}-char master URL, {len(cookie)}-char cookie"
        self.row("locked stream: variant child (path-absolute), chars", str(len(variant)), where,
                 "< 512")  # fmt: skip
        self.row(
            "locked stream: segment child as requested, chars",
            str(len(segment)),
            f"written in the playlist: {len(segment_ref)}",
            "< 512",
        )

    def table(self, command: str) -> str:
        head = ("measure", "hlsproxy", "detail (same run)", "goal")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        lines = [f"`{command}` ({os.cpu_count()} CPUs, load average {load})", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    parser.add_argument("--runs", type=int, default=3, help="cold runs (new upstream URL each)")
    parser.add_argument("--segments", type=int, default=SEGMENTS)
    args = parser.parse_args()
    runs = 1 if args.quick else max(1, min(args.runs, 10))
    bench = Bench(runs, max(1, min(args.segments, 200_000)))
    try:
        bench.run()
    finally:
        bench.close()
    print()
    print(bench.table(shlex.join(["python3", "benchmarks/bench_playlists.py", *sys.argv[1:]])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
