"""Upstream faults through the real proxy on loopback: stale keep-alive, resets, odd
redirects and statuses, and the bound on idle upstream sockets across streams."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseFailed
from twisted.web.server import Site

from hls_proxy.guard import Guard, UpstreamRefused

from .harness import client, later, proxied_url, reactor, start_proxy
from .origin import Body, Redirect, Tree

SEGMENT = b"\x47" * 188
SEGMENTS = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + b"".join(
    b"#EXTINF:2,\ns%d.ts\n" % i for i in range(40)
)
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n"


class RawOrigin(Protocol):
    """Reads request heads; `answer(protocol, head)` writes whatever it likes."""

    def __init__(self, answer: Callable[[RawOrigin, bytes], None]) -> None:
        self.answer = answer
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.answer(self, head)


def listen_raw(case: TestCase, factory: Factory) -> int:
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return int(port.getHost().port)


def raw_origin(case: TestCase, answer: Callable[[RawOrigin, bytes], None]) -> str:
    port = listen_raw(case, Factory.forProtocol(lambda: RawOrigin(answer)))
    return f"http://127.0.0.1:{port}"


def reset(transport: ITransport) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    handle: socket.socket = transport.getHandle()  # type: ignore[attr-defined]
    handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abortConnection()  # type: ignore[attr-defined]  # loseConnection would shutdown(): a FIN


class ShortKeepAlive(Protocol):
    """An origin that closes connections idle for `idle_s`. A request that reaches it in
    the last `crossing_s` before that is one that crossed its FIN on the wire: the
    connection is closed without an answer, as a real origin's would be."""

    idle_s = 0.05
    crossing_s = 0.012

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.buffer = b""
        self.answered_here = 0

    def connectionMade(self) -> None:
        self.counts["connections"] += 1
        self.last_s = reactor.seconds()
        self.timer = reactor.callLater(self.idle_s, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        # Only a reused connection can cross its FIN (on a loaded machine a fresh one may
        # see its first request late; that is not the race under test).
        reused = self.answered_here > 0
        if reused and reactor.seconds() - self.last_s > self.idle_s - self.crossing_s:
            self.counts["crossed"] += 1
            self.timer.cancel()
            self.transport.loseConnection()
            return
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.counts["answered"] += 1
            self.answered_here += 1
            kind, body = b"video/mp2t", SEGMENT
            if b".m3u8 " in head.split(b"\r\n", 1)[0]:
                kind, body = b"application/vnd.apple.mpegurl", SEGMENTS
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (kind, len(body), body)
            )
            self.last_s = reactor.seconds()
            self.timer.reset(self.idle_s)

    def connectionLost(self, reason: Any = None) -> None:
        if self.timer.active():
            self.timer.cancel()


class StaleKeepAliveTests(TestCase):
    timeout = 60

    async def test_a_connection_closed_as_it_is_reused_is_retried_not_a_502(self) -> None:
        counts = {"connections": 0, "crossed": 0, "answered": 0}
        port = listen_raw(self, Factory.forProtocol(lambda: ShortKeepAlive(counts)))
        proxy = start_proxy(self)
        http = client(self)
        entry = await http.get(proxied_url(proxy, f"http://127.0.0.1:{port}/live.m3u8"))
        children = re.findall(rb"^/p/\S+$", await entry.content(), re.M)
        self.assertEqual(len(children), 40)
        statuses = []
        # One stream (one pool), gaps sweeping across the origin's keep-alive timeout.
        for i, child in enumerate(children):
            await later(0.030 + 0.0008 * i)
            answer = await http.get(proxy + child.decode())
            await answer.content()
            statuses.append(answer.code)
        self.assertGreater(counts["crossed"], 0, "the race was never hit; widen the sweep")
        self.assertEqual(statuses, [200] * 40)
        self.assertEqual(counts["answered"], 41)  # the playlist and each segment, once


class ResetTests(TestCase):
    timeout = 30

    async def test_a_length_less_body_ended_by_a_reset_is_not_served_as_complete(self) -> None:
        requests = []

        def cut(origin: RawOrigin, head: bytes) -> None:
            requests.append(head)
            origin.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + SEGMENT * 20
            )
            reactor.callLater(0.05, reset, origin.transport)

        origin = raw_origin(self, cut)
        proxy = start_proxy(self)
        http = client(self)
        url = proxied_url(proxy, origin + "/cut.ts", endpoint="stream")
        answer = await http.get(url)
        with self.assertRaises(ResponseFailed):
            await answer.content()
        second = await http.get(url)
        try:
            await second.content()
        except ResponseFailed:
            pass
        self.assertEqual(len(requests), 2)  # the cut body was not cached


class RedirectAndStatusTests(TestCase):
    timeout = 30

    async def test_a_redirect_to_gopher_is_502_and_nothing_connects(self) -> None:
        connected: list[object] = []

        class Record(Protocol):
            def connectionMade(self) -> None:
                connected.append(self)
                self.transport.loseConnection()

        gopher = listen_raw(self, Factory.forProtocol(Record))
        site = Site(Tree({"/x.m3u8": Redirect(f"gopher://127.0.0.1:{gopher}/".encode())}))
        origin = f"http://127.0.0.1:{listen_raw(self, site)}"
        proxy = start_proxy(self)
        for endpoint in ("playlist.m3u8", "stream"):
            answer = await client(self).get(
                proxied_url(proxy, origin + "/x.m3u8", endpoint=endpoint)
            )
            body = await answer.content()
            self.assertEqual(
                (answer.code, body), (502, b"upstream redirect to a non-HTTP URL refused\n")
            )
        await later(0.05)
        self.assertEqual(connected, [])

    async def test_a_status_outside_100_to_599_is_502(self) -> None:
        def odd(origin: RawOrigin, head: bytes) -> None:
            origin.transport.write(b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi")

        origin = raw_origin(self, odd)
        proxy = start_proxy(self)
        for endpoint in ("playlist.m3u8", "stream"):
            answer = await client(self).get(proxied_url(proxy, origin + "/x", endpoint=endpoint))
            body = await answer.content()
            self.assertEqual(answer.code, 502, endpoint)
            self.assertIn(b"invalid status 600", body)

    async def test_a_host_refused_by_the_endpoint_factory_is_a_403_on_every_path(self) -> None:
        def refuse(guard: Guard, uri: Any) -> Any:
            raise UpstreamRefused("upstream host 127.0.0.1 is denied")

        self.patch(Guard, "endpointForURI", refuse)
        proxy = start_proxy(self)
        # The fan-out path too: an opening that fails at once reaches its first viewer.
        for endpoint in ("playlist.m3u8", "stream", "mx"):
            url = proxied_url(proxy, "http://127.0.0.1:1/x.ts", endpoint=endpoint)
            answer = await client(self).get(url)
            self.assertEqual(answer.code, 403, endpoint)
            self.assertIn(b"denied", await answer.content())
            headed = await client(self).head(url)
            self.assertEqual(headed.code, 403, endpoint)


class CountingFactory(WrappingFactory):
    """The origin's listener: how many connections are open now, and at most."""

    def __init__(self, wrapped: Factory) -> None:
        super().__init__(wrapped)
        self.most = 0

    def registerProtocol(self, protocol: Any) -> None:
        super().registerProtocol(protocol)
        self.most = max(self.most, len(self.protocols))


class IdleBoundTests(TestCase):
    timeout = 120

    async def test_streams_differing_in_one_header_keep_few_idle_sockets(self) -> None:
        counting = CountingFactory(Site(Tree({"/live.m3u8": Body(PLAYLIST)})))
        origin = f"http://127.0.0.1:{listen_raw(self, counting)}"
        proxy = start_proxy(self, max_idle_upstream=16)
        http = client(self)
        for n in range(300):
            answer = await http.get(proxied_url(proxy, origin + "/live.m3u8", x_n=str(n)))
            self.assertEqual(answer.code, 200)
            await answer.content()
        await later(0.05)
        self.assertLessEqual(counting.most, 16 + 1)  # the bound, plus the one in flight
        self.assertLessEqual(len(counting.protocols), 16)

    async def test_cookies_set_by_the_thousand_stay_bounded(self) -> None:
        flood = b"".join(b"Set-Cookie: c%d=%s; Path=/\r\n" % (i, b"v" * 40) for i in range(3000))
        cookies = []

        def answer(origin: RawOrigin, head: bytes) -> None:
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"cookie:"):
                    cookies.append(line)
            if head.startswith(b"GET /a.m3u8 "):
                origin.transport.write(
                    b"HTTP/1.1 302 Found\r\nLocation: /b.m3u8\r\n"
                    + flood
                    + b"Content-Length: 0\r\n\r\n"
                )
                return
            origin.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\n"
                + flood
                + b"Content-Length: %d\r\n\r\n%s" % (len(PLAYLIST), PLAYLIST)
            )

        origin = raw_origin(self, answer)
        proxy = start_proxy(self)
        answer_ = await client(self).get(proxied_url(proxy, f"{origin}/a.m3u8"))
        self.assertEqual(answer_.code, 200)
        await answer_.content()
        (sent,) = cookies
        self.assertLessEqual(len(sent), 8 * 1024 + len(b"Cookie: "))
        self.assertIn(b"c2999=", sent)
