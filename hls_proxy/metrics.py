"""Prometheus metrics: one registry per running proxy (no global state).

Counters that the hot paths already keep (cache hits, fan-out fetches and bytes) are
read at scrape time by a collector, so the per-chunk path does no extra work.

Under `--workers N` each process has its own registry; `snapshot()` and `render_sum()` are
how one worker adds up every worker's samples for a scrape (gather.py moves the bytes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from twisted.web.http import RESPONSES

__all__ = ["Metrics", "endpoint_of", "render_sum", "status_label", "upstream_outcome"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ENDPOINTS = {
    "playlist.m3u8": "playlist", "playlist": "playlist", "stream": "stream", "mx": "stream",
    "p": "child", "health": "health", "metrics": "metrics", "": "page",
}  # fmt: skip


def endpoint_of(path: bytes) -> str:
    """A bounded label for a request path (never the path itself: it holds tokens)."""
    first = path.decode("latin-1", "replace").lstrip("/").split("/", 1)[0]
    return _ENDPOINTS.get(first, "other")


def status_label(status: int) -> str:
    """A bounded label for a status: the code if HTTP names it, else its class or "invalid".

    Statuses can come from upstreams; none may mint a new label value.
    """
    if not 100 <= status <= 599:
        return "invalid"
    return str(status) if status in RESPONSES else f"{status // 100}xx"


def upstream_outcome(status: int | None, error: BaseException | None) -> str:
    if error is not None:
        status = getattr(error, "status", None)
        if status == 504:
            return "timeout"
        if status == 403:
            return "refused"
        return "error"
    if status is None or not 100 <= status <= 599:
        return "invalid"
    return f"{status // 100}xx"


class _StateCollector(Collector):
    """Reads counters kept by the cache, the fan-out and the stream registry."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        state = self._read()
        for name, help_text in [
            ("cache_hits", "Segment cache hits."),
            ("cache_misses", "Segment cache misses."),
            ("cache_evictions", "Segments evicted to stay within --cache-size."),
            ("coalesced_requests", "Requests that joined an upstream fetch already running."),
            ("upstream_fetches", "Segment fetches started upstream."),
            ("upstream_received_bytes", "Segment bytes received from upstreams."),
            ("detached_viewers", "Viewers cut off for lagging too far behind a shared fetch."),
            ("live_channels_opened", "Endless TS bodies shared as live channels."),
            ("live_reconnects", "Live channel upstreams reconnected after a clean close."),
            ("live_viewers_joined", "Viewers that joined a live channel."),
            ("live_viewers_detached", "Live viewers cut off for falling out of the ring."),
            ("live_received_bytes", "Bytes received from live channel upstreams."),
        ]:
            if name in state:
                yield CounterMetricFamily(f"hlsproxy_{name}", help_text, value=state[name])
        for name, help_text in [
            ("cache_bytes", "Bytes held by the segment cache."),
            ("active_streams", "Streams with an open upstream context."),
            ("client_connections", "Open client connections."),
            ("live_channels", "Live channels with an open upstream."),
        ]:
            if name in state:
                yield GaugeMetricFamily(f"hlsproxy_{name}", help_text, value=state[name])


class Metrics:
    """The proxy's metrics and their Prometheus text rendering."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "hlsproxy_requests", "Client requests answered.", ["endpoint", "status"],
            registry=registry,
        )  # fmt: skip
        self.upstream_requests = Counter(
            "hlsproxy_upstream_requests", "Upstream requests by outcome.", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.ttfb = Histogram(
            "hlsproxy_time_to_first_byte_seconds", "Request received to first body byte sent.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "hlsproxy_request_duration_seconds", "Request received to response finished.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.sent_bytes = Counter(
            "hlsproxy_sent_bytes", "Body bytes sent to clients.", registry=registry
        )
        self.ssrf_refusals = Counter(
            "hlsproxy_ssrf_refusals", "Upstreams refused as non-public addresses.",
            registry=registry,
        )  # fmt: skip
        info = Gauge("hlsproxy_worker", "This worker process.", ["pid"], registry=registry)
        info.labels(pid=str(os.getpid())).set(1)

    def watch(self, read: Callable[[], dict[str, Any]]) -> None:
        """Expose the counters `read()` returns at every scrape."""
        self.registry.register(_StateCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> bytes:
        """Every sample of this process (watched ones read now), as JSON for `render_sum`."""
        return json.dumps(
            [
                {
                    "name": family.name,
                    "type": family.type,
                    "help": family.documentation,
                    "unit": family.unit,
                    "samples": [
                        [sample.name, sample.labels, sample.value]
                        for sample in family.samples
                        # A creation time does not add up across processes.
                        if not sample.name.endswith("_created")
                    ],
                }
                for family in self.registry.collect()
            ]
        ).encode("utf-8")


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render_sum(snapshots: Iterable[bytes]) -> bytes:
    """Prometheus text for the sum of several `Metrics.snapshot()`s.

    Samples with the same name and labels add up: counters, histogram buckets/sums/counts
    and gauges alike (open connections, cached bytes). Samples that differ by label stay
    apart, so `hlsproxy_worker{pid=...}` lists every process that answered.
    """
    families: dict[str, Metric] = {}
    totals: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for snapshot in snapshots:
        for family in json.loads(snapshot):
            name = family["name"]
            if name not in families:
                families[name] = Metric(name, family["help"], family["type"], family["unit"])
            for sample_name, labels, value in family["samples"]:
                key = (name, sample_name, tuple(sorted(labels.items())))
                totals[key] = totals.get(key, 0.0) + float(value)
    for (name, sample_name, labels), value in totals.items():
        families[name].add_sample(sample_name, dict(labels), value)
    return generate_latest(_Fixed(list(families.values())))
