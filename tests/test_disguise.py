"""Disguised segments: an image header hiding MPEG-TS is found and dropped (disguise.py)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.disguise import MAX_PREFIX_BYTES, PrefixScan, could_be_image

from .test_relay import Segment

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(range(13)) + b"G" * 3 + b"IEND"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x47\x00" * 50 + b"\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
BMP = b"BM" + bytes(60)


def ts(packets: int) -> bytes:
    return b"".join(b"\x47\x40\x00\x10" + bytes([n % 256]) * 184 for n in range(packets))


def scan(body: bytes, chunk: int) -> int:
    scanner = PrefixScan()
    for start in range(0, len(body), chunk):
        found = scanner.feed(body[start : start + chunk])
        if found is not None:
            return found
    found = scanner.feed(b"", ended=True)
    assert found is not None
    return found


class PrefixScanTests(SynchronousTestCase):
    def test_table_in_any_chunking(self) -> None:
        thumbnail = PNG + bytes(range(256)) * 40
        cases = [
            (PNG + ts(20), len(PNG)),
            (JPEG + ts(20), len(JPEG)),
            (GIF + ts(20), len(GIF)),
            (BMP + ts(20), len(BMP)),
            (PNG + ts(2), len(PNG)),  # a short body: the packets that are there
            (ts(20), 0),  # plain TS
            (b"\x00\x00\x00\x18ftypiso6" + bytes(400), 0),  # fMP4
            (thumbnail, 0),  # a real picture: nothing after it
            (PNG + b"\x47" + bytes(187) + b"\x47" + bytes(700), 0),  # two syncs are not TS
        ]
        for body, expected in cases:
            for chunk in (1, 7, 188, 4096, len(body)):
                self.assertEqual(scan(body, chunk), expected, (body[:12], chunk))

    def test_undecided_until_enough_bytes_then_bounded(self) -> None:
        scanner = PrefixScan()
        self.assertIsNone(scanner.feed(PNG + ts(2)))  # TS may start here: wait for more
        self.assertEqual(scanner.feed(ts(2)), len(PNG))
        scanner = PrefixScan()
        self.assertIsNone(scanner.feed(PNG + bytes(MAX_PREFIX_BYTES - len(PNG))))
        self.assertEqual(scanner.feed(bytes(2048)), 0)  # no TS this far in: left alone

    def test_could_be_image(self) -> None:
        for first, expected in [
            (b"", False), (b"G", False), (b"GI", True), (b"G@", False), (b"\x89", True),
            (b"\x89PNG\r\n\x1a\nxx", True), (b"\xff\xf1", False), (b"\x00\x00", False),
        ]:  # fmt: skip
            self.assertEqual(could_be_image(first), expected, first)


class RelayedTests(SynchronousTestCase):
    def test_a_png_prefix_is_dropped_and_the_length_follows(self) -> None:
        body = PNG + ts(30)
        segment = Segment(self)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
        _, upstream = segment.answer(head % len(body) + body[:100])
        self.assertEqual(segment.client.value(), b"")  # held until it is clear
        upstream.dataReceived(body[100:])
        answer = segment.client.value()
        headers, _, relayed = answer.partition(b"\r\n\r\n")
        self.assertEqual(relayed, ts(30))
        self.assertIn(b"Content-Length: %d" % len(ts(30)), headers)
        self.assertIn(b"Content-Type: video/mp2t", headers)

    def test_ts_sent_as_an_image_type_is_said_to_be_ts(self) -> None:
        segment = Segment(self)
        body = ts(3)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
        segment.answer(head % len(body) + body)
        headers, _, relayed = segment.client.value().partition(b"\r\n\r\n")
        self.assertEqual(relayed, body)
        self.assertIn(b"Content-Type: video/mp2t", headers)
