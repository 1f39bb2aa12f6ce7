"""Backpressure and departures, with no sockets: the whole proxy over StringTransports.

The client is a StringTransport on the proxy's HTTPChannel; the upstream is the
connection the proxy asked the MemoryReactor for, fed raw HTTP bytes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from .memory import MemoryProxy, child

SEGMENT = child("http://o.example/v/seg-1.ts")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 1000000\r\n\r\n"


class Segment:
    """One client asking the proxy for SEGMENT, and the upstream connection it dials."""

    def __init__(self, case: SynchronousTestCase) -> None:
        # No segment cache: a body that may be cached is read at full speed (fanout.py);
        # these tests are about the streamed regime, where one viewer paces the upstream.
        self.proxy = MemoryProxy(
            case, upstream_timeout_s=10, body_idle_timeout_s=10, cache_size_bytes=0
        )
        self.client, self.channel = self.proxy.get(SEGMENT)

    def answer(self, data: bytes) -> tuple[StringTransport, Any]:
        """Connect the upstream the proxy dialled and send it `data`."""
        return self.proxy.answer(0, data)


class RelayTests(SynchronousTestCase):
    def test_client_bytes_arrive_as_upstream_sends_them(self) -> None:
        segment = Segment(self)
        upstream, protocol = segment.answer(HEAD + b"\x47" * 1000)
        self.assertIn(b"GET /v/seg-1.ts HTTP/1.1", upstream.value())
        protocol.dataReceived(b"\x47" * 5000)
        sent = segment.client.value()
        self.assertIn(b"HTTP/1.1 200 OK", sent)
        self.assertIn(b"Content-Length: 1000000", sent)
        self.assertTrue(sent.endswith(b"\x47" * 6000))

    def test_full_client_pauses_the_upstream_and_resumes_it(self) -> None:
        segment = Segment(self)
        upstream, _ = segment.answer(HEAD + b"\x47" * 1000)
        self.assertEqual(upstream.producerState, "producing")
        segment.client.producer.pauseProducing()
        self.assertEqual(upstream.producerState, "paused")
        segment.client.producer.resumeProducing()
        self.assertEqual(upstream.producerState, "producing")

    def test_departing_client_closes_the_upstream_at_once(self) -> None:
        segment = Segment(self)
        upstream, _ = segment.answer(HEAD + b"\x47" * 1000)
        segment.client.producer.stopProducing()
        segment.channel.connectionLost(Exception("client left"))
        self.assertTrue(
            upstream.disconnecting or upstream.producerState == "stopped",
            "upstream still open",
        )

    def test_client_leaving_before_headers_cancels_the_upstream_request(self) -> None:
        segment = Segment(self)
        upstream, _ = segment.answer(b"")  # connected, not answered
        segment.channel.connectionLost(Exception("client left"))
        self.assertTrue(upstream.disconnecting)

    def test_upstream_silence_aborts_the_client_after_the_timeout(self) -> None:
        segment = Segment(self)
        upstream, _ = segment.answer(HEAD + b"\x47" * 1000)
        segment.proxy.reactor.advance(9)
        self.assertFalse(segment.client.disconnecting)
        segment.proxy.reactor.advance(2)
        self.assertTrue(upstream.disconnecting or upstream.producerState == "stopped")
        self.assertTrue(segment.client.disconnecting or segment.client.disconnected)


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
        segment = Segment(self)
        segment.answer(HEAD + b"\x47")
        self.assertIn(b"HTTP/1.1 200 OK", segment.client.value())
        self.assertTrue(segment.client.value().endswith(b"\r\n\r\n\x47"))

    def test_an_upstream_silent_before_its_first_byte_is_504(self) -> None:
        segment = Segment(self)
        segment.answer(HEAD)
        segment.proxy.reactor.advance(11)
        self.assertIn(b"504", segment.client.value())
        self.assertIn(b"upstream body stalled before its first bytes", segment.client.value())
