"""Builds the running service from a Config: listener, streams, and their expiry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.server import Site

from .config import Config
from .gather import share_metrics
from .guard import Guard, UnverifiedTLS, UpstreamRefused
from .metrics import Metrics, upstream_outcome
from .observe import ObservedSite
from .resources import build_root
from .serving import Proxy
from .signing import Signer, StreamSpec
from .streams import StreamRegistry
from .upstream import Upstream

__all__ = ["ProxyService", "build_site"]

log = Logger()


def build_site(config: Config, reactor: Any) -> tuple[ObservedSite, StreamRegistry]:
    """The HTTP site and the stream registry it serves from."""
    tls_policy = UnverifiedTLS() if config.insecure_upstream else None
    guard = Guard(
        reactor,
        config.allow_private,
        config.connect_timeout_s,
        tls_policy,
        allow_hosts=config.allow_hosts,
        deny_hosts=config.deny_hosts,
    )
    metrics = Metrics()

    def count_upstream(status: int | None, error: Exception | None) -> None:
        outcome = upstream_outcome(status, error)
        metrics.upstream_requests.labels(outcome).inc()
        if isinstance(error, UpstreamRefused):
            metrics.ssrf_refusals.inc()

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
            on_outcome=count_upstream,
            max_concurrent=config.max_upstream_per_stream,
        )

    registry = StreamRegistry(reactor, make_upstream, config.stream_idle_timeout_s)
    signer = Signer(config.secret, config.old_secrets, config.url_ttl_s, reactor)
    proxy = Proxy(config, reactor, registry, signer)
    site = ObservedSite(
        build_root(proxy, signer, registry, reactor, metrics),
        reactor,
        metrics,
        max_clients=config.max_clients,
        header_timeout_s=config.client_header_timeout_s,
        idle_timeout_s=config.client_idle_timeout_s,
        forwarding=proxy.forwarding,
    )
    metrics.watch(
        lambda: {
            "cache_hits": proxy.fanout.cache.hits,
            "cache_misses": proxy.fanout.cache.misses,
            "cache_evictions": proxy.fanout.cache.evictions,
            "cache_bytes": proxy.fanout.cache.used_bytes,
            "coalesced_requests": proxy.fanout.coalesced,
            "upstream_fetches": proxy.fanout.upstream_fetches,
            "upstream_received_bytes": proxy.fanout.upstream_bytes,
            "detached_viewers": proxy.fanout.detached_viewers,
            "active_streams": len(registry),
            "client_connections": site.open_connections,
        }
    )
    return site, registry


class ProxyService(MultiService):
    """The listener plus stream expiry; stopping closes every stream's pool."""

    def __init__(
        self,
        config: Config,
        reactor: Any,
        listen: Callable[[Site], IService] | None = None,
        metrics_dir: str | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._reactor = reactor
        self._listen = listen  # workers.py: serve on an inherited socket instead of the port
        self._metrics_dir = metrics_dir  # workers.py: /metrics sums every worker (gather.py)
        self.registry: StreamRegistry | None = None
        self.site: ObservedSite | None = None

    def startService(self) -> None:
        if self._config.secret_is_random:
            log.warn(
                "no --secret given: using a random one; proxied URLs will not survive a "
                "restart or work on another instance"
            )
        if self._config.insecure_upstream:
            log.critical(
                "--insecure-upstream: upstream TLS certificates are NOT verified; anyone on "
                "the path to an upstream can impersonate it"
            )
        site, self.registry = build_site(self._config, self._reactor)
        self.site = site
        if self._listen is not None:
            self._listen(site).setServiceParent(self)
        else:
            strports.service(self._config.port, site, reactor=self._reactor).setServiceParent(self)
        if self._metrics_dir is not None:
            share_metrics(self._reactor, site, self._metrics_dir).setServiceParent(self)
        expiry = TimerService(
            max(1.0, min(30.0, self._config.stream_idle_timeout_s / 4)), self.registry.expire
        )
        expiry.clock = self._reactor
        expiry.setServiceParent(self)
        super().startService()

    def stopService(self) -> Deferred[None]:
        """Drain: stop accepting, answer /health with 503, let in-flight responses finish
        (up to --shutdown-timeout), then close every stream's pool."""
        return Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        if self.site is not None:
            self.site.draining = True
        await maybeDeferred(super().stopService)  # the listener stops accepting
        deadline = self._reactor.seconds() + self._config.shutdown_timeout_s
        while (
            self.site is not None
            and self.site.requests_in_flight > 0
            and self._reactor.seconds() < deadline
        ):
            await deferLater(self._reactor, 0.05, lambda: None)
        if self.site is not None and self.site.requests_in_flight:
            log.warn(
                "shutdown: {count} responses still running after {seconds} s; closing",
                count=self.site.requests_in_flight,
                seconds=self._config.shutdown_timeout_s,
            )
        if self.registry is not None:
            await self.registry.close_all()
