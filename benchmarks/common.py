"""What the benchmark scripts share: loopback ports, the proxy under test, a locked stream."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "CHROME",
    "ROOT",
    "SECRET",
    "akamai_token",
    "free_port",
    "locked_headers",
    "start_proxy",
    "stop_process",
    "twistd_proxy",
    "wait_port",
]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the proxy drains), then SIGKILL if it is still there after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def twistd_proxy(
    port: int, log: Path, *options: str, secret: str = SECRET
) -> subprocess.Popen[bytes]:
    """`twistd -n hlsproxy` on 127.0.0.1:`port` with `options`, from this tree (not whatever
    copy is installed)."""
    return subprocess.Popen(
        [sys.executable, shutil.which("twistd") or "twistd", "-n", "--pidfile=",
         f"--logfile={log}", "hlsproxy", "--port", f"tcp:{port}:interface=127.0.0.1",
         "--allow-private", "--secret", secret, *options],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def start_proxy(log: Path, *options: str) -> tuple[int, subprocess.Popen[bytes]]:
    """`twistd_proxy` on a free port, once it listens: the port and the process."""
    port = free_port()
    process = twistd_proxy(port, log, *options)
    wait_port(port)
    return port, process


def locked_headers() -> dict[str, str]:
    """The upstream headers of a stream a CDN locks to its site: Chrome's User-Agent, the
    site's Referer and Origin, a 200-character Cloudflare and session cookie."""
    rng = random.Random(7)
    b64 = string.ascii_letters + string.digits + "-_"
    cookie = (
        f"cf_clearance={''.join(rng.choices(b64, k=60))}; "
        f"__cf_bm={''.join(rng.choices(b64, k=80))}; "
        f"session={''.join(rng.choices('0123456789abcdef', k=40))}"
    )[:200]
    return {
        "user-agent": CHROME,
        "referer": "https://www.example-sports.com/live/channel-1",
        "origin": "https://www.example-sports.com",
        "cookie": cookie,
    }


def akamai_token(directory: str) -> str:
    """An Akamai `hdnts=` token query for the files under `directory`."""
    hmac = "".join(random.Random(7).choices("0123456789abcdef", k=64))
    return f"hdnts=exp=1764675600~acl={directory}/*~hmac={hmac}"
