"""Segments flow with backpressure: a stalled client stalls the upstream; a leaving one
cancels it; an upstream that dies mid-body never looks like a clean end."""

from __future__ import annotations

import re
import socket
from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from .harness import client, later, proxied_url, reactor, start_origin, start_proxy
from .origin import Streaming, Tree

SEGMENT_BYTES = 256 * 1024 * 1024


class RawClient(Protocol):
    """An HTTP/1.1 client that reads only what a test lets it read."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = 0
        self.head = b""
        self.closed: Deferred[type[BaseException]] = Deferred()

    def connectionMade(self) -> None:
        # A small receive window, so this end's kernel buffer does not hide the proxy's.
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # type: ignore[union-attr]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.received < 512:
            self.head += data[:512]
        self.received += len(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.closed.callback(reason.type)


async def _connect(proxy: str, path: str) -> RawClient:
    port = int(proxy.rsplit(":", 1)[1])
    protocol = RawClient(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    return protocol


async def _until_steady(read: Any, rounds: int = 40) -> int:
    """Poll `read()` every 50 ms until it stops changing (bounded)."""
    last = -1
    for _ in range(rounds):
        await later(0.05)
        value = read()
        if value == last:
            return value  # type: ignore[no-any-return]
        last = value
    return last


async def _segment_path(case: TestCase, proxy: str, origin: str) -> str:
    url = proxied_url(proxy, origin + "/live.m3u8")
    playlist = await (await client(case).get(url)).content()
    [path] = re.findall(rb"^/p/\S+$", playlist, re.M)
    return path.decode()


def _origin(case: TestCase, segment: Streaming) -> str:
    from .origin import Body

    playlist = Body(b"#EXTM3U\n#EXTINF:4,\nbig.ts\n")
    origin, _ = start_origin(case, Tree({"/live.m3u8": playlist, "/big.ts": segment}))
    return origin


def run(coroutine: Coroutine[Any, Any, None]) -> Deferred[None]:
    return Deferred.fromCoroutine(coroutine)


class BackpressureTests(TestCase):
    def test_stalled_client_stalls_the_upstream_then_leaving_cancels_it(self) -> Deferred[None]:
        async def go() -> None:
            segment = Streaming(SEGMENT_BYTES)
            origin = _origin(self, segment)
            proxy = start_proxy(self)
            path = await _segment_path(self, proxy, origin)
            stalled = await _connect(proxy, path)
            await later(0.05)
            stalled.transport.pauseProducing()  # type: ignore[union-attr]  # stop reading
            sent = await _until_steady(lambda: segment.sent)
            self.assertIn(b"200 OK", stalled.head)
            # Without backpressure the whole segment would pour into the proxy at once;
            # with it, only what loopback socket buffers hold (tens of MB) leaves the origin.
            self.assertLess(sent, SEGMENT_BYTES // 4, f"origin sent {sent} bytes")
            left_at = reactor.seconds()
            stalled.transport.abortConnection()  # type: ignore[union-attr]
            for _ in range(20):
                if segment.disconnected_at is not None:
                    break
                await later(0.05)
            self.assertIsNotNone(segment.disconnected_at, "upstream was not cancelled")
            self.assertLess(segment.disconnected_at - left_at, 1.0)
            self.assertLess(segment.sent, SEGMENT_BYTES)

        return run(go())

    def test_a_reading_client_gets_every_byte(self) -> Deferred[None]:
        async def go() -> None:
            segment = Streaming(8 * 1024 * 1024)
            origin = _origin(self, segment)
            proxy = start_proxy(self)
            path = await _segment_path(self, proxy, origin)
            answer = await client(self).get(proxy + path)
            self.assertEqual(answer.length, 8 * 1024 * 1024)  # sent as Content-Length
            body = await answer.content()
            self.assertEqual(len(body), 8 * 1024 * 1024)

        return run(go())

    def test_upstream_dying_mid_body_aborts_the_client_connection(self) -> Deferred[None]:
        async def go() -> None:
            segment = Streaming(1024 * 1024, fail_after=200_000)
            origin = _origin(self, segment)
            proxy = start_proxy(self)
            path = await _segment_path(self, proxy, origin)
            reader = await _connect(proxy, path)
            reason = await reader.closed
            self.assertIn(b"content-length: 1048576", reader.head.lower())
            self.assertLess(reader.received, 1024 * 1024)
            self.assertIsNot(reason, ConnectionDone)

        return run(go())
