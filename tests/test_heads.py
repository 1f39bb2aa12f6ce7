"""Every answer for one URL carries the same head: GET, HEAD, Range, cached or not."""

from __future__ import annotations

import gzip

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind

from .memory import MemoryProxy, body_of, child, head_of, media_head

SEG = "http://o.example/s1.ts"
VARIANT = "http://o.example/v/index.m3u8"
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXTINF:4,\nb.ts\n#EXT-X-ENDLIST\n"
_SAME = (b"content-type", b"content-length", b"cache-control", b"etag")


def gzip_playlist_answer() -> bytes:
    packed = gzip.compress(PLAYLIST)
    return (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.apple.mpegurl"
        b"\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed
    )


class PlaylistHeadTests(SynchronousTestCase):
    def test_head_on_a_child_playlist_has_the_get_headers_and_no_body(self) -> None:
        proxy = MemoryProxy(self)
        headed, _ = proxy.request("HEAD", child(VARIANT, UriKind.PLAYLIST))
        proxy.answer(0, gzip_playlist_answer())
        gotten, _ = proxy.get(child(VARIANT, UriKind.PLAYLIST))
        head_status, head_headers = head_of(headed)
        get_status, get_headers = head_of(gotten)
        self.assertEqual(head_status, get_status)
        self.assertEqual(get_status, b"HTTP/1.1 200 OK")
        for name in _SAME:
            self.assertEqual(head_headers.get(name), get_headers.get(name), name)
        self.assertNotIn(b"content-encoding", head_headers)
        self.assertEqual(int(head_headers[b"content-length"]), len(body_of(gotten)))
        self.assertEqual(body_of(headed), b"")

    def test_head_on_a_segment_asks_upstream_for_the_head_only(self) -> None:
        proxy = MemoryProxy(self)
        headed, _ = proxy.request("HEAD", child(SEG))
        upstream, _ = proxy.answer(0, media_head(5_000_000))
        self.assertTrue(upstream.value().startswith(b"HEAD /s1.ts "))
        status, headers = head_of(headed)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(headers[b"content-length"], b"5000000")
        self.assertEqual(body_of(headed), b"")


class CachingHeadersTests(SynchronousTestCase):
    def test_get_head_and_a_range_miss_carry_the_same_cache_control(self) -> None:
        proxy = MemoryProxy(self, cache_size_bytes=0)  # nothing cached: every answer goes upstream
        gotten, _ = proxy.get(child(SEG))
        proxy.answer(0, media_head(10) + b"x" * 10)
        headed, _ = proxy.request("HEAD", child(SEG))
        proxy.answer(1, media_head(10))
        ranged, _ = proxy.get(child(SEG), "Range: bytes=2-5\r\n")
        proxy.answer(
            2,
            b"HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Type: video/mp2t\r\n"
            b"Content-Range: bytes 2-5/10\r\nContent-Length: 4\r\n\r\nxxxx",
        )
        controls = [head_of(t)[1].get(b"cache-control") for t in (gotten, headed, ranged)]
        self.assertEqual(controls, [b"public, max-age=86400"] * 3)
        types = [head_of(t)[1].get(b"content-type") for t in (gotten, headed, ranged)]
        self.assertEqual(types, [b"video/mp2t"] * 3)
        self.assertEqual(head_of(ranged)[0], b"HTTP/1.1 206 Partial Content")

    def test_head_of_a_cached_segment_is_answered_from_the_cache(self) -> None:
        proxy = MemoryProxy(self)
        gotten, _ = proxy.get(child(SEG))
        proxy.answer(0, media_head(10) + b"x" * 10)
        headed, _ = proxy.request("HEAD", child(SEG))
        self.assertEqual(len(proxy.reactor.tcpClients), 1, "no upstream request for the HEAD")
        self.assertEqual(head_of(headed), head_of(gotten))
        self.assertEqual(body_of(headed), b"")


class NoBytesYetTests(SynchronousTestCase):
    """An upstream that fails before any byte reached the client gets an answer, not a reset."""

    def test_a_fetch_failing_before_its_first_byte_is_a_502_with_a_message(self) -> None:
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseFailed

        proxy = MemoryProxy(self)
        client, _ = proxy.get(child(SEG))
        _, upstream = proxy.answer(0, media_head(100))
        upstream.connectionLost(Failure(ResponseFailed([Failure(Exception("reset"))])))
        self.assertEqual(head_of(client)[0], b"HTTP/1.1 502 Bad Gateway")
        self.assertFalse(client.disconnected, "answered, not reset")
        self.assertIn(b"upstream", body_of(client))
        self.assertFalse(client.disconnected, "answered, not reset")

    def test_a_relay_failing_before_its_first_byte_is_a_502_with_a_message(self) -> None:
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseFailed

        proxy = MemoryProxy(self)
        client, _ = proxy.get(child(SEG), "Range: bytes=10-19\r\n")
        _, upstream = proxy.answer(
            0,
            b"HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp2t\r\n"
            b"Content-Range: bytes 10-19/100\r\nContent-Length: 10\r\n\r\n",
        )
        upstream.connectionLost(Failure(ResponseFailed([Failure(Exception("reset"))])))
        self.assertEqual(head_of(client)[0], b"HTTP/1.1 502 Bad Gateway")
        self.assertFalse(client.disconnected, "answered, not reset")

    def test_after_bytes_were_sent_a_failure_still_aborts(self) -> None:
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseFailed

        proxy = MemoryProxy(self)
        client, _ = proxy.get(child(SEG))
        _, upstream = proxy.answer(0, media_head(100) + b"x" * 10)
        upstream.connectionLost(Failure(ResponseFailed([Failure(Exception("reset"))])))
        self.assertEqual(head_of(client)[0], b"HTTP/1.1 200 OK")
        self.assertTrue(client.disconnected, "aborted: a short body never looks complete")
