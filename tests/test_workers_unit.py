"""`--workers N` without processes: where the parent listens, what children get, their
restarts and their stopping (a fake reactor records spawns and signals)."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs
from twisted.internet.address import IPv6Address
from twisted.internet.error import ProcessTerminated
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from hls_proxy.config import Config
from hls_proxy.tap import Options, build
from hls_proxy.workers import (
    CHILD_FD,
    KILL_MARGIN_S,
    RESTART_DELAY_S,
    WorkersService,
    config_from_json,
    config_to_json,
)

LISTENING_FD = 42


@implementer(IListeningPort)
class _Port:
    def __init__(self, host: Any) -> None:
        self._host = host
        self.listening = True

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.listening = False

    def getHost(self) -> Any:
        return self._host

    def fileno(self) -> int:
        return LISTENING_FD


@attrs.define
class _Process:
    protocol: ProcessProtocol
    args: list[str]
    env: dict[str, str]
    child_fds: dict[int, Any]
    pid: int
    signals: list[str] = attrs.field(factory=list)

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def end(self) -> None:
        self.protocol.processEnded(Failure(ProcessTerminated(signal=9)))


class _Reactor(MemoryReactorClock):
    """Records the TCP listen (answering with a port that has a fileno) and every spawn."""

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[_Process] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        super().listenTCP(port, factory, backlog, interface)
        return _Port(IPv6Address("TCP", interface, 8080))

    def spawnProcess(
        self, protocol: ProcessProtocol, executable: Any, args: Any, env: Any = None,
        path: Any = None, uid: Any = None, gid: Any = None, usePTY: Any = False,
        childFDs: Any = None,
    ) -> _Process:  # fmt: skip
        process = _Process(
            protocol, list(args), dict(env), dict(childFDs), 1000 + len(self.processes)
        )
        protocol.makeConnection(process)  # type: ignore[arg-type]
        self.processes.append(process)
        return process


def settings_of(process: _Process) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(process.env["HLSPROXY_WORKER"])
    return settings


class WorkersServiceTests(SynchronousTestCase):
    def start(self, config: Config, log_format: str = "text") -> tuple[_Reactor, WorkersService]:
        reactor = _Reactor()
        service = WorkersService(config, reactor, log_format)
        service.startService()
        self.addCleanup(
            lambda: os.path.isdir(service.metrics_dir) and os.rmdir(service.metrics_dir)
        )
        return reactor, service

    def test_the_parent_listens_where_twisteds_parser_says_and_children_get_that_socket(
        self,
    ) -> None:
        # The escaped colons of an IPv6 interface: the old hand parser read interface "\".
        reactor, service = self.start(Config(port=r"tcp:0:interface=\:\:1", workers=3))
        [(number, _, _, interface)] = reactor.tcpServers
        self.assertEqual((number, interface), (0, "::1"))
        self.assertEqual(len(reactor.processes), 2)
        for process in reactor.processes:
            self.assertEqual(process.child_fds[CHILD_FD], LISTENING_FD)
            self.assertEqual(settings_of(process)["metrics_dir"], service.metrics_dir)
        self.assertEqual(os.stat(service.metrics_dir).st_mode & 0o777, 0o700)
        # The parent is a worker too: it tells its samples on a socket in that directory.
        [(path, *_)] = reactor.unixServers
        self.assertEqual(path, os.path.join(service.metrics_dir, f"{os.getpid()}.sock"))

    def test_children_get_the_whole_config_and_the_log_format(self) -> None:
        config = Config(
            port="tcp:0", workers=2, secret=b"s\xffcret", old_secrets=(b"old",),
            allow_hosts=("*.cdn.example",), trusted_proxies=("10.0.0.0/8",),
        )  # fmt: skip
        reactor, _ = self.start(config, log_format="json")
        [process] = reactor.processes
        settings = settings_of(process)
        self.assertEqual(settings["log_format"], "json")
        self.assertEqual(config_from_json(settings["config"]), config)

    def test_config_round_trips_through_json(self) -> None:
        # Old secrets are bytes: json.dumps used to raise on them.
        config = Config(secret=b"\x00\x01", old_secrets=(b"a", b"\xfe"), deny_hosts=("x",))
        self.assertEqual(config_from_json(config_to_json(config)), config)

    def test_a_child_that_dies_unasked_is_restarted(self) -> None:
        reactor, _ = self.start(Config(port="tcp:0", workers=2))
        [first] = reactor.processes
        first.end()
        self.assertEqual(len(reactor.processes), 1)
        reactor.advance(RESTART_DELAY_S)
        self.assertEqual(len(reactor.processes), 2)
        self.assertEqual(reactor.processes[1].child_fds[CHILD_FD], LISTENING_FD)

    def test_stop_sends_sigterm_then_sigkill_after_the_grace_time(self) -> None:
        config = Config(port="tcp:0", workers=3, shutdown_timeout_s=7.0)
        reactor, service = self.start(config)
        polite, stubborn = reactor.processes
        stopped = service.stopService()
        self.assertEqual((polite.signals, stubborn.signals), (["TERM"], ["TERM"]))
        polite.end()
        reactor.advance(7.0 + KILL_MARGIN_S - 0.1)
        self.assertEqual(stubborn.signals, ["TERM"])
        self.assertNoResult(stopped)
        reactor.advance(0.1)
        self.assertEqual(stubborn.signals, ["TERM", "KILL"])
        stubborn.end()
        self.successResultOf(stopped)
        self.assertEqual(polite.signals, ["TERM"])  # it ended: no SIGKILL for it
        reactor.advance(RESTART_DELAY_S * 2)
        self.assertEqual(len(reactor.processes), 2, "a child stopped on purpose came back")
        self.assertFalse(os.path.exists(service.metrics_dir))
        self.assertFalse(reactor.getDelayedCalls())

    def test_a_restart_due_when_stopping_does_not_happen(self) -> None:
        reactor, service = self.start(Config(port="tcp:0", workers=2))
        [child] = reactor.processes
        child.end()
        self.successResultOf(service.stopService())
        reactor.advance(RESTART_DELAY_S)
        self.assertEqual(len(reactor.processes), 1)


class BuildTests(SynchronousTestCase):
    def test_one_worker_is_a_plain_proxy_service_and_more_are_workers(self) -> None:
        reactor = _Reactor()
        self.assertNotIsInstance(build(Config(workers=1), reactor), WorkersService)
        self.assertIsInstance(build(Config(workers=2), reactor), WorkersService)

    def test_make_service_passes_the_log_format_to_the_workers(self) -> None:
        options = Options(environ={})
        options.parseOptions(["--workers", "2", "--port", "tcp:0", "--log-format", "json"])
        reactor = _Reactor()
        service = build(options.config(), reactor, options["log-format"])
        assert isinstance(service, WorkersService)
        service.startService()
        self.addCleanup(lambda: self.successResultOf(service.stopService()))
        [process] = reactor.processes
        self.addCleanup(process.end)
        self.assertEqual(settings_of(process)["log_format"], "json")
