"""hlsproxy vs direct nginx vs nginx proxy_pass, measured together on loopback.

    apt-get install -y nginx wrk ffmpeg curl      # once
    python3 benchmarks/bench.py                  # ~2 minutes; --quick for a smoke run

Starts, on 127.0.0.1 only: an nginx origin serving an ffmpeg-made HLS stream and
synthetic 1 MB / 100 MB segments; an nginx `proxy_pass` in front of it (stock settings);
and `twistd hlsproxy` (one worker, then two). Prints one table; every ratio is against a
baseline measured in the same run. Everything it starts is stopped when it ends.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from common import SECRET, free_port, start_proxy, stop_process, wait_port

MB = 1024 * 1024
NGINX_CONF = """
user root;
worker_processes auto;
pid {root}/{name}.pid;
error_log {root}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {root}/{name}-access.log;
    sendfile on;
    keepalive_requests 100000;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{port};
        {body}
    }}
}}
"""


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.root = Path(tempfile.mkdtemp(prefix="hlsbench-"))
        os.chmod(self.root, 0o755)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.rows: list[tuple[str, str, str, str, str]] = []

    # ---- setup -------------------------------------------------------------------------
    def make_media(self) -> None:
        www = self.root / "www"
        www.mkdir()
        (www / "seg1m.ts").write_bytes(os.urandom(MB))
        with open(www / "big.ts", "wb") as big:
            block = os.urandom(MB)
            for _ in range(100):
                big.write(block)
        names = [f"seg1m.ts?m={i}" for i in range(40)] + [f"big.ts?c={i}" for i in range(50)]
        names += ["seg1m.ts?herd=1", "seg1m.ts", "big.ts"]
        lines = "".join(f"#EXTINF:4,\n{name}\n" for name in names)
        (www / "bench.m3u8").write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n{lines}#EXT-X-ENDLIST\n"
        )
        (www / "live.m3u8").write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n{lines}"
        )
        hls = www / "hls"
        hls.mkdir()
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x360:rate=25",
                "-t",
                "8",
                "-c:v",
                "libx264",
                "-g",
                "50",
                "-hls_time",
                "2",
                "-hls_list_size",
                "0",
                str(hls / "index.m3u8"),
            ],
            check=True,
        )
        for path in www.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    def nginx(self, name: str, port: int, body: str) -> None:
        conf = self.root / f"{name}.conf"
        conf.write_text(NGINX_CONF.format(root=self.root, name=name, port=port, body=body))
        self.processes.append(
            subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"], cwd=self.root)
        )
        wait_port(port)

    def proxy(self, workers: int) -> tuple[int, subprocess.Popen[bytes]]:
        port, process = start_proxy(self.root / f"proxy-{workers}.log", "--workers", str(workers))
        self.processes.append(process)
        return port, process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        stop_process(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- measuring ---------------------------------------------------------------------
    def row(self, name: str, value: str, baseline: str, ratio: str, target: str) -> None:
        self.rows.append((name, value, baseline, ratio, target))
        print(f"  {name}: {value} | {baseline} | {ratio} | {target}", flush=True)

    @staticmethod
    def cpu_s(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def rss_bytes(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    @staticmethod
    def curl_speed(url: str) -> float:
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert int(float(out[1])) == 100 * MB, out
        return float(out[0])

    def wrk(self, url: str, connections: int, seconds: int) -> tuple[float, float, float, int]:
        """(requests/s, p50 ms, p99 ms, errors) from wrk --latency."""
        out = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "--timeout",
                "10s",
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

        def ms(label: str) -> float:
            match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
            assert match, out
            value, unit = float(match.group(1)), match.group(2)
            return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

        errors = 0
        socket_errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if socket_errors:
            errors += sum(int(n) for n in socket_errors.groups())
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non_2xx:
            errors += int(non_2xx.group(1))
        return rps, ms("50"), ms("99"), errors

    def ttfb_ms(self, urls: list[str]) -> float:
        times = []
        for url in urls:
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}", url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            times.append(float(out) * 1000)
        return statistics.median(times)

    def origin_count(self, needle: str) -> int:
        log = (self.root / "origin-access.log").read_text()
        return sum(1 for line in log.splitlines() if needle in line)

    # ---- the run -----------------------------------------------------------------------
    def run(self) -> None:
        seconds = 2 if self.quick else 5
        self.make_media()
        origin_port, nginx_proxy_port = free_port(), free_port()
        www = self.root / "www"
        self.nginx("origin", origin_port, f"location / {{ root {www}; }}")
        self.nginx(
            "nginxproxy",
            nginx_proxy_port,
            f"location / {{ proxy_pass http://127.0.0.1:{origin_port}; }}",
        )
        port, proxy = self.proxy(1)
        origin = f"http://127.0.0.1:{origin_port}"
        entry = f"/playlist.m3u8?url={quote(origin + '/bench.m3u8', safe='')}"
        status, playlist = get(port, entry)
        assert status == 200, playlist
        paths = [line for line in playlist.decode().splitlines() if line.startswith("/p/")]
        miss_paths, slow_paths = paths[:40], paths[40:90]
        herd_path, seg_path, big_path = paths[90:93]
        proxy_url = f"http://127.0.0.1:{port}"
        direct = f"http://127.0.0.1:{origin_port}"
        via_nginx = f"http://127.0.0.1:{nginx_proxy_port}"

        print("single client, 100 MB segment", flush=True)
        speeds = {}
        for name, url in (("direct", direct + "/big.ts"), ("nginx", via_nginx + "/big.ts")):
            self.curl_speed(url)  # warm the page cache
            speeds[name] = max(self.curl_speed(url) for _ in range(2))
        before = self.cpu_s(proxy.pid)
        runs = [self.curl_speed(proxy_url + big_path) for _ in range(2)]
        cpu_per_gb = (self.cpu_s(proxy.pid) - before) / (2 * 100 / 1024)
        speeds["proxy"] = max(runs)
        mbps = {name: value / MB for name, value in speeds.items()}
        self.row(
            "100 MB throughput, MB/s",
            f"{mbps['proxy']:.0f}",
            f"direct {mbps['direct']:.0f}",
            f"{speeds['proxy'] / speeds['direct']:.2f}",
            "",
        )
        self.row(
            "100 MB throughput vs nginx proxy_pass",
            f"{mbps['proxy']:.0f}",
            f"nginx {mbps['nginx']:.0f}",
            f"{speeds['proxy'] / speeds['nginx']:.2f}",
            ">= 1.00",
        )
        self.row("proxy CPU s per GB relayed", f"{cpu_per_gb:.2f}", "", "", "")

        print("1 MB segments, wrk", flush=True)
        levels = [50, 200] if self.quick else [50, 200, 1000]
        first_rps: dict[str, float] = {}
        for connections in levels:
            results = {}
            for name, url in (
                ("direct", direct + "/seg1m.ts"),
                ("nginx", via_nginx + "/seg1m.ts"),
                ("proxy", proxy_url + seg_path),
            ):
                results[name] = self.wrk(url, connections, seconds)
            rps, p50, p99, errors = results["proxy"]
            first_rps.setdefault("proxy", rps)
            self.row(
                f"{connections} clients: req/s (p50/p99 ms, errors)",
                f"{rps:.0f} ({p50:.1f}/{p99:.1f}, {errors})",
                f"nginx {results['nginx'][0]:.0f} ({results['nginx'][1]:.1f}/"
                f"{results['nginx'][2]:.1f}, {results['nginx'][3]}); "
                f"direct {results['direct'][0]:.0f}",
                f"{rps / results['nginx'][0]:.2f} vs nginx",
                ">= 1.00, 0 errors" if connections == 50 else "0 errors",
            )

        print("50 slow clients (200 KB/s) on 100 MB segments", flush=True)
        # A fresh instance (same secret, so the same signed URLs work): growth is then
        # not hidden by memory the earlier scenarios already made the process keep.
        slow_port, slow_proxy = self.proxy(1)
        slow_base = f"http://127.0.0.1:{slow_port}"
        get(slow_port, "/health")
        rss_before = self.rss_bytes(slow_proxy.pid)
        slow_seconds = 4 if self.quick else 10
        readers = [
            subprocess.Popen(
                [
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--limit-rate",
                    "200k",
                    "--max-time",
                    str(slow_seconds),
                    slow_base + path,
                ]
            )
            for path in slow_paths
        ]
        peak = rss_before
        deadline = time.monotonic() + slow_seconds + 2
        while time.monotonic() < deadline and any(r.poll() is None for r in readers):
            peak = max(peak, self.rss_bytes(slow_proxy.pid))
            time.sleep(0.1)
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
            reader.wait()
        growth = (peak - rss_before) / MB
        self.stop(slow_proxy)
        self.row(
            "peak RSS growth, 50 slow clients, MB",
            f"{growth:.1f}",
            f"RSS before {rss_before / MB:.0f}",
            "",
            "<= 64",
        )

        print("100 clients, one uncached segment", flush=True)
        with concurrent.futures.ThreadPoolExecutor(100) as pool:
            statuses = list(pool.map(lambda _: get(port, herd_path)[0], range(100)))
        assert statuses == [200] * 100, statuses
        herd = self.origin_count("/seg1m.ts?herd=1")
        self.row("origin requests, 100 clients, 1 segment", str(herd), "100 clients", "", "== 1")

        print("100 clients polling one live playlist", flush=True)
        live = f"/playlist.m3u8?url={quote(origin + '/live.m3u8', safe='')}"
        poll_seconds = 8.0 if not self.quick else 4.0
        stop_at = time.monotonic() + poll_seconds

        def poller(_: int) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            count = 0
            while time.monotonic() < stop_at:
                connection.request("GET", live)
                response = connection.getresponse()
                response.read()
                count += 1
                time.sleep(0.5)
            connection.close()
            return count

        with concurrent.futures.ThreadPoolExecutor(100) as pool:
            polls = sum(pool.map(poller, range(100)))
        fetched = self.origin_count("/live.m3u8")
        per_target = fetched / (poll_seconds / 4)
        self.row(
            "origin playlist fetches per target duration",
            f"{per_target:.1f}",
            f"{polls} client polls",
            "",
            "<= 3",
        )

        print("time to first byte, 1 MB segment", flush=True)
        n = 10 if self.quick else 30
        direct_ttfb = self.ttfb_ms([direct + f"/seg1m.ts?m={i}" for i in range(n)])
        miss_ttfb = self.ttfb_ms([proxy_url + path for path in miss_paths[:n]])
        hit_ttfb = self.ttfb_ms([proxy_url + path for path in miss_paths[:n]])
        self.row(
            "added TTFB p50, miss, ms",
            f"{miss_ttfb - direct_ttfb:.2f}",
            f"direct {direct_ttfb:.2f}",
            "",
            "",
        )
        self.row(
            "TTFB p50, cache hit, ms",
            f"{hit_ttfb:.2f}",
            f"direct {direct_ttfb:.2f}",
            f"+{hit_ttfb - direct_ttfb:.2f} ms",
            "<= 2",
        )

        print("rewrite of a 50,000-segment playlist", flush=True)
        minter_ms, child_path_ms = rewrite_ms()
        self.row(
            "50,000-segment rewrite (minter), ms",
            f"{minter_ms:.0f}",
            f"old child_path {child_path_ms:.0f}",
            f"{minter_ms / child_path_ms:.2f}",
            "< 300",
        )

        self.stop(proxy)
        print("two workers", flush=True)
        port2, proxy2 = self.proxy(2)
        status, playlist = get(port2, entry)
        seg_path2 = [ln for ln in playlist.decode().splitlines() if ln.startswith("/p/")][91]
        for _ in range(4):
            get(port2, seg_path2)  # fill both workers' caches
        rps2 = self.wrk(f"http://127.0.0.1:{port2}{seg_path2}", 50, seconds)[0]
        self.row(
            "--workers 2, 50 clients req/s",
            f"{rps2:.0f}",
            f"1 worker {first_rps['proxy']:.0f}",
            f"{rps2 / first_rps['proxy']:.2f}",
            "scaling",
        )
        self.stop(proxy2)

    def table(self) -> str:
        head = ("measure", "hlsproxy", "baseline (same run)", "ratio", "target")
        command = shlex.join(["python3", "benchmarks/bench.py", *sys.argv[1:]])
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        lines = [f"`{command}` ({os.cpu_count()} CPUs, load average {load})", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def rewrite_ms() -> tuple[float, float]:
    """Best-of-3 ms to rewrite a 50,000-segment playlist: (the minter, old `child_path`).

    The minter is what `Playlists.rewritten` uses: `Signer.minter(spec, playlist_url,
    parent)`, one per rewrite, its `media_refs` for the plain segment lines (many at a
    time), here for an entry request (no parent).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from hls_proxy.playlist import UriKind, rewrite_playlist
    from hls_proxy.signing import Signer
    from hls_proxy.streamspec import stream_spec

    playlist_url = "https://cdn.example.com/live/index.m3u8"
    body = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
        + "".join(
            f"#EXTINF:4.000,\nhttps://cdn.example.com/live/seg-{i}.ts?token=abcdef\n"
            for i in range(50_000)
        )
    ).encode()
    signer = Signer(SECRET.encode())
    spec = stream_spec(playlist_url, {})

    def with_minter() -> bytes:
        minter = signer.minter(spec, playlist_url, None)
        return rewrite_playlist(body, playlist_url, minter.ref, minter.media_refs)

    def with_child_path() -> bytes:
        part = signer.stream_part(spec)

        def proxy_url(url: str, kind: UriKind) -> str:
            return signer.child_path(part, url, kind)

        return rewrite_playlist(body, playlist_url, proxy_url)

    def best_ms(rewrite: Callable[[], bytes]) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            rewrite()
            best = min(best, time.perf_counter() - started)
        return best * 1000

    return best_ms(with_minter), best_ms(with_child_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer clients")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "ffmpeg", "curl"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install -y nginx wrk ffmpeg curl", file=sys.stderr)
            return 2
    bench = Bench(args.quick)
    try:
        bench.run()
    finally:
        bench.close()
    print()
    print(bench.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
