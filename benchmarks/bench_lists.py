"""A big IPTV channel list through `/list.m3u`: first byte, throughput, proxy RSS growth.

    python3 benchmarks/bench_lists.py              # 200,000 entries (~60 MB), ~1 minute
    python3 benchmarks/bench_lists.py --entries 20000

Writes a list with every header dialect in rotation to a temporary directory, serves it
from a loopback origin (`python3 -m http.server`, plain and gzip-encoded through a
tiny handler), starts `twistd hlsproxy` on 127.0.0.1, reads the rewritten list once per
encoding as a client that reads as fast as it can, and samples the proxy's VmRSS every
20 ms. Prints one table. Everything it starts is stopped when it ends.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import http.server
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from common import start_proxy, stop_process

MB = 1024 * 1024
# Attributes real provider lists carry on every entry (~120 bytes), for a realistic size.
_COMMON = (
    'tvg-logo="https://logos.provider.example/images/channels/large/{n}.png" '
    'tvg-language="English" tvg-country="US" '
)
STYLES = (
    "#EXTINF:-1 "
    + _COMMON
    + 'tvg-id="c{n}" tvg-name="Channel {n}" tvg-logo="http://img.example/{n}.png" '
    'group-title="Group {g}",Channel {n}\n#EXTVLCOPT:http-referrer=https://site.example/\n'
    "#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11; Linux x86_64) Channel/{n}\n"
    "http://cdn{g}.example/live/user/pass/{n}.m3u8\n",
    "#EXTINF:-1 " + _COMMON + 'tvg-id="c{n}" group-title="Group {g}",Channel {n}\n'
    "http://cdn{g}.example/live/{n}.ts|User-Agent=Kodi%2F20&Referer=https://r.example/?a={n}\n",
    "#EXTINF:-1 "
    + _COMMON
    + 'tvg-id="c{n}" group-title="Group {g}" user-agent="App/{n}",Channel {n}\n'
    '#EXTHTTP:{{"Referer": "https://e.example/{n}", "Cookie": "k={n}"}}\n'
    "http://cdn{g}.example/hls/{n}/index.m3u8?token=abcdef{n}\n",
    "#EXTINF:-1 "
    + _COMMON
    + 'tvg-id="c{n}" tvg-name="Plain {n}" group-title="Group {g}",Plain {n}\n'
    "http://plain.example/live/user/pass/{n}\n",
)


def write_list(path: Path, entries: int) -> int:
    with path.open("w") as out:
        out.write('#EXTM3U url-tvg="http://epg.example/guide.xml.gz"\n')
        for n in range(entries):
            out.write(STYLES[n % len(STYLES)].format(n=n, g=n % 40))
    return path.stat().st_size


def origin(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    """Serves `root`; `*.gz` files go out with Content-Encoding: gzip (a gzipping server)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def end_headers(self) -> None:
            if self.path.endswith(".gz"):
                self.send_header("Content-Encoding", "gzip")
            super().end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def read_list(proxy_port: int, upstream: str, pid: int) -> dict[str, float]:
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.02)

    before = rss_kib(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=120)
    started = time.monotonic()
    connection.request("GET", "/list.m3u?url=" + quote(upstream, safe=""))
    response = connection.getresponse()
    first = response.read1(65536)
    first_byte_s = time.monotonic() - started
    total = len(first)
    while chunk := response.read1(65536):
        total += len(chunk)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"proxy answered {response.status}")
    return {
        "first_byte_ms": first_byte_s * 1000,
        "total_s": elapsed,
        "out_mb": total / MB,
        "mb_per_s": total / MB / elapsed,
        "rss_growth_mb": (max([*samples, before]) - before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hlsproxy-bench-lists-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        size = write_list(root / "list.m3u", arguments.entries)
        with (root / "list.m3u").open("rb") as plain, gzip.open(root / "list.m3u.gz", "wb") as gz:
            shutil.copyfileobj(plain, gz)
        server, origin_port = origin(root)
        port, process = start_proxy(root / "proxy.log")
        processes.append(process)
        print(f"list: {arguments.entries} entries, {size / MB:.1f} MB "
              f"({(root / 'list.m3u.gz').stat().st_size / MB:.1f} MB gzip)")  # fmt: skip
        print(f"{'upstream':<22}{'first byte ms':>14}{'total s':>9}{'out MB':>8}"
              f"{'MB/s':>7}{'RSS growth MB':>15}")  # fmt: skip
        for name, path in (("plain", "list.m3u"), ("gzip-encoded", "list.m3u.gz")):
            upstream = f"http://127.0.0.1:{origin_port}/{path}"
            result = read_list(port, upstream, process.pid)
            print(f"{name:<22}{result['first_byte_ms']:>14.0f}{result['total_s']:>9.1f}"
                  f"{result['out_mb']:>8.1f}{result['mb_per_s']:>7.1f}"
                  f"{result['rss_growth_mb']:>15.1f}")  # fmt: skip
        server.shutdown()
    finally:
        for process in processes:
            stop_process(process)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
