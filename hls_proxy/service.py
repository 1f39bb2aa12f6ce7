"""Builds the running service from a Config: listener, streams, and their expiry."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent
from twisted.web.server import Site

from .config import Config
from .forwarded import Forwarding
from .gather import share_metrics
from .guard import Guard, UnverifiedTLS, UpstreamRefused
from .metrics import Metrics, upstream_outcome
from .observe import ObservedSite
from .pools import IdleConnections, StreamPool, upstream_bounds
from .resources import build_root
from .serving import Dispatcher
from .signing import Signer, StreamSpec
from .streams import StreamRegistry
from .upstream import Upstream, new_instance_id

__all__ = ["Parts", "ProxyService", "build_site"]

log = Logger()

_SWITCH_INTERVAL_S = 0.0005


@attrs.frozen
class Parts:
    """What `build_site` wires together, as handles for the service and for tests."""

    site: ObservedSite
    registry: StreamRegistry
    dispatcher: Dispatcher
    metrics: Metrics
    instance_id: str


def build_site(config: Config, reactor: Any) -> Parts:
    """The HTTP site and everything it serves from."""
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

    bounds = upstream_bounds(config.max_idle_upstream, config.max_streams)
    idle_upstream = IdleConnections(bounds.max_idle)  # one bound across every stream's pool
    instance_id = new_instance_id()  # in Via, so a request looping back is recognised

    def make_upstream(spec: StreamSpec) -> Upstream:
        pool = StreamPool(reactor, idle_upstream, config.pool_size)
        return Upstream(
            reactor,
            Agent.usingEndpointFactory(reactor, guard, pool=pool),
            spec.headers,
            timeout_s=config.upstream_timeout_s,
            max_redirects=config.max_redirects,
            user_agent=config.user_agent,
            instance_id=instance_id,
            derived=frozenset(filter(None, spec.option("derived").split(","))),
            on_outcome=count_upstream,
            max_concurrent=config.max_upstream_per_stream,
            pool=pool,
        )

    registry = StreamRegistry(
        reactor, make_upstream, config.stream_idle_timeout_s, max_streams=bounds.max_streams
    )
    signer = Signer(
        config.secret, config.old_secrets, config.url_ttl_s, reactor, config.api_key or None
    )
    dispatcher = Dispatcher(config, reactor, registry, signer)
    forwarding = Forwarding(config.trusted_proxies, config.public_url)
    root = build_root(
        config, dispatcher, signer, registry, reactor, forwarding, instance_id, metrics
    )
    site = ObservedSite(
        root,
        reactor,
        metrics,
        max_clients=config.max_clients,
        header_timeout_s=config.client_header_timeout_s,
        idle_timeout_s=config.client_idle_timeout_s,
        forwarding=forwarding,
    )
    fanout = dispatcher.fanout
    metrics.watch(
        lambda: {
            **{f"cache_{name}": value for name, value in fanout.cache.stats().items()},
            **fanout.stats(),
            **dispatcher.channels.stats(),
            "active_streams": len(registry),
            "client_connections": site.open_connections,
        }
    )
    return Parts(site, registry, dispatcher, metrics, instance_id)


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
        # Big playlists are rewritten in worker threads (cpu.py). With CPython's default
        # 5 ms switch interval, every reactor wake-up could wait that long for the GIL
        # while one runs (the convoy effect); 0.5 ms keeps /health and viewers prompt.
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        if self._config.secret_is_random:
            log.warn(
                "no --secret given: using a random one; proxied URLs will not survive a "
                "restart or work on another instance"
            )
        config = self._config
        if config.allow_private and "*" in config.cors_origins and not config.api_key:
            log.warn(
                "--allow-private with any CORS origin and no --api-key: any web page a user "
                "on this network opens can read internal addresses through this proxy; set "
                "--cors-origin or --api-key"
            )
        if self._config.insecure_upstream:
            log.critical(
                "--insecure-upstream: upstream TLS certificates are NOT verified; anyone on "
                "the path to an upstream can impersonate it"
            )
        parts = build_site(self._config, self._reactor)
        self.registry, self.site = parts.registry, parts.site
        site = parts.site
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
