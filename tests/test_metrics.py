"""Adding up several workers' metrics: `Metrics.snapshot` + `render_sum`, and gather.py
asking the other workers over real unix sockets."""

from __future__ import annotations

import os
import tempfile
from types import SimpleNamespace
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from hls_proxy.gather import share_metrics, whole_server
from hls_proxy.metrics import Metrics, render_sum

from .integration.test_observability import sample

reactor: Any = _reactor


def worker(health: int, connections: int, durations: list[float]) -> Metrics:
    metrics = Metrics()
    metrics.requests.labels("health", "200").inc(health)
    for seconds in durations:
        metrics.duration.labels("health").observe(seconds)
    metrics.watch(lambda: {"client_connections": connections, "cache_hits": 2 * health})
    return metrics


class RenderSumTests(SynchronousTestCase):
    def test_counters_histograms_and_watched_gauges_add_up(self) -> None:
        first, second = worker(3, 1, [0.002]), worker(4, 5, [0.002, 20.0])
        text = render_sum([first.snapshot(), second.snapshot()]).decode()
        self.assertEqual(
            sample(text, "hlsproxy_requests_total", endpoint="health", status="200"), 7
        )
        self.assertEqual(sample(text, "hlsproxy_client_connections"), 6)
        self.assertEqual(sample(text, "hlsproxy_cache_hits_total"), 14)
        duration = "hlsproxy_request_duration_seconds"
        self.assertEqual(sample(text, duration + "_count", endpoint="health"), 3)
        self.assertAlmostEqual(sample(text, duration + "_sum", endpoint="health"), 20.004)
        self.assertEqual(sample(text, duration + "_bucket", endpoint="health", le="0.0025"), 2)
        self.assertEqual(sample(text, duration + "_bucket", endpoint="health", le="+Inf"), 3)
        self.assertNotIn("_created", text)  # creation times do not add up

    def test_samples_with_other_labels_stay_apart(self) -> None:
        metrics = Metrics()
        pid = str(os.getpid())
        other = metrics.snapshot().replace(f'"{pid}"'.encode(), b'"other"')
        text = render_sum([metrics.snapshot(), other]).decode()
        self.assertEqual(sample(text, "hlsproxy_worker", pid=pid), 1)
        self.assertEqual(sample(text, "hlsproxy_worker", pid="other"), 1)
        self.assertEqual(text.count("# TYPE hlsproxy_worker gauge"), 1)

    def test_one_snapshot_renders_like_the_registry(self) -> None:
        metrics = worker(2, 3, [0.1])
        summed = render_sum([metrics.snapshot()]).decode().splitlines()
        direct = [line for line in metrics.render().decode().splitlines() if "_created" not in line]
        self.assertEqual(summed, direct)


class GatherTests(TestCase):
    """Real unix sockets in a private directory, as under --workers."""

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="hlsproxy-test-")
        self.addCleanup(os.rmdir, self.directory)

    def share(self, name: str, metrics: Metrics) -> Any:
        site = SimpleNamespace(metrics=metrics, resource=Resource())
        service = share_metrics(reactor, site, self.directory, name=name)
        service.startService()
        self.addCleanup(service.stopService)
        return site

    async def test_a_scrape_sums_every_worker_and_skips_a_gone_one(self) -> None:
        here, there = worker(5, 1, []), worker(6, 2, [])
        self.share("1", here)
        self.share("2", there)
        stale = os.path.join(self.directory, "3.sock")  # a crashed worker's leftover
        with open(stale, "w"):
            pass
        text = (await whole_server(reactor, self.directory, "1.sock", here)).decode()
        self.assertEqual(
            sample(text, "hlsproxy_requests_total", endpoint="health", status="200"), 11
        )
        self.assertEqual(sample(text, "hlsproxy_client_connections"), 3)
        self.assertFalse(os.path.exists(stale))

    async def test_the_site_answers_metrics_from_the_sum_and_all_else_as_before(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        here, there = worker(1, 0, []), worker(2, 0, [])
        site = self.share("1", here)
        self.share("2", there)
        request = DummyRequest([b"metrics"])
        page = site.resource.getChildWithDefault(b"metrics", request)
        page.render(request)
        finished: Deferred[None] = request.notifyFinish()
        await finished
        text = b"".join(request.written).decode()
        self.assertEqual(
            sample(text, "hlsproxy_requests_total", endpoint="health", status="200"), 3
        )
        self.assertIsInstance(site.resource.getChildWithDefault(b"other", request), Resource)
