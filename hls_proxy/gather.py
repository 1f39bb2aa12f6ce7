"""`/metrics` for the whole server under `--workers N`, whichever worker the kernel picks.

Every worker answers its own samples (`Metrics.snapshot()`) to anyone who connects to
`<dir>/<pid>.sock`, a unix socket in a directory private to this server (mode 0700, made
by the parent). The worker that gets a scrape connects to every other socket there, and
renders the sum of all snapshots, its own included (`metrics.render_sum`).

A worker that is gone leaves a socket nobody listens on: it is skipped and removed, so
its counters drop out of the sum (Prometheus reads that as a counter reset). A worker
that does not answer within `ASK_TIMEOUT_S` is left out of that scrape.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from .metrics import Metrics, render_sum

__all__ = ["ASK_TIMEOUT_S", "share_metrics", "whole_server"]

log = Logger()

ASK_TIMEOUT_S = 2.0
_SUFFIX = ".sock"


class _Tell(Protocol):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._metrics.snapshot())
        self.transport.loseConnection()


class _Telling(Factory):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def buildProtocol(self, addr: Any) -> Protocol:
        return _Tell(self._metrics)


class _Listen(Protocol):
    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(b"".join(self._chunks))


async def _ask(reactor: Any, path: str) -> bytes | None:
    listener = _Listen()
    try:
        await connectProtocol(UNIXClientEndpoint(reactor, path, timeout=ASK_TIMEOUT_S), listener)
    except ConnectError:
        # Its worker is gone (a crash leaves the file behind); a restarted one has a new pid.
        log.info("metrics: no worker at {path}; forgetting it", path=path)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
    try:
        return await listener.done.addTimeout(ASK_TIMEOUT_S, reactor)
    except Exception:
        log.warn("metrics: the worker at {path} did not answer in time", path=path)
        if listener.transport is not None:
            listener.transport.abortConnection()  # type: ignore[attr-defined]
        return None


async def whole_server(reactor: Any, directory: str, own: str, metrics: Metrics) -> bytes:
    """Prometheus text summing this worker's samples and every other worker's in `directory`
    (`own` is this worker's socket name there)."""
    others = sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.endswith(_SUFFIX) and name != own
    )
    answers: list[bytes | None] = await gatherResults(
        [Deferred.fromCoroutine(_ask(reactor, path)) for path in others]
    )
    return render_sum([metrics.snapshot(), *(answer for answer in answers if answer)])


class _WholeServerMetrics(Resource):
    isLeaf = True

    def __init__(self, reactor: Any, directory: str, own: str, metrics: Metrics) -> None:
        super().__init__()
        self._reactor = reactor
        self._directory = directory
        self._own = own
        self._metrics = metrics

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        text = Deferred.fromCoroutine(
            whole_server(self._reactor, self._directory, self._own, self._metrics)
        )
        request.notifyFinish().addErrback(lambda _: text.cancel())

        def answer(body: bytes) -> None:
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            if request.finished or request.channel is None:
                return  # the scraper left
            log.failure("metrics: gathering the workers' samples failed", failure)
            request.setResponseCode(500)
            request.finish()

        text.addCallbacks(answer, failed)
        return NOT_DONE_YET


class _Root(Resource):
    """The site's root with `/metrics` answered for the whole server; all else as before."""

    def __init__(self, root: IResource, metrics_page: IResource) -> None:
        super().__init__()
        self._root = root
        self._metrics_page = metrics_page

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        if path == b"metrics":
            return self._metrics_page
        child: IResource = self._root.getChildWithDefault(path, request)
        return child

    def render(self, request: Request) -> Any:
        return self._root.render(request)


def share_metrics(reactor: Any, site: Any, directory: str, name: str | None = None) -> IService:
    """Make `site` (an ObservedSite) answer /metrics for every worker in `directory`; the
    returned service tells the others this worker's samples while it runs."""
    own = (name or str(os.getpid())) + _SUFFIX
    metrics: Metrics = site.metrics
    site.resource = _Root(site.resource, _WholeServerMetrics(reactor, directory, own, metrics))
    endpoint = UNIXServerEndpoint(reactor, os.path.join(directory, own), mode=0o600)
    service = StreamServerEndpointService(endpoint, _Telling(metrics))
    service._raiseSynchronously = True  # a worker that cannot be asked should not start
    return service
