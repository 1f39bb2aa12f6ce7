"""Backpressure and departures, with no sockets: the whole proxy over StringTransports.

The client is a StringTransport on the proxy's HTTPChannel; the upstream is the
connection the proxy asked the MemoryReactor for, fed raw HTTP bytes.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.config import Config
from hls_proxy.playlist import UriKind
from hls_proxy.service import build_site
from hls_proxy.signing import Signer
from hls_proxy.streams import stream_spec

SECRET = b"relay-test"
SEGMENT_URL = "http://origin.example/v/seg-1.ts"


class Harness:
    """A proxy on a memory reactor, one client connection, one upstream connection."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.reactor = MemoryReactorClock()
        # No segment cache: a body that may be cached is read at full speed (fanout.py);
        # these tests are about the streamed regime, where one viewer paces the upstream.
        config = Config(
            secret=SECRET,
            allow_private=True,
            upstream_timeout_s=10,
            body_idle_timeout_s=10,
            cache_size_bytes=0,
        )
        parts = build_site(config, self.reactor)
        self.site, self.registry = parts.site, parts.registry
        self.client = StringTransport()
        self.channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        assert self.channel is not None
        self.channel.makeConnection(self.client)
        self.upstream = StringTransport()
        case.addCleanup(self.registry.close_all)

    def get(self, path: str) -> None:
        self.channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n".encode())

    def answer_upstream(self, head: bytes) -> None:
        """Connect the upstream the proxy dialled and send it `head` (status, headers, body)."""
        host, port, factory, *_ = self.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        protocol.makeConnection(self.upstream)
        self.upstream_protocol = protocol
        protocol.dataReceived(head)


def segment_path() -> str:
    signer = Signer(SECRET)
    spec = stream_spec("http://origin.example/v/index.m3u8", {})
    return signer.child_path(signer.stream_part(spec), SEGMENT_URL, UriKind.MEDIA)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 1000000\r\n\r\n"


class RelayTests(SynchronousTestCase):
    def test_client_bytes_arrive_as_upstream_sends_them(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD + b"\x47" * 1000)
        self.assertIn(b"GET /v/seg-1.ts HTTP/1.1", proxy.upstream.value())
        proxy.upstream_protocol.dataReceived(b"\x47" * 5000)
        sent = proxy.client.value()
        self.assertIn(b"HTTP/1.1 200 OK", sent)
        self.assertIn(b"Content-Length: 1000000", sent)
        self.assertTrue(sent.endswith(b"\x47" * 6000))

    def test_full_client_pauses_the_upstream_and_resumes_it(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD + b"\x47" * 1000)
        self.assertEqual(proxy.upstream.producerState, "producing")
        proxy.client.producer.pauseProducing()
        self.assertEqual(proxy.upstream.producerState, "paused")
        proxy.client.producer.resumeProducing()
        self.assertEqual(proxy.upstream.producerState, "producing")

    def test_departing_client_closes_the_upstream_at_once(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD + b"\x47" * 1000)
        proxy.client.producer.stopProducing()
        proxy.channel.connectionLost(Exception("client left"))
        self.assertTrue(
            proxy.upstream.disconnecting or proxy.upstream.producerState == "stopped",
            "upstream still open",
        )

    def test_client_leaving_before_headers_cancels_the_upstream_request(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        host, port, factory, *_ = proxy.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        protocol.makeConnection(proxy.upstream)
        proxy.channel.connectionLost(Exception("client left"))
        self.assertTrue(proxy.upstream.disconnecting)

    def test_upstream_silence_aborts_the_client_after_the_timeout(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD + b"\x47" * 1000)
        proxy.reactor.advance(9)
        self.assertFalse(proxy.client.disconnecting)
        proxy.reactor.advance(2)
        self.assertTrue(proxy.upstream.disconnecting or proxy.upstream.producerState == "stopped")
        self.assertTrue(proxy.client.disconnecting or proxy.client.disconnected)


class PlaylistStartTests(SynchronousTestCase):
    def test_the_decision_is_made_as_soon_as_the_bytes_allow(self) -> None:
        from hls_proxy.bodies import could_still_be_playlist_start as undecided

        for head, expected in [
            (b"", True), (b"\xef", True), (b"\xef\xbb\xbf", True), (b"  \n", True),
            (b"#EXT", True), (b"\xef\xbb\xbf#EXTM3", True), (b"#EXTM3U", False),
            (b"G", False), (b"\x47\x40", False), (b"#EXTINF", False), (b"<html", False),
        ]:  # fmt: skip
            self.assertEqual(undecided(head), expected, head)

    def test_a_one_byte_first_chunk_of_media_is_relayed_at_once(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD + b"\x47")
        self.assertIn(b"HTTP/1.1 200 OK", proxy.client.value())
        self.assertTrue(proxy.client.value().endswith(b"\r\n\r\n\x47"))

    def test_an_upstream_silent_before_its_first_byte_is_504(self) -> None:
        proxy = Harness(self)
        proxy.get(segment_path())
        proxy.answer_upstream(HEAD)
        proxy.reactor.advance(11)
        self.assertIn(b"504", proxy.client.value())
        self.assertIn(b"upstream body stalled before its first bytes", proxy.client.value())
