"""`twistd -n hlsproxy --workers 2`: both processes answer on one port; SIGTERM ends both."""

from __future__ import annotations

import json
import os
import socket
import sys

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from ..tools import require_tool
from .harness import client, later, reactor
from .test_backpressure import run


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" in status.read()
    except FileNotFoundError:
        return True


class WorkersTests(TestCase):
    def test_two_workers_both_serve_and_sigterm_stops_both(self) -> Deferred[None]:
        async def go() -> None:
            twistd = require_tool("twistd")
            port = _free_port()
            protocol = _Twistd()
            env = dict(os.environ, HLSPROXY_SECRET="workers-test")
            process = reactor.spawnProcess(
                protocol,
                sys.executable,
                [sys.executable, twistd, "-n", "--pidfile=", "hlsproxy",
                 "--port", f"tcp:{port}:interface=127.0.0.1", "--workers", "2"],
                env=env,
            )  # fmt: skip
            stopped = False

            def stop() -> None:
                if not stopped:
                    process.signalProcess("KILL")

            self.addCleanup(lambda: protocol.ended if not stopped else None)
            self.addCleanup(stop)
            http = client(self)
            pids: set[int] = set()
            for _ in range(300):  # bounded: ~15 s at most
                try:
                    answer = await http.get(
                        f"http://127.0.0.1:{port}/health", headers={b"Connection": [b"close"]}
                    )
                    pids.add(json.loads(await answer.content())["pid"])
                except Exception:
                    await later(0.05)
                    continue
                if len(pids) == 2:
                    break
            self.assertEqual(len(pids), 2, protocol.output.decode(errors="replace")[-2000:])
            self.assertIn(process.pid, pids)
            process.signalProcess("TERM")
            await protocol.ended
            stopped = True
            assert protocol.reason is not None
            self.assertTrue(protocol.reason.check(ProcessDone, ProcessTerminated))
            self.assertIn(b"Server Shut Down", protocol.output)
            for _ in range(40):
                if all(_gone(pid) for pid in pids):
                    break
                await later(0.05)
            self.assertTrue(all(_gone(pid) for pid in pids), "a worker outlived SIGTERM")

        return run(go())
