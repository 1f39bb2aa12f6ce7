"""Builds the running service from a Config: listener, streams, and their expiry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web.server import Request, Site

from .config import Config
from .guard import Guard
from .resources import build_root
from .serving import Proxy
from .signing import Signer, StreamSpec
from .streams import StreamRegistry
from .upstream import Upstream

__all__ = ["ProxyService", "build", "build_site"]

log = Logger()


def _redacted_log_line(timestamp: str, request: Request) -> str:
    """Access log without query strings or signed tokens: they are credentials."""
    path = request.path.decode("latin-1", "replace").split("/")
    shown = "/".join(path[:2]) + ("/..." if len(path) > 2 else "")
    return '{ip} - [{time}] "{method} {path}" {code} {length}'.format(
        ip=request.getClientAddress().host if hasattr(request.getClientAddress(), "host") else "-",
        time=timestamp,
        method=request.method.decode("latin-1", "replace"),
        path=shown,
        code=request.code,
        length=request.sentLength or "-",
    )


def build_site(config: Config, reactor: Any) -> tuple[Site, StreamRegistry]:
    """The HTTP site and the stream registry it serves from."""
    guard = Guard(reactor, config.allow_private, config.upstream_timeout_s)

    def make_upstream(spec: StreamSpec) -> Upstream:
        return Upstream(
            reactor,
            guard,
            spec.headers,
            pool_size=config.pool_size,
            timeout_s=config.upstream_timeout_s,
            max_redirects=config.max_redirects,
            user_agent=config.user_agent,
            derived=frozenset(filter(None, spec.option("derived").split(","))),
        )

    registry = StreamRegistry(reactor, make_upstream, config.stream_idle_timeout_s)
    signer = Signer(config.secret)
    proxy = Proxy(config, reactor, registry, signer)
    site = Site(
        build_root(proxy, signer, registry, reactor),
        reactor=reactor,
        logFormatter=_redacted_log_line,
    )
    site.displayTracebacks = False
    return site, registry


class ProxyService(MultiService):
    """The listener plus stream expiry; stopping closes every stream's pool."""

    def __init__(
        self, config: Config, reactor: Any, listen: Callable[[Site], IService] | None = None
    ) -> None:
        super().__init__()
        self._config = config
        self._reactor = reactor
        self._listen = listen  # workers.py: serve on an inherited socket instead of the port
        self.registry: StreamRegistry | None = None

    def startService(self) -> None:
        if self._config.secret_is_random:
            log.warn(
                "no --secret given: using a random one; proxied URLs will not survive a "
                "restart or work on another instance"
            )
        site, self.registry = build_site(self._config, self._reactor)
        if self._listen is not None:
            self._listen(site).setServiceParent(self)
        else:
            strports.service(self._config.port, site, reactor=self._reactor).setServiceParent(self)
        expiry = TimerService(
            max(1.0, min(30.0, self._config.stream_idle_timeout_s / 4)), self.registry.expire
        )
        expiry.clock = self._reactor
        expiry.setServiceParent(self)
        super().startService()

    def stopService(self) -> Deferred[None]:
        d = maybeDeferred(super().stopService)
        if self.registry is not None:
            registry = self.registry
            d.addCallback(lambda _: registry.close_all())
        d.addCallback(lambda _: None)
        return d


def build(config: Config, reactor: Any) -> IService:
    if config.workers > 1:
        from .workers import WorkersService

        return WorkersService(config, reactor)
    return ProxyService(config, reactor)
