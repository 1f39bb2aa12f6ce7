"""Live MPEG-TS channels over StringTransports: one upstream connection, a ring of recent
packets, late joiners at a PAT, laggards detached, linger, one silent reconnect."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.packets import (
    PACKET_BYTES,
    Packetizer,
    find_sync,
    keyframe_offsets,
    pat_offsets,
)

from .memory import MemoryProxy, body_of, child, head_of

CHANNEL = "http://o.example/live/u/p/123.ts"
LIVE_HEAD = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: video/mp2t\r\n\r\n"
PACKETS_PER_GROUP = 10  # one PAT, then nine packets of PID 0x100


def packet(sequence: int, pid: int, start: bool = False) -> bytes:
    """One TS packet whose payload carries `sequence`, so gaps and repeats show."""
    header = bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, 0x10 | sequence % 16])
    payload = sequence.to_bytes(4, "big") * 46
    return header + payload


def keyframe_packet(sequence: int, pid: int = 0x100) -> bytes:
    """A packet starting a video PES with random_access_indicator set (a keyframe)."""
    header = bytes([0x47, 0x40 | pid >> 8, pid & 0xFF, 0x30 | sequence % 16])
    adaptation = bytes([7, 0x40]) + b"\xff" * 6
    pes = b"\x00\x00\x01\xe0"
    filler = b"\xff" * (PACKET_BYTES - len(header) - len(adaptation) - len(pes) - 4)
    return header + adaptation + pes + filler + sequence.to_bytes(4, "big")


def group(number: int, keyframe: bool = False) -> bytes:
    """PACKETS_PER_GROUP packets numbered from number * PACKETS_PER_GROUP, PAT first;
    with `keyframe`, the second one starts a video keyframe."""
    first = number * PACKETS_PER_GROUP
    packets = [packet(first, 0, start=True)]
    packets.append(keyframe_packet(first + 1) if keyframe else packet(first + 1, 0x100, True))
    packets += [packet(first + n, 0x100) for n in range(2, PACKETS_PER_GROUP)]
    return b"".join(packets)


def dechunk(raw: bytes) -> tuple[bytes, bool]:
    """The body of a chunked answer, and whether its last chunk arrived."""
    out = []
    while raw:
        size_line, _, rest = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out), True
        out.append(rest[:size])
        raw = rest[size + 2 :]
    return b"".join(out), False


def sequences(body: bytes) -> list[int]:
    """The sequence numbers of the whole packets in `body` (every one must be whole)."""
    assert len(body) % PACKET_BYTES == 0, f"{len(body)} bytes is not whole packets"
    numbers = []
    for offset in range(0, len(body), PACKET_BYTES):
        assert body[offset] == 0x47, f"no sync byte at {offset}"
        numbers.append(
            int.from_bytes(body[offset + PACKET_BYTES - 4 : offset + PACKET_BYTES], "big")
        )
    return numbers


def watched(transport: StringTransport) -> list[int]:
    return sequences(dechunk(body_of(transport))[0])


def closed(upstream: StringTransport) -> bool:
    """The proxy closed this upstream connection (stopProducing closes a TCP transport)."""
    return upstream.disconnecting or upstream.producerState == "stopped"


def leave(client: tuple[StringTransport, object]) -> None:
    transport, channel = client
    transport.producer.stopProducing()
    channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]


class Live:
    """A proxy with one live channel, fed one group of packets every `step_s`."""

    def __init__(self, case: SynchronousTestCase, **config: object) -> None:
        self.proxy = MemoryProxy(case, **config)
        self.path = child(CHANNEL)
        self.sent_groups = 0
        self.connection = 0

    def get(self, headers: str = "") -> tuple[StringTransport, object]:
        return self.proxy.get(self.path, headers)

    def start(self) -> StringTransport:
        upstream, _ = self.proxy.answer(0, LIVE_HEAD + group(0))
        self.sent_groups = 1
        return upstream

    def feed(self, groups: int, step_s: float = 0.5, keyframe_every: int = 0) -> None:
        for _ in range(groups):
            self.proxy.reactor.advance(step_s)
            number = self.sent_groups
            keyframe = keyframe_every > 0 and number % keyframe_every == 0
            self.proxy.answer(self.connection, group(number, keyframe))
            self.sent_groups += 1

    @property
    def dialled(self) -> int:
        return len(self.proxy.reactor.tcpClients)


class SharingTests(SynchronousTestCase):
    def test_viewers_share_one_upstream_and_get_the_same_whole_packets(self) -> None:
        live = Live(self)
        viewers = [live.get() for _ in range(3)]
        self.assertEqual(live.dialled, 1)
        live.start()
        live.proxy.answer(0, group(1)[:100])  # half a packet is held back
        for transport, _ in viewers:
            status, headers = head_of(transport)
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertNotIn(b"content-length", headers)
            self.assertEqual(headers[b"cache-control"], b"no-store")
            self.assertEqual(watched(transport), list(range(10)))
        live.proxy.answer(0, group(1)[100:])
        for transport, _ in viewers:
            self.assertEqual(watched(transport), list(range(20)))
        self.assertEqual(live.dialled, 1)

    def test_late_joiner_starts_at_a_pat_within_the_join_window(self) -> None:
        live = Live(self)
        live.get()
        live.start()
        live.feed(20)  # 10 s of groups, one every 0.5 s
        late, _ = live.get()
        self.assertEqual(live.dialled, 1)
        first = watched(late)[0]
        self.assertEqual(first % PACKETS_PER_GROUP, 0, "starts at a PAT packet")
        behind_s = (live.sent_groups - first // PACKETS_PER_GROUP) * 0.5
        self.assertLessEqual(behind_s, 3.5)
        self.assertGreater(first, 0, "never from byte 0 of a long-running channel")
        live.feed(2)
        got = watched(late)
        self.assertEqual(got, list(range(first, live.sent_groups * PACKETS_PER_GROUP)))

    def test_late_joiner_starts_at_the_pat_before_a_keyframe_in_the_window(self) -> None:
        live = Live(self)
        live.get()
        live.start()
        live.feed(20, keyframe_every=4)  # a keyframe every 2 s
        late, _ = live.get()
        first_group = watched(late)[0] // PACKETS_PER_GROUP
        self.assertEqual(first_group % 4, 0, "the group holding a keyframe")
        self.assertLessEqual((live.sent_groups - first_group) * 0.5, 3.0)

    def test_range_from_zero_joins_the_channel_with_a_200(self) -> None:
        live = Live(self)
        live.get("Range: bytes=0-\r\n")  # the first viewer is a libavformat player
        live.start()
        live.feed(8)
        ranged, _ = live.get("Range: bytes=0-\r\n")
        plain, _ = live.get()
        self.assertEqual(live.dialled, 1)
        for transport in (ranged, plain):
            status, headers = head_of(transport)
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertNotIn(b"content-range", headers)
            self.assertEqual(watched(transport)[0] % PACKETS_PER_GROUP, 0)

    def test_other_ranges_do_not_join(self) -> None:
        live = Live(self)
        live.get()
        live.start()
        live.get("Range: bytes=100-\r\n")
        self.assertEqual(live.dialled, 2)

    def test_stream_is_cut_at_the_sync_byte_after_garbage(self) -> None:
        live = Live(self)
        viewer, _ = live.get()
        stream = group(0)[:188] + b"\x00junk\x47\x12" * 7 + group(0)[188:] + group(1)
        for offset in range(0, len(stream), 77):  # odd read sizes
            piece = stream[offset : offset + 77]
            live.proxy.answer(0, (LIVE_HEAD if offset == 0 else b"") + piece)
        # Packet 0 is followed by junk, so nothing confirms it is one: skipped with the junk.
        self.assertEqual(watched(viewer), list(range(1, 20)), "whole packets, junk skipped")

    def test_a_body_not_starting_with_a_sync_byte_stays_with_the_fan_out(self) -> None:
        live = Live(self)
        viewer, _ = live.get()
        live.proxy.answer(0, LIVE_HEAD + b"abc")
        self.assertIn(b"\r\n3\r\nabc\r\n", viewer.value())
        self.assertEqual(live.proxy.dispatcher.channels.opened, 0)


class YoungBodyTests(SynchronousTestCase):
    def test_a_joiner_in_the_first_seconds_gets_byte_0(self) -> None:
        live = Live(self)
        live.get()
        live.start()
        live.feed(3, step_s=0.5)
        early, _ = live.get()
        self.assertEqual(watched(early)[0], 0)

    def test_a_short_body_without_length_completes_and_is_cached(self) -> None:
        live = Live(self)
        first, _ = live.get()
        _, protocol = live.proxy.answer(0, LIVE_HEAD + group(0) + group(1))
        protocol.connectionLost(Failure(ConnectionDone()))
        body, finished = dechunk(body_of(first))
        self.assertTrue(finished, "a whole body ends cleanly")
        self.assertEqual(sequences(body), list(range(20)))
        again, _ = live.get()
        self.assertEqual(body_of(again), group(0) + group(1))
        self.assertEqual(live.dialled, 1, "served from the cache, not reconnected")


class LaggardTests(SynchronousTestCase):
    def test_a_stalled_viewer_is_detached_and_never_slows_the_others(self) -> None:
        live = Live(self, live_ring_bytes=PACKET_BYTES * PACKETS_PER_GROUP * 4)
        slow, _ = live.get()
        fast, _ = live.get()
        upstream = live.start()
        live.feed(8)  # live now: the ring holds four groups
        slow.producer.pauseProducing()
        fast.producer.pauseProducing()
        live.feed(2)
        self.assertEqual(upstream.producerState, "producing", "a live source is never paused")
        fast.producer.resumeProducing()
        live.feed(4)
        self.assertTrue(slow.disconnecting, "fell out of the ring: detached")
        self.assertFalse(fast.disconnecting)
        self.assertEqual(watched(fast), list(range(live.sent_groups * PACKETS_PER_GROUP)))
        self.assertEqual(sequences(dechunk(body_of(slow))[0]), list(range(90)), "no hole")
        self.assertEqual(live.proxy.dispatcher.channels.detached_viewers, 1)


class LingerTests(SynchronousTestCase):
    def test_upstream_closes_within_the_linger_after_the_last_viewer(self) -> None:
        live = Live(self, live_linger_s=2.0)
        viewers = [live.get() for _ in range(2)]
        upstream = live.start()
        live.feed(8)
        for viewer in viewers:
            leave(viewer)
        live.proxy.reactor.advance(1.9)
        self.assertFalse(closed(upstream))
        live.proxy.reactor.advance(0.2)
        self.assertTrue(closed(upstream), "closed 2 s after the last viewer left")
        live.get()
        self.assertEqual(live.dialled, 2, "the next viewer opens the channel again")

    def test_a_viewer_joining_during_the_linger_keeps_the_connection(self) -> None:
        live = Live(self, live_linger_s=2.0)
        first = live.get()
        upstream = live.start()
        live.feed(8)
        leave(first)
        live.proxy.reactor.advance(1.5)
        zapped_back, _ = live.get()
        live.proxy.reactor.advance(5)
        self.assertFalse(closed(upstream))
        self.assertEqual(live.dialled, 1)
        live.feed(1)
        self.assertEqual(watched(zapped_back)[-1], live.sent_groups * PACKETS_PER_GROUP - 1)


class ReconnectTests(SynchronousTestCase):
    def test_a_clean_close_is_bridged_by_one_reconnect_without_replay(self) -> None:
        live = Live(self)
        viewer, _ = live.get()
        live.start()
        live.feed(8)
        _, protocol = live.proxy.answer(0, group(live.sent_groups)[:300])  # 1.6 packets
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(live.dialled, 2, "reconnected")
        self.assertFalse(viewer.disconnecting)
        resumed_at = live.sent_groups + 1  # the source moved on while we reconnected
        live.sent_groups = resumed_at
        live.connection = 1
        live.proxy.answer(1, LIVE_HEAD + b"\x47\x00" + group(resumed_at))  # a partial start
        live.sent_groups += 1
        live.feed(1)
        got = watched(viewer)
        before = list(range(9 * PACKETS_PER_GROUP + 1))  # the whole packet of the cut group
        after = list(range(resumed_at * PACKETS_PER_GROUP, live.sent_groups * PACKETS_PER_GROUP))
        self.assertEqual(got, before + after)

    def test_a_failed_reconnect_ends_the_viewers_cleanly(self) -> None:
        live = Live(self)
        viewer, _ = live.get()
        live.start()
        live.feed(8)
        _, protocol = live.proxy.answer(0, b"")
        protocol.connectionLost(Failure(ConnectionDone()))
        live.proxy.answer(1, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        body, finished = dechunk(body_of(viewer))
        self.assertTrue(finished)
        self.assertEqual(sequences(body), list(range(90)))
        self.assertEqual(live.dialled, 2, "one attempt, no loop")


class PacketTests(SynchronousTestCase):
    def test_find_sync_needs_a_run_of_sync_bytes(self) -> None:
        stream = b"\x47" + b"x" * 50 + group(0)
        self.assertEqual(find_sync(stream), 51)
        self.assertEqual(find_sync(group(0)[:300]), -1, "two packets cannot confirm it")

    def test_packetizer_resyncs_after_a_corrupt_packet(self) -> None:
        packets = Packetizer()
        corrupt = bytearray(group(0))
        corrupt[PACKET_BYTES * 3] = 0  # the fourth packet lost its sync byte
        out = packets.feed(bytes(corrupt) + group(1))
        self.assertEqual(sequences(out), [0, 1, 2, *range(4, 20)], "the bad packet alone")
        self.assertGreater(packets.skipped, 0)

    def test_pat_offsets_only_at_packet_starts(self) -> None:
        block = group(0) + group(1)
        self.assertEqual(pat_offsets(block), [0, PACKETS_PER_GROUP * PACKET_BYTES])

    def test_keyframe_offsets_need_random_access_on_a_video_pes_start(self) -> None:
        block = group(0) + group(1, keyframe=True)
        self.assertEqual(keyframe_offsets(block), [(PACKETS_PER_GROUP + 1) * PACKET_BYTES])
        audio = bytearray(keyframe_packet(5))
        audio[15] = 0xC0  # an audio PES with random access: not a video keyframe
        self.assertEqual(keyframe_offsets(bytes(audio)), [])
