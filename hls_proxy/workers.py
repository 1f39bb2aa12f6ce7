"""`--workers N`: one listening socket shared by N processes, each with its own reactor.

The parent (the twistd process) creates and binds the socket, serves on it itself, and
spawns N-1 children (`python -m hls_proxy.workers`) that inherit it as fd 3 and adopt it
with `reactor.adoptStreamPort`. The kernel hands each new connection to one of them.
SIGTERM to the parent stops its service, which sends SIGTERM to every child and waits
for them to exit (SIGKILL after `STOP_GRACE_S`). A child that dies unasked is restarted;
a child whose parent is gone stops by itself.

Each worker has its own caches, streams and pools: memory is N times one worker's, and
a segment can be fetched once per worker rather than once overall.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from .config import Config

__all__ = ["AdoptedPort", "WorkersService", "config_from_json", "config_to_json", "tcp_address"]

log = Logger()

CHILD_FD = 3
STOP_GRACE_S = 10.0
RESTART_DELAY_S = 1.0
_CONFIG_ENV = "HLSPROXY_WORKER_CONFIG"


def tcp_address(port: str) -> tuple[str, int, int]:
    """(interface, port, backlog) of a `tcp:` endpoint string; other kinds are refused."""
    kind, _, rest = port.partition(":")
    if kind not in ("tcp", "tcp6"):
        raise ValueError(f"--workers above 1 needs a tcp: port, not {kind}:")
    positional: list[str] = []
    options: dict[str, str] = {}
    for part in rest.split(":"):
        name, equals, value = part.partition("=")
        if equals:
            options[name] = value
        else:
            positional.append(part)
    number = int(options.get("port", positional[0] if positional else "0"))
    interface = options.get("interface", "::" if kind == "tcp6" else "")
    return interface, number, int(options.get("backlog", "511"))


def config_to_json(config: Config) -> str:
    values = attrs.asdict(config)
    values["secret"] = base64.b64encode(config.secret).decode("ascii")
    return json.dumps(values)


def config_from_json(text: str) -> Config:
    values: dict[str, Any] = json.loads(text)
    values["secret"] = base64.b64decode(values["secret"])
    return Config(**values)


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


def adopting(reactor: Any, fd: int, family: socket.AddressFamily) -> Callable[[Site], IService]:
    return lambda site: AdoptedPort(reactor, fd, family, site)


class _Child(ProcessProtocol):
    def __init__(self, owner: WorkersService) -> None:
        self._owner = owner
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self._owner.child_ended(self, reason)


class WorkersService(Service):
    """Binds the port, serves on it in this process, and runs `workers - 1` children."""

    def __init__(self, config: Config, reactor: Any) -> None:
        self._config = config
        self._reactor = reactor
        self._socket: socket.socket | None = None
        self._inner: IService | None = None
        self._children: dict[_Child, Any] = {}
        self._stopping = False

    def startService(self) -> None:
        from .service import ProxyService

        super().startService()
        interface, number, backlog = tcp_address(self._config.port)
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, number))
        sock.listen(backlog)
        sock.setblocking(False)
        self._socket = sock
        self._inner = ProxyService(
            self._config, self._reactor, listen=adopting(self._reactor, sock.fileno(), family)
        )
        self._inner.startService()
        log.info(
            "{workers} workers on port {port}",
            workers=self._config.workers,
            port=sock.getsockname()[1],
        )
        for _ in range(self._config.workers - 1):
            self._spawn()

    def _spawn(self) -> None:
        if self._stopping or self._socket is None:
            return
        child = _Child(self)
        env = dict(os.environ)
        env[_CONFIG_ENV] = config_to_json(self._config)
        env["HLSPROXY_WORKER_FAMILY"] = str(int(self._socket.family))
        process = self._reactor.spawnProcess(
            child,
            sys.executable,
            [sys.executable, "-m", "hls_proxy.workers"],
            env=env,
            childFDs={0: "w", 1: 1, 2: 2, CHILD_FD: self._socket.fileno()},
        )
        self._children[child] = process

    def child_ended(self, child: _Child, reason: Failure) -> None:
        self._children.pop(child, None)
        if not self._stopping:
            log.warn("worker exited ({reason}); restarting it", reason=reason.getErrorMessage())
            self._reactor.callLater(RESTART_DELAY_S, self._spawn)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        waits: list[Deferred[Any]] = []
        for child, process in list(self._children.items()):
            waits.append(child.ended)
            _signal(process, "TERM")
            self._reactor.callLater(STOP_GRACE_S, _signal, process, "KILL")
        if self._inner is not None:
            waits.append(Deferred.fromCoroutine(_wait(self._inner.stopService())))
        done = DeferredList(waits)

        def close(_: object) -> None:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

        return done.addCallback(close)


async def _wait(result: Any) -> None:
    if isinstance(result, Deferred):
        await result


def _signal(process: Any, name: str) -> None:
    try:
        process.signalProcess(name)
    except Exception:  # it has already exited (ProcessExitedAlready)
        pass


def _child_main() -> None:
    """A worker process: adopt fd 3, serve until SIGTERM or until the parent is gone."""
    from twisted.internet import reactor as _reactor
    from twisted.internet.task import LoopingCall
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from .service import ProxyService

    reactor: Any = _reactor
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    config = config_from_json(os.environ[_CONFIG_ENV])
    family = socket.AddressFamily(int(os.environ.get("HLSPROXY_WORKER_FAMILY", socket.AF_INET)))
    service = ProxyService(config, reactor, listen=adopting(reactor, CHILD_FD, family))
    parent = os.getppid()

    def parent_alive() -> None:
        if os.getppid() != parent:
            log.warn("parent process gone; stopping worker")
            reactor.stop()

    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    LoopingCall(parent_alive).start(1.0, now=False)
    reactor.run()


if __name__ == "__main__":
    _child_main()
