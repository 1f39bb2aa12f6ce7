"""Soak: normal viewers next to misbehaving origins and hostile clients, for a bounded time.

Starts scripted origins (soak_adversaries.py, in this process) and `twistd -n hlsproxy`
(a child process, this tree on PYTHONPATH) on 127.0.0.1. For --seconds it launches, every
second, normal viewers of three kinds (a plain stream: playlist + 1 MB segment; a stream
whose key needs the cookie its playlist sets; a stream whose origin keeps idle
connections ~50 ms), next to:

- the classic faults: 404/500/503, garbage, a redirect loop, an origin that never
  answers, a stall and a reset mid-body, an endless playlist, a slowloris client;
- cross-user cache probes: /stream?url=<the locked key> without the cookie (leaks: 0);
- a redirect back to the proxy itself; redirects to gopher://127.0.0.1:<port> (the
  port counts connections: 0);
- a stream flood (a new h_x-n value on every request), a cookie flood (3,000 new
  cookies on every reload of one stream), amplification playlists (a few KB gzip'd:
  millions of one-char URIs; 500,000 under the byte cap) every 5 s, one at a time;
- raw requests: a 1 GiB Content-Length on /health, a 100 KB request line, 200 headers.

A separate process polls /health every 50 ms; RSS and open fds are sampled every second.
Prints the command line and Markdown tables; exits 1 if a goal with a hard bound failed.

    python3 benchmarks/soak.py                  # 100 s of load, under 2 minutes in all
    python3 benchmarks/soak.py --seconds 30
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from common import free_port, twistd_proxy
from soak_adversaries import (
    AMPLIFIERS,
    FAULTS,
    KEY,
    SEGMENT,
    SMALL_SEGMENT,
    Counting,
    Origin,
    raw_probe,
    raw_requests,
    stale_origin,
)
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site

reactor: Any = _reactor
# Adversary groups --without can leave out (to find which one costs what).
GROUPS = ("faults", "key-probe", "redirects", "cookies", "flood", "amplification", "raw",
          "slowloris")  # fmt: skip
POLLER = """
import http.client, json, sys, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
latencies, failed, connection = [], 0, None
end = time.monotonic() + seconds
while time.monotonic() < end:
    started = time.perf_counter()
    try:
        connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/health")
        answer = connection.getresponse()
        answer.read()
        if answer.status == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failed += 1
    except Exception:
        failed, connection = failed + 1, None
    time.sleep(0.05)
print(json.dumps({"latencies": latencies, "failed": failed}))
"""


def proc_sample(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Slowloris(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"GET /health HTTP/1.1\r\nX-a: ")  # type: ignore[union-attr]


class Tally:
    """Outcomes per adversary (status or error name) and the slowest answer."""

    def __init__(self) -> None:
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.slowest_s: dict[str, float] = collections.defaultdict(float)

    def add(self, name: str, outcome: object, started: float) -> None:
        self.outcomes[name][str(outcome)] += 1
        self.slowest_s[name] = max(self.slowest_s[name], time.monotonic() - started)


async def soak(
    seconds: float, viewers_per_second: int, flood_per_second: int, without: set[str]
) -> int:
    counting = Counting()
    gopher_port = reactor.listenTCP(0, counting, interface="127.0.0.1").getHost().port
    proxy_port = free_port()
    base = f"http://127.0.0.1:{proxy_port}"
    origin_site = Site(Origin(base, gopher_port))
    origin_port = reactor.listenTCP(0, origin_site, interface="127.0.0.1").getHost().port
    stale_site, stale_counts = stale_origin()
    stale_port = reactor.listenTCP(0, stale_site, interface="127.0.0.1").getHost().port
    origin = f"http://127.0.0.1:{origin_port}"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak-proxy-{proxy_port}.log"
    proxy = twistd_proxy(
        proxy_port, log_path, "--upstream-timeout", "3", "--idle-timeout", "2",
        "--client-header-timeout", "3", "--max-playlist-bytes", "1MB", secret="soak",
    )  # fmt: skip
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 64
    http = HTTPClient(Agent(reactor, pool=pool))
    for _ in range(300):
        if proxy.poll() is not None:
            raise SystemExit(f"the proxy exited ({proxy.returncode}); see {log_path}")
        try:
            await (await http.get(base + "/health", timeout=1)).content()
            break
        except Exception:
            await deferLater(reactor, 0.1, lambda: None)
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(proxy_port), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    viewers: dict[str, list[int]] = {
        name: [0, 0] for name in ("plain", "cookie-locked key", "stale keep-alive origin")
    }
    tally = Tally()
    why: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    leaks = 0
    samples: list[tuple[float, float, int]] = []

    def entry(url: str, extra: str = "") -> str:
        return f"{base}/playlist.m3u8?url={quote(url, safe='')}{extra}"

    def stream(url: str) -> str:
        return f"{base}/stream?url={quote(url, safe='')}"

    async def fetch(url: str) -> tuple[int | str, bytes]:
        try:
            answer = await http.get(url, timeout=30)
            return answer.code, await answer.content()
        except Exception as error:
            return type(error).__name__, b""

    def child(playlist: bytes, marker: str = "") -> str:
        for line in playlist.decode(errors="replace").splitlines():
            if marker and marker in line:
                return line.split('URI="', 1)[1].split('"', 1)[0]
            if not marker and line.startswith("/p/"):
                return line
        raise ValueError("no child in the playlist")

    async def viewer(
        kind: str, playlist_url: str, marker: str, expected: bytes, gap_s: float = 0.0
    ) -> None:
        try:
            await deferLater(reactor, gap_s, lambda: None)
            status, playlist = await fetch(entry(playlist_url))
            if status != 200:
                why[kind][f"playlist {status}: {playlist[:60]!r}"] += 1
                viewers[kind][1] += 1
                return
            status, body = await fetch(base + child(playlist, marker))
            if body != expected:
                why[kind][f"child {status}: {body[:60]!r}"] += 1
            viewers[kind][0 if body == expected else 1] += 1
        except Exception as error:
            why[kind][type(error).__name__] += 1
            viewers[kind][1] += 1

    async def adversary(name: str, url: str) -> None:
        nonlocal leaks
        started = time.monotonic()
        status, body = await fetch(url)
        if name == "key probe (no cookie)" and KEY in body:
            leaks += 1
        tally.add(name, status, started)

    async def raw(name: str, payload: bytes) -> None:
        started = time.monotonic()
        tally.add(name, await raw_probe(proxy_port, payload), started)

    started = time.monotonic()
    pending: list[Deferred[None]] = []
    amplifier: Deferred[None] | None = None
    flood_number = 0
    tick = 0
    while (elapsed := time.monotonic() - started) < seconds:
        rss, fds = proc_sample(proxy.pid)
        samples.append((elapsed, rss, fds))
        if tick % 5 == 0:
            failed = sum(failed for _, failed in viewers.values())
            print(f"{elapsed:6.0f} s  RSS {rss:7.1f} MB  fds {fds:4d}  viewers failed {failed}",
                  flush=True)  # fmt: skip
        work = [viewer("plain", origin + "/ok.m3u8", "", SEGMENT)
                for _ in range(viewers_per_second)]  # fmt: skip
        work += [
            viewer("cookie-locked key", origin + "/locked/index.m3u8", "#EXT-X-KEY", KEY),
        ]
        # Reloads 40-60 ms apart: a pooled connection is often reused just as the origin
        # closes it (the race a stale keep-alive is about).
        work += [viewer("stale keep-alive origin", f"http://127.0.0.1:{stale_port}/live.m3u8", "",
                        SMALL_SEGMENT, n * 0.05 + random.uniform(0, 0.02))
                 for n in range(4)]  # fmt: skip
        if "key-probe" not in without:
            work.append(adversary("key probe (no cookie)", stream(origin + "/locked/key.bin")))
        if "redirects" not in without:
            work += [
                adversary("redirect to the proxy itself", entry(origin + "/to-proxy.m3u8")),
                adversary("redirect to gopher:// (playlist)", entry(origin + "/gopher.m3u8")),
                adversary("redirect to gopher:// (media)", stream(origin + "/gopher.ts")),
            ]
        if "cookies" not in without:
            work.append(
                adversary("cookie flood (3,000 per reload)", entry(origin + "/cookies.m3u8"))
            )
        if "faults" not in without:
            work += [adversary(f"fault {path}", (entry if path.endswith(".m3u8") else stream)(
                origin + path)) for path in FAULTS]  # fmt: skip
        if "raw" not in without:
            work += [raw(name, payload) for name, payload in raw_requests().items()]
        if "flood" not in without and len(pending) < 500:  # bounded if answers lag
            for _ in range(flood_per_second):
                flood_number += 1
                extra = f"&h_x-n={flood_number}"
                work.append(
                    adversary("stream flood (new h_x-n)", entry(origin + "/ok.m3u8", extra))
                )
        pending += [Deferred.fromCoroutine(each) for each in work]
        amplify = "amplification" not in without and tick % 5 == 0
        if amplify and (amplifier is None or amplifier.called):  # one at a time
            path = sorted(AMPLIFIERS)[(tick // 5) % len(AMPLIFIERS)]
            amplifier = Deferred.fromCoroutine(
                adversary(f"amplification {path}", entry(origin + path))
            )
            pending.append(amplifier)
        if "slowloris" not in without:
            connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy_port), Slowloris())
        pending = [d for d in pending if not d.called]
        tick += 1
        await deferLater(reactor, max(0.0, started + tick - time.monotonic()), lambda: None)
    await gatherResults(pending)
    await deferLater(reactor, 4.0, lambda: None)  # let timeouts and slowloris drops settle
    rss, fds = proc_sample(proxy.pid)
    samples.append((time.monotonic() - started, rss, fds))
    health_code, _ = await fetch(base + "/health")
    await pool.closeCachedConnections()
    polled = json.loads(poller.communicate(timeout=30)[0] or '{"latencies": [], "failed": -1}')
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(20)
    for kind, reasons in why.items():
        print(f"{kind} viewers failed: {dict(reasons)}")
    return report(samples, viewers, tally, leaks, counting.connections, polled, health_code,
                  stale_counts)  # fmt: skip


def report(
    samples: list[tuple[float, float, int]],
    viewers: dict[str, list[int]],
    tally: Tally,
    leaks: int,
    gopher_connections: int,
    polled: dict[str, Any],
    health_code: int | str,
    stale: collections.Counter[str],
) -> int:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    command = shlex.join(["python3", "benchmarks/soak.py", *sys.argv[1:]])
    print(f"\n`{command}` ({os.cpu_count()} CPUs, load average {load})\n")
    rss = [rss for _, rss, _ in samples]
    fds = [fds for _, _, fds in samples]
    latencies = polled["latencies"]
    failed = sum(counts[1] for counts in viewers.values())
    probes = sum(tally.outcomes["key probe (no cookie)"].values())
    print("| measure | value | goal |\n|---|---|---|")
    for name, (ok, bad) in viewers.items():
        print(f"| normal viewers, {name}: ok / failed | {ok} / {bad} | 0 failed |")
    print(f"| proxy RSS MB, start / peak / end | {rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f} "
          "| bounded |")  # fmt: skip
    print(f"| proxy open fds, start / peak / end | {fds[0]} / {max(fds)} / {fds[-1]} | bounded |")
    print(
        f"| /health p50 / p99 / max ms ({len(latencies)} polls, {polled['failed']} failed) "
        f"| {percentile(latencies, 0.5):.1f} / {percentile(latencies, 0.99):.1f} / "
        f"{max(latencies or [float('nan')]):.1f} | p99 < 100 |"
    )
    print(
        f"| stale keep-alive origin: requests / connections / closed idle after 50 ms | "
        f"{stale['requests']} / {stale['connections']} / {stale['closed idle']} | |"
    )
    print(f"| key probes that got the key bytes | {leaks} of {probes} | 0 |")
    print(f"| connections to the gopher:// port | {gopher_connections} | 0 |")
    print(f"| /health after the soak | {health_code} | 200 |")
    print("\n| adversary | requests | outcomes | slowest answer s |\n|---|---|---|---|")
    for name in sorted(tally.outcomes):
        outcomes = tally.outcomes[name]
        shown = ", ".join(f"{status}: {count}" for status, count in outcomes.most_common())
        print(f"| {name} | {sum(outcomes.values())} | {shown} | {tally.slowest_s[name]:.1f} |")
    print("\n| time s | proxy RSS MB | open fds |\n|---|---|---|")
    for elapsed, rss_mb, fd_count in samples[::10] + samples[-1:]:
        print(f"| {elapsed:.0f} | {rss_mb:.1f} | {fd_count} |")
    hard_ok = failed == 0 and leaks == 0 and gopher_connections == 0 and health_code == 200
    return 0 if hard_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=100, help="seconds of load (max 3600)")
    parser.add_argument("--viewers-per-second", type=int, default=10)
    parser.add_argument("--flood-per-second", type=int, default=50)
    parser.add_argument(
        "--without", action="append", default=[], help=f"adversaries to leave out: {GROUPS}"
    )
    args = parser.parse_args()
    result: list[int] = []
    seconds = max(5.0, min(args.seconds, 3600.0))
    viewers = max(1, min(args.viewers_per_second, 200))
    flood = max(0, min(args.flood_per_second, 1000))
    without = {name.strip() for each in args.without for name in each.split(",")}
    unknown = without - set(GROUPS)
    if unknown:
        parser.error(f"unknown --without {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    d = Deferred.fromCoroutine(soak(seconds, viewers, flood, without))
    d.addBoth(lambda outcome: (result.append(outcome if isinstance(outcome, int) else 2),
                               outcome if isinstance(outcome, int) else print(outcome),
                               reactor.stop()))  # fmt: skip
    reactor.run()
    return result[0] if result else 2


if __name__ == "__main__":
    sys.exit(main())
