"""Status labels in metrics: a fixed set, so no upstream can mint new label values."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.metrics import status_label, upstream_outcome


class UpstreamOutcomeTests(SynchronousTestCase):
    def test_statuses_are_labelled_by_class_or_invalid(self) -> None:
        cases = [
            (200, "2xx"), (206, "2xx"), (301, "3xx"), (404, "4xx"), (599, "5xx"),
            (100, "1xx"), (99, "invalid"), (0, "invalid"), (600, "invalid"),
            (999, "invalid"), (-1, "invalid"), (12345, "invalid"),
        ]  # fmt: skip
        for status, label in cases:
            self.assertEqual(upstream_outcome(status, None), label, status)

    def test_errors_keep_their_fixed_labels(self) -> None:
        self.assertEqual(upstream_outcome(None, ProxyError(504, "slow")), "timeout")
        self.assertEqual(upstream_outcome(None, ProxyError(403, "no")), "refused")
        self.assertEqual(upstream_outcome(None, ValueError()), "error")


class ClientStatusLabelTests(SynchronousTestCase):
    def test_named_statuses_keep_their_code_others_get_a_class(self) -> None:
        cases = [(200, "200"), (404, "404"), (503, "503"), (299, "2xx"), (599, "5xx"),
                 (799, "invalid"), (42, "invalid")]  # fmt: skip
        labels = {status_label(status) for status in range(-1000, 100_000)}
        for status, label in cases:
            self.assertEqual(status_label(status), label, status)
        self.assertLess(len(labels), 80)
