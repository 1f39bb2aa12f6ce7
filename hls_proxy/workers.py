"""`--workers N`: one listening socket shared by N processes, each with its own reactor.

The parent (the twistd process) listens through Twisted's own endpoint parser
(`serverFromString(reactor, --port).listen(site)`), serves on that port itself, and spawns
N-1 children (`_child_main`) that inherit the port's socket as fd 3 and adopt it with
`reactor.adoptStreamPort`. The kernel hands each new connection to one of them.

`WorkersService` is a MultiService: the parent's `ProxyService` and `_Children`. Stopping
it (SIGTERM to twistd) drains the parent and sends SIGTERM to every child, then SIGKILL to
those still alive after their own drain time. A child that dies unasked is restarted; a
child whose parent is gone stops by itself. Children log like the parent (--log-format).

Each worker has its own caches, streams and pools: memory is N times one worker's, and a
segment can be fetched once per worker rather than once overall. /metrics, though, is
summed over all of them (gather.py, through a private directory of unix sockets).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from typing import Any, cast

import attrs
from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProcessTransport, IStreamServerEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from .config import Config
from .service import ProxyService

__all__ = ["AdoptedPort", "WorkersService", "config_from_json", "config_to_json"]

log = Logger()

CHILD_FD = 3
RESTART_DELAY_S = 1.0
KILL_MARGIN_S = 5.0  # beyond --shutdown-timeout, before a child that ignores SIGTERM is killed
_SETTINGS_ENV = "HLSPROXY_WORKER"
# `-c`, not `-m`: the child imports hls_proxy from the parent's copy (argv[1]), even when
# the parent runs from a source tree that is not on the default path.
_BOOT = (
    "import sys\n"
    "if sys.argv[1] not in sys.path: sys.path.insert(0, sys.argv[1])\n"
    "from hls_proxy.workers import _child_main\n"
    "_child_main()\n"
)


def config_to_json(config: Config) -> str:
    values = attrs.asdict(config)
    values["secret"] = base64.b64encode(config.secret).decode("ascii")
    values["old_secrets"] = [base64.b64encode(old).decode("ascii") for old in config.old_secrets]
    return json.dumps(values)


def config_from_json(text: str) -> Config:
    values: dict[str, Any] = json.loads(text)
    values["secret"] = base64.b64decode(values["secret"])
    values["old_secrets"] = tuple(base64.b64decode(old) for old in values["old_secrets"])
    for name, value in values.items():
        if isinstance(value, list):  # JSON has no tuples; Config's sequences are tuples
            values[name] = tuple(value)
    return Config(**values)


@attrs.frozen
class _Settings:
    """What a child needs beyond the Config: how to log and where workers meet for /metrics."""

    config: Config
    log_format: str
    metrics_dir: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "config": config_to_json(self.config),
                "log_format": self.log_format,
                "metrics_dir": self.metrics_dir,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Settings:
        values = json.loads(text)
        return cls(
            config_from_json(values["config"]),
            values["log_format"],
            values["metrics_dir"],
        )


class AdoptedPort(Service):
    """Serves a site on an already listening socket (by file descriptor)."""

    def __init__(self, reactor: Any, fd: int, family: socket.AddressFamily, site: Site) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family
        self._site = site
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self._port = self._reactor.adoptStreamPort(self._fd, self._family, self._site)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._port is None:
            return None
        port, self._port = self._port, None
        stopped: Deferred[None] | None = port.stopListening()
        return stopped


class _SharedPort(Service):
    """Listens on an endpoint at once, and keeps the port so children can inherit it."""

    def __init__(self, endpoint: IStreamServerEndpoint) -> None:
        self._endpoint = endpoint
        self._site: Site | None = None
        self.port: IListeningPort | None = None

    def serving(self, site: Site) -> IService:
        """ProxyService's `listen`: it builds the site when it starts."""
        self._site = site
        return self

    def startService(self) -> None:
        super().startService()
        outcome: list[IListeningPort | Failure] = []
        assert self._site is not None, "serving(site) first"
        self._endpoint.listen(self._site).addBoth(outcome.append)
        if not outcome:
            raise RuntimeError("--workers: the --port endpoint did not listen at once")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        self.port = outcome[0]

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self.port = self.port, None
        return None if port is None else port.stopListening()

    def fileno(self) -> int:
        assert self.port is not None, "not listening"
        # tcp.Port has one; IListeningPort does not declare it (tap.py allows only TCP).
        return int(cast(Any, self.port).fileno())


class _Child(ProcessProtocol):
    def __init__(self, owner: _Children) -> None:
        self._owner = owner
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self._owner.ended(self, reason)


class _Children(Service):
    """Runs `count` child workers on the shared port; restarts those that die unasked."""

    def __init__(
        self, reactor: Any, count: int, port: _SharedPort, settings: _Settings, grace_s: float
    ) -> None:
        self._reactor = reactor
        self._count = count
        self._port = port
        self._settings = settings
        self._grace_s = grace_s
        self._running: dict[_Child, IProcessTransport] = {}
        self._restarts: set[Any] = set()  # delayed calls
        self._kills: dict[_Child, Any] = {}  # SIGKILL if still there after the grace time

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._running.values() if process.pid is not None]

    def startService(self) -> None:
        super().startService()
        for _ in range(self._count):
            self._spawn()

    def _spawn(self) -> None:
        if not self.running:
            return
        child = _Child(self)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._running[child] = self._reactor.spawnProcess(
            child,
            sys.executable,
            [sys.executable, "-c", _BOOT, package_root],
            env={**os.environ, _SETTINGS_ENV: self._settings.to_json()},
            childFDs={0: "w", 1: 1, 2: 2, CHILD_FD: self._port.fileno()},
        )

    def ended(self, child: _Child, reason: Failure) -> None:
        self._running.pop(child, None)
        kill = self._kills.pop(child, None)
        if kill is not None and kill.active():
            kill.cancel()
        if self.running:
            log.warn("worker exited ({reason}); restarting it", reason=reason.getErrorMessage())
            restart = self._reactor.callLater(RESTART_DELAY_S, self._restart)
            self._restarts.add(restart)

    def _restart(self) -> None:
        self._restarts = {call for call in self._restarts if call.active()}
        self._spawn()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        for restart in self._restarts:
            if restart.active():
                restart.cancel()
        self._restarts.clear()
        waits: list[Deferred[None]] = []
        for child, process in list(self._running.items()):
            _signal(process, "TERM")
            self._kills[child] = self._reactor.callLater(self._grace_s, _signal, process, "KILL")
            waits.append(child.ended)
        return DeferredList(waits)


def _signal(process: IProcessTransport, name: str) -> None:
    try:
        process.signalProcess(name)
    except Exception:  # it has already exited (ProcessExitedAlready)
        pass


class WorkersService(MultiService):
    """This process serving the port, plus `workers - 1` children sharing its socket."""

    def __init__(self, config: Config, reactor: Any, log_format: str = "text") -> None:
        super().__init__()
        # Named now, made at start: a directory only this server's workers can enter.
        self.metrics_dir = os.path.join(tempfile.gettempdir(), "hlsproxy-" + secrets.token_hex(8))
        self.port = _SharedPort(serverFromString(reactor, config.port))
        self.proxy = ProxyService(
            config, reactor, listen=self.port.serving, metrics_dir=self.metrics_dir
        )
        self.proxy.setServiceParent(self)  # started first: it listens, children inherit that
        self.children = _Children(
            reactor,
            config.workers - 1,
            self.port,
            _Settings(config, log_format, self.metrics_dir),
            grace_s=config.shutdown_timeout_s + KILL_MARGIN_S,
        )
        self.children.setServiceParent(self)

    def startService(self) -> None:
        os.mkdir(self.metrics_dir, 0o700)
        super().startService()
        log.info("{workers} workers on {address}", workers=len(self.children.pids) + 1,
                 address=self.port.port.getHost() if self.port.port else None)  # fmt: skip

    def stopService(self) -> Deferred[Any]:
        def remove(result: object) -> object:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            return result

        return maybeDeferred(super().stopService).addBoth(remove)


def _watch_parent(reactor: Any) -> IService:
    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            log.warn("parent process gone; stopping worker")
            reactor.stop()

    watch = TimerService(1.0, check)
    watch.clock = reactor
    return watch


def _family(fd: int) -> socket.AddressFamily:
    """The address family of an inherited socket, asked of the socket itself (a wrong one
    makes every peer address garbage)."""
    probe = socket.socket(fileno=fd)
    try:
        return probe.family
    finally:
        probe.detach()  # the fd stays open for adoptStreamPort


def _child_main() -> None:
    """A worker process: adopt fd 3, serve until SIGTERM or until the parent is gone."""
    from twisted.internet import reactor as _reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from .logs import json_observer

    reactor: Any = _reactor
    settings = _Settings.from_json(os.environ[_SETTINGS_ENV])
    observer = json_observer() if settings.log_format == "json" else textFileLogObserver(sys.stdout)
    globalLogBeginner.beginLoggingTo([observer])
    family = _family(CHILD_FD)
    worker = MultiService()
    ProxyService(
        settings.config,
        reactor,
        listen=lambda site: AdoptedPort(reactor, CHILD_FD, family, site),
        metrics_dir=settings.metrics_dir,
    ).setServiceParent(worker)
    _watch_parent(reactor).setServiceParent(worker)
    reactor.callWhenRunning(worker.startService)
    reactor.callWhenRunning(log.info, "worker {pid} serving", pid=os.getpid())
    reactor.addSystemEventTrigger("before", "shutdown", worker.stopService)
    reactor.run()
