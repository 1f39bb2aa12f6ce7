"""--log-format json: twistd gets our observer; events come out as JSON lines."""

import io
import json

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.logs import json_observer
from hls_proxy.tap import Options


class JsonLogTests(SynchronousTestCase):
    def test_events_are_json_lines_with_the_access_fields(self) -> None:
        out = io.StringIO()
        log = Logger(namespace="hlsproxy.access", observer=json_observer(out))
        log.info("{method} {endpoint} {status}", method="GET", endpoint="child", status="200",
                 stream_id="abc", player="vlc")  # fmt: skip
        [line] = out.getvalue().splitlines()
        record = json.loads(line)
        self.assertEqual(record["message"], "GET child 200")
        self.assertEqual((record["level"], record["namespace"]), ("info", "hlsproxy.access"))
        self.assertEqual((record["stream_id"], record["player"]), ("abc", "vlc"))

    def test_the_option_sets_twistds_logger(self) -> None:
        parent: dict[str, object] = {"logger": None}
        options = Options(environ={})
        options.parent = parent  # as twistd's ServerOptions does for a subcommand
        options.parseOptions(["--log-format", "json"])
        self.assertEqual(parent["logger"], "hls_proxy.logs.json_observer")
        env_options = Options(environ={"HLSPROXY_LOG_FORMAT": "json"})
        env_options.parent = {"logger": None}
        env_options.parseOptions([])
        self.assertEqual(env_options.parent["logger"], "hls_proxy.logs.json_observer")
