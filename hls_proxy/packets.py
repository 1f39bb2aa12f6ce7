"""MPEG-TS packet boundaries, pure: where packets start, and which start a PAT.

A TS stream is 188-byte packets, each starting with the sync byte 0x47. A live channel
(channels.py) passes only whole packets to its viewers, so a viewer's stream never holds
half a packet, whichever connection or join point its bytes came from.
"""

from __future__ import annotations

__all__ = ["PACKET_BYTES", "SYNC", "Packetizer", "find_sync", "keyframe_offsets", "pat_offsets"]

PACKET_BYTES = 188
SYNC = 0x47
_SYNC_BYTE = b"\x47"
# Sync bytes in a row that count as "found": one 0x47 is common inside payloads.
_SYNC_RUN = 3


def find_sync(data: bytes, start: int = 0) -> int:
    """The first offset from `start` where `_SYNC_RUN` packets in a row begin; -1 if none
    can be confirmed in `data`."""
    position = data.find(_SYNC_BYTE, start)
    span = PACKET_BYTES * (_SYNC_RUN - 1)
    while position != -1 and position + span < len(data):
        if all(data[position + PACKET_BYTES * n] == SYNC for n in range(1, _SYNC_RUN)):
            return position
        position = data.find(_SYNC_BYTE, position + 1)
    return -1


def pat_offsets(block: bytes) -> list[int]:
    """Offsets of the packets of an aligned `block` that start a PAT section (PID 0 with
    payload_unit_start_indicator): where a demuxer can start reading."""
    offsets = []
    for offset in range(0, len(block) - PACKET_BYTES + 1, PACKET_BYTES):
        flags, pid_low = block[offset + 1], block[offset + 2]
        if flags & 0x5F == 0x40 and pid_low == 0:  # PUSI set, PID 0 (priority bit ignored)
            offsets.append(offset)
    return offsets


def keyframe_offsets(block: bytes) -> list[int]:
    """Offsets of the packets of an aligned `block` that start a video keyframe: the
    adaptation field's random_access_indicator set on a packet that starts a video PES
    (stream id 0xE0-0xEF). A decoder can start there without missing references."""
    offsets = []
    for offset in range(0, len(block) - PACKET_BYTES + 1, PACKET_BYTES):
        control = block[offset + 3] >> 4 & 0x3
        if not block[offset + 1] & 0x40 or control != 0x3:  # PUSI, adaptation + payload
            continue
        adaptation_bytes = block[offset + 4]
        if adaptation_bytes == 0 or not block[offset + 5] & 0x40:  # random access
            continue
        pes = offset + 5 + adaptation_bytes
        stream_id = block[pes + 3] if pes + 3 < offset + PACKET_BYTES else 0
        if block[pes : pes + 3] == b"\0\0\1" and 0xE0 <= stream_id <= 0xEF:
            offsets.append(offset)
    return offsets


class Packetizer:
    """Cuts a byte stream into whole packets; finds the sync, and finds it again after a
    loss (bytes between are skipped and counted, never passed on)."""

    def __init__(self) -> None:
        self._pending = b""
        self._synced = False
        self.synced_once = False
        self.skipped = 0

    def feed(self, data: bytes) -> bytes:
        """The whole packets `data` completes (possibly none), aligned to the sync byte."""
        buffer = self._pending + data if self._pending else data
        out: list[bytes] = []
        position = 0
        while True:
            if not self._synced:
                found = find_sync(buffer, position)
                if found < 0:
                    # Keep what could still be the start of a run of packets.
                    keep_from = max(position, len(buffer) - PACKET_BYTES * _SYNC_RUN)
                    self.skipped += keep_from - position
                    self._pending = buffer[keep_from:]
                    return b"".join(out)
                self.skipped += found - position
                position = found
                self._synced = self.synced_once = True
            whole = (len(buffer) - position) // PACKET_BYTES * PACKET_BYTES
            block = buffer[position : position + whole]
            syncs = block[::PACKET_BYTES]
            good = len(syncs) - len(syncs.lstrip(_SYNC_BYTE))
            if good == len(syncs):
                out.append(block)
                self._pending = buffer[position + whole :]
                return b"".join(out)
            out.append(block[: good * PACKET_BYTES])  # sync lost after these packets
            position += good * PACKET_BYTES
            self._synced = False

    def tail(self) -> bytes:
        """What is held back at the end of a complete body (its true last bytes)."""
        tail, self._pending = self._pending, b""
        return tail

    def reset(self) -> None:
        """A new connection: drop the partial packet held, look for the sync again."""
        self._pending = b""
        self._synced = False
