"""The command line: flags, HLSPROXY_* environment variables, $PORT."""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.config import port_description
from hls_proxy.tap import Options


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Options:
    options = Options(environ=environ or {})
    options.parseOptions(argv)
    return options


class OptionsTests(SynchronousTestCase):
    def test_port_forms(self) -> None:
        self.assertEqual(port_description("8080"), "tcp:8080")
        self.assertEqual(port_description(" 9000 "), "tcp:9000")
        self.assertEqual(
            port_description("tcp:8080:interface=127.0.0.1"), "tcp:8080:interface=127.0.0.1"
        )
        self.assertEqual(parse(["--port", "9001"]).config().port, "tcp:9001")

    def test_port_falls_back_to_dollar_port_then_8080(self) -> None:
        self.assertEqual(parse([], {"PORT": "5000"}).config().port, "tcp:5000")
        self.assertEqual(parse([]).config().port, "tcp:8080")
        self.assertEqual(parse(["--port", "7000"], {"PORT": "5000"}).config().port, "tcp:7000")

    def test_bad_port_is_a_usage_error(self) -> None:
        self.assertRaises(usage.UsageError, parse, ["--port", "nonsense:1:2"])

    def test_every_option_reads_the_environment_and_the_flag_wins(self) -> None:
        environ = {
            "HLSPROXY_SECRET": "from-env",
            "HLSPROXY_ALLOW_PRIVATE": "1",
            "HLSPROXY_UPSTREAM_TIMEOUT": "7.5",
            "HLSPROXY_MAX_PLAYLIST_BYTES": "2MB",
            "HLSPROXY_POOL_SIZE": "3",
            "HLSPROXY_STREAM_IDLE_TIMEOUT": "60",
        }
        config = parse([], environ).config()
        self.assertEqual(config.secret, b"from-env")
        self.assertFalse(config.secret_is_random)
        self.assertTrue(config.allow_private)
        self.assertEqual(config.upstream_timeout_s, 7.5)
        self.assertEqual(config.max_playlist_bytes, 2 * 1024 * 1024)
        self.assertEqual(config.pool_size, 3)
        self.assertEqual(config.stream_idle_timeout_s, 60.0)
        self.assertEqual(parse(["--pool-size", "5"], environ).config().pool_size, 5)

    def test_bad_environment_value_is_a_usage_error(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, [], {"HLSPROXY_POOL_SIZE": "zero"})
        self.assertIn("HLSPROXY_POOL_SIZE", str(error))

    def test_without_a_secret_a_random_one_is_made(self) -> None:
        first, second = parse([]).config(), parse([]).config()
        self.assertTrue(first.secret_is_random)
        self.assertNotEqual(first.secret, second.secret)
        self.assertGreaterEqual(len(first.secret), 32)

    def test_workers_need_a_tcp_port(self) -> None:
        error = self.assertRaises(
            usage.UsageError, parse, ["--workers", "2", "--port", "unix:/tmp/hlsproxy.sock"]
        )
        self.assertIn("--workers 2 needs a tcp: or tcp6: --port", str(error))
        self.assertRaises(usage.UsageError, parse, [], {"HLSPROXY_WORKERS": "2", "PORT": "unix:x"})
        self.assertEqual(parse(["--workers", "2", "--port", "tcp6:0"]).config().workers, 2)
        self.assertEqual(
            parse(["--workers", "2", "--port", r"tcp:0:interface=\:\:1"]).config().port,
            r"tcp:0:interface=\:\:1",
        )
        # One process may listen on anything Twisted can.
        self.assertEqual(parse(["--port", "unix:/tmp/hlsproxy.sock"]).config().workers, 1)
