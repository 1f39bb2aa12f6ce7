"""Range sharing (issue 14 part 1): two ffmpeg readers of one VOD stream, origin GETs
per segment through the proxy against straight at the origin.

    python3 benchmarks/bench_range.py             # about 20 s; needs ffmpeg
    python3 benchmarks/bench_range.py --readers 4

ffmpeg's HLS demuxer sends `Range: bytes=0-` on every request. Makes a VOD HLS stream
with ffmpeg (20 s, 2 s segments, 320x180), serves it from a counting loopback origin
(threads in this process; it honours Range like nginx), and runs the readers
(`ffmpeg -i <url> -c copy -f null -`) at once: first straight at the origin, then
through `twistd -n hlsproxy` (this tree on PYTHONPATH, as bench.py). Prints one table.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from common import start_proxy, stop_process

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class Origin(ThreadingHTTPServer):
    """Serves one directory; counts GETs per path and Range headers seen."""

    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.directory = directory
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.gets: collections.Counter[str] = collections.Counter()
        self.ranges: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        with self.lock:
            self.gets.clear()
            self.ranges.clear()


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        range_value = self.headers.get("range")
        with self.server.lock:
            self.server.gets[path] += 1
            if range_value:
                self.server.ranges[range_value] += 1
        file = (self.server.directory / path.lstrip("/")).resolve()
        if self.server.directory not in file.parents or not file.is_file():
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = file.read_bytes()
        match = _RANGE.match(range_value or "")
        kind = "video/mp2t" if path.endswith(".ts") else "application/vnd.apple.mpegurl"
        if match and int(match.group(1)) < len(body):
            first = int(match.group(1))
            last = min(int(match.group(2) or len(body) - 1), len(body) - 1)
            self.send_response(206)
            self.send_header("content-range", f"bytes {first}-{last}/{len(body)}")
            body = body[first : last + 1]
        else:
            self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("accept-ranges", "bytes")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def make_stream(ffmpeg: str, directory: Path, seconds: int) -> int:
    """An ffmpeg-made VOD HLS stream in `directory`; returns its number of segments."""
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
         "-hls_time", "2", "-hls_list_size", "0", "-hls_playlist_type", "vod",
         str(directory / "index.m3u8")],
        check=True,
    )  # fmt: skip
    return len(list(directory.glob("*.ts")))


def read_all(ffmpeg: str, url: str, readers: int) -> list[tuple[int, str]]:
    """Run `readers` ffmpeg copies of `url` at once: (exit code, stderr) each."""
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-i", url, "-c", "copy", "-f", "null", "-"]
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(readers)
    ]
    results = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        results.append((process.returncode, stderr.strip()))
    return results


def segment_gets(origin: Origin) -> tuple[int, int]:
    """(GETs of segments, GETs of the playlist) the origin has answered."""
    with origin.lock:
        segments = sum(n for path, n in origin.gets.items() if path.endswith(".ts"))
        return segments, origin.gets["/index.m3u8"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=20, help="length of the stream")
    args = parser.parse_args()
    readers = max(1, min(args.readers, 16))
    seconds = max(4, min(args.seconds, 120))
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is missing: apt-get install -y ffmpeg", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="hlsbench-range-"))
    www = root / "www"
    www.mkdir()
    proxy: subprocess.Popen[bytes] | None = None
    origin = Origin(www.resolve())
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        segments = make_stream(ffmpeg, www, seconds)
        direct = read_all(ffmpeg, f"{origin.base}/index.m3u8", readers)
        direct_gets, direct_playlists = segment_gets(origin)
        direct_ranged = sum(origin.ranges.values())
        origin.reset()
        port, proxy = start_proxy(root / "proxy.log")
        url = f"http://127.0.0.1:{port}/playlist.m3u8?url={quote(origin.base + '/index.m3u8')}"
        proxied = read_all(ffmpeg, url, readers)
        proxy_gets, proxy_playlists = segment_gets(origin)
        proxy_ranges = dict(origin.ranges)
    finally:
        if proxy is not None:
            stop_process(proxy)
        origin.shutdown()
        origin.server_close()
        shutil.rmtree(root, ignore_errors=True)

    def outcome(results: list[tuple[int, str]]) -> str:
        codes = ",".join(str(code) for code, _ in results)
        errors = sum(1 for _, stderr in results if stderr)
        return f"exit {codes}; {errors} with errors"

    for name, results in (("direct", direct), ("proxy", proxied)):
        for code, stderr in results:
            if code or stderr:
                print(f"{name} reader: exit {code}: {stderr[:400]}", file=sys.stderr)
    per_direct = direct_gets / segments
    per_proxy = proxy_gets / segments
    command = shlex.join(["python3", "benchmarks/bench_range.py", *sys.argv[1:]])
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    rows = [
        ("segments in the stream", str(segments), f"{seconds} s, 2 s segments", ""),
        (
            f"origin GETs per segment, {readers} ffmpeg readers",
            f"{per_proxy:.2f}",
            f"direct {per_direct:.2f} ({direct_ranged} of {direct_gets + direct_playlists} "
            "direct GETs had a Range)",
            "1",
        ),
        ("proxy / direct segment GETs", f"{proxy_gets / max(1, direct_gets):.2f}", "",
         f"1/{readers}"),
        ("origin playlist GETs", str(proxy_playlists), f"direct {direct_playlists}", ""),
        ("Range headers the origin saw via the proxy", str(proxy_ranges or "none"), "", ""),
        ("readers", outcome(proxied), f"direct: {outcome(direct)}", "exit 0"),
    ]  # fmt: skip
    print()
    print(f"`{command}` ({os.cpu_count()} CPUs, load average {load})")
    print()
    print("| measure | via hlsproxy | direct (same run) | goal |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    failed = any(code for code, _ in proxied)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
