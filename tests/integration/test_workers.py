"""`twistd -n hlsproxy --workers 2`, real processes: both serve one port (here on ::1, given
as Twisted's escaped `interface=\\:\\:1`), one /metrics scrape counts every worker, a killed
child comes back, SIGTERM ends all, and a child whose parent is gone stops.

twistd runs the hls_proxy these tests imported (PYTHONPATH), not whatever is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

import hls_proxy

from ..tools import require_tool
from .harness import later, reactor
from .test_observability import sample

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hls_proxy.__file__)))


class _Twistd(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason  # not the Deferred's result: a Failure would errback it
        self.ended.callback(None)


def _free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def _get(url: str) -> bytes:
    """A GET on a fresh connection (treq's URL parsing refuses an IPv6 literal host)."""
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    response = await agent.request(b"GET", url.encode("ascii")).addTimeout(5, reactor)
    body: bytes = await readBody(response).addTimeout(5, reactor)
    return body


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" in status.read()
    except FileNotFoundError:
        return True


class WorkersTests(TestCase):
    def twistd(self, *args: str) -> tuple[_Twistd, object]:
        protocol = _Twistd()
        env = dict(os.environ, HLSPROXY_SECRET="workers-test", PYTHONPATH=_PACKAGE_ROOT)
        process = reactor.spawnProcess(
            protocol,
            sys.executable,
            [sys.executable, require_tool("twistd"), "-n", "--pidfile=", "hlsproxy", *args],
            env=env,
        )

        def kill() -> Deferred[None] | None:
            if protocol.reason is not None:
                return None
            process.signalProcess("KILL")
            return protocol.ended

        def remove_metrics_dir() -> None:  # left behind when the parent is killed
            for directory in set(re.findall(rb"(/\S+/hlsproxy-[0-9a-f]+)/", protocol.output)):
                shutil.rmtree(directory.decode(), ignore_errors=True)

        self.addCleanup(remove_metrics_dir)
        self.addCleanup(kill)
        return protocol, process

    async def health_pids(self, base: str, want: set[int], protocol: _Twistd) -> list[int]:
        """GET /health on fresh connections until the pids in `want` (and at least 20
        requests) answered; the pid of every answer, in order."""
        pids: list[int] = []
        for _ in range(400):  # bounded: ~20 s at most
            try:
                pids.append(json.loads(await _get(f"{base}/health"))["pid"])
            except Exception:
                await later(0.05)
                continue
            if want <= set(pids) and len(pids) >= 20:
                return pids
        self.fail(f"{want - set(pids)} never answered: " + protocol.output.decode()[-2000:])

    async def test_workers_on_ipv6_share_the_port_and_metrics_and_stop_on_sigterm(self) -> None:
        port = _free_port(socket.AF_INET6, "::1")
        base = f"http://[::1]:{port}"
        protocol, process = self.twistd(
            "--port", rf"tcp:{port}:interface=\:\:1", "--workers", "2", "--log-format", "json"
        )
        parent: int = process.pid  # type: ignore[attr-defined]
        pids = await self.health_pids(base, {parent}, protocol)
        while len(set(pids)) < 2:  # the child starts a little later than the parent
            pids += await self.health_pids(base, {parent}, protocol)
        [child] = set(pids) - {parent}

        # One scrape, answered by either worker, counts what both answered.
        text = (await _get(f"{base}/metrics")).decode()
        self.assertEqual(
            sample(text, "hlsproxy_requests_total", endpoint="health", status="200"), len(pids)
        )
        self.assertEqual(sample(text, "hlsproxy_worker", pid=str(parent)), 1)
        self.assertEqual(sample(text, "hlsproxy_worker", pid=str(child)), 1)

        # A child killed from outside is replaced, and the next scrape skips its socket.
        os.kill(child, 9)
        pids = await self.health_pids(base, {parent}, protocol)
        for _ in range(50):  # bounded: restart after 1 s, then the child starts
            if set(pids) - {parent, child}:
                break
            await later(0.1)
            pids += await self.health_pids(base, {parent}, protocol)
        [replacement] = set(pids) - {parent, child}
        text = (await _get(f"{base}/metrics")).decode()
        self.assertEqual(sample(text, "hlsproxy_worker", pid=str(replacement)), 1)
        self.assertEqual(sample(text, "hlsproxy_worker", pid=str(child)), 0)

        process.signalProcess("TERM")  # type: ignore[attr-defined]
        await protocol.ended
        assert protocol.reason is not None
        self.assertTrue(protocol.reason.check(ProcessDone, ProcessTerminated))
        for _ in range(40):
            if _gone(replacement):
                break
            await later(0.05)
        self.assertTrue(_gone(replacement), "a worker outlived SIGTERM")

        # Children log like the parent: JSON lines only, and their peers are ::1 (an IPv6
        # socket adopted as IPv4 made every peer address garbage).
        lines = protocol.output.decode().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        messages = [record["message"] for record in records]
        self.assertIn(f"worker {child} serving", messages)
        self.assertIn("Server Shut Down.", messages)
        clients = {m.rpartition("client=")[2] for m in messages if m.startswith("GET health")}
        self.assertEqual(clients, {"::1"})

    async def test_a_child_whose_parent_is_gone_stops(self) -> None:
        port = _free_port(socket.AF_INET, "127.0.0.1")
        protocol, process = self.twistd(
            "--port", f"tcp:{port}:interface=127.0.0.1", "--workers", "2"
        )
        parent: int = process.pid  # type: ignore[attr-defined]
        pids = await self.health_pids(f"http://127.0.0.1:{port}", set(), protocol)
        while len(set(pids)) < 2:
            pids += await self.health_pids(f"http://127.0.0.1:{port}", set(), protocol)
        [child] = set(pids) - {parent}
        self.assertIn(f"worker {child} serving".encode(), protocol.output)  # text logs
        process.signalProcess("KILL")  # type: ignore[attr-defined]
        await protocol.ended
        for _ in range(60):  # it looks once a second
            if _gone(child):
                break
            await later(0.05)
        self.assertTrue(_gone(child), "a worker outlived its parent")
