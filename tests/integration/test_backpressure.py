"""Segments flow with backpressure: a stalled client stalls the upstream; a leaving one
cancels it; an upstream that dies mid-body never looks like a clean end."""

from __future__ import annotations

import re

from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import TestCase

from .harness import (
    client,
    connect,
    happens_within,
    http_get,
    proxied_url,
    reactor,
    start_origin,
    start_proxy,
    within,
)
from .origin import Body, Streaming, Tree

SEGMENT_BYTES = 256 * 1024 * 1024

# test_workers.py on main still imports this; the workers branch no longer does. Delete it
# once that branch is merged.


async def _segment_path(case: TestCase, proxy: str, origin: str) -> str:
    url = proxied_url(proxy, origin + "/live.m3u8")
    playlist = await (await client(case).get(url)).content()
    [path] = re.findall(rb"^/p/\S+$", playlist, re.M)
    return path.decode()


def _origin(case: TestCase, segment: Streaming) -> str:
    playlist = Body(b"#EXTM3U\n#EXTINF:4,\nbig.ts\n")
    origin, _ = start_origin(case, Tree({"/live.m3u8": playlist, "/big.ts": segment}))
    return origin


async def _stalls(segment: Streaming, quiet: float = 0.1, limit: float = 5.0) -> int:
    """What the origin has sent once it sends nothing more for `quiet` seconds.

    The one wall-clock wait in these tests: a stall is progress that stops, over time.
    """
    deadline = reactor.seconds() + limit
    while reactor.seconds() < deadline:
        sent = segment.sent
        if not await happens_within(quiet, segment.sent_at_least(sent + 1)):
            return sent
    raise AssertionError(f"the origin never stalled: sent {segment.sent} bytes in {limit} s")


class BackpressureTests(TestCase):
    async def test_stalled_client_stalls_the_upstream_then_leaving_cancels_it(self) -> None:
        segment = Streaming(SEGMENT_BYTES)
        origin = _origin(self, segment)
        proxy = start_proxy(self)
        path = await _segment_path(self, proxy, origin)
        stalled = await connect(self, proxy, http_get(path))
        await within(5, stalled.received_at_least(1), "the first bytes of the segment")
        stalled.transport.pauseProducing()  # type: ignore[union-attr]  # stop reading
        sent = await _stalls(segment)
        self.assertIn(b"200 OK", stalled.head)
        # Without backpressure the whole segment would pour into the proxy at once;
        # with it, only what loopback socket buffers hold (tens of MB) leaves the origin.
        self.assertLess(sent, SEGMENT_BYTES // 4, f"origin sent {sent} bytes")
        self.assertIsNone(segment.disconnected_at, "the upstream was dropped, not paused")
        left_at = reactor.seconds()
        stalled.transport.abortConnection()  # type: ignore[union-attr]
        gone_at = await within(2, segment.disconnected, "the upstream cancelled")
        self.assertLess(gone_at - left_at, 1.0)
        self.assertLess(segment.sent, SEGMENT_BYTES)

    async def test_a_reading_client_gets_every_byte(self) -> None:
        segment = Streaming(8 * 1024 * 1024)
        origin = _origin(self, segment)
        proxy = start_proxy(self)
        path = await _segment_path(self, proxy, origin)
        answer = await client(self).get(proxy + path)
        self.assertEqual(answer.length, 8 * 1024 * 1024)  # sent as Content-Length
        body = await answer.content()
        self.assertEqual(len(body), 8 * 1024 * 1024)

    async def test_upstream_dying_mid_body_aborts_the_client_connection(self) -> None:
        segment = Streaming(1024 * 1024, hold_after=200_000)
        origin = _origin(self, segment)
        proxy = start_proxy(self)
        path = await _segment_path(self, proxy, origin)
        reader = await connect(self, proxy, http_get(path))
        await within(5, reader.received_at_least(100_000), "the segment's first bytes")
        segment.abort()
        reason = await within(5, reader.closed, "the client's connection closed")
        self.assertIn(b"content-length: 1048576", reader.head.lower())
        self.assertLess(reader.received, 1024 * 1024)
        self.assertIsNot(reason, ConnectionDone)
