"""Exposed to the internet: api key, client limits, slowloris, bugs, faults, draining.

Every fault case checks the answer the client gets, then that the proxy still serves a
normal stream; trial's dirty-reactor check fails a test that leaks a connection or a
delayed call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.application.internet import TCPServer
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.server import NOT_DONE_YET, Request

from hls_proxy.config import Config
from hls_proxy.service import ProxyService
from hls_proxy.serving import Dispatcher as Proxy

from .harness import (
    client,
    connect,
    http_get,
    proxied_url,
    proxy_parts,
    reactor,
    start_origin,
    start_proxy,
    until,
    within,
)
from .origin import Body, Redirect, Scripted, Tree

PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts\n#EXT-X-ENDLIST\n"


def normal_origin(case: TestCase, extra: dict[str, Any] | None = None) -> str:
    resources: dict[str, Any] = {
        "/ok.m3u8": Body(PLAYLIST),
        "/seg.ts": Body(b"T" * 2000, b"video/mp2t"),
    }
    resources.update(extra or {})
    origin, _ = start_origin(case, Tree(resources))
    return origin


async def still_serves(case: TestCase, proxy: str, origin: str) -> None:
    """/health is 200 and a normal stream plays to its segment."""
    http = client(case)
    health = await http.get(proxy + "/health")
    case.assertEqual(health.code, 200)
    await health.content()
    playlist = await (await http.get(proxied_url(proxy, origin + "/ok.m3u8"))).content()
    [segment] = re.findall(rb"^/p/\S+$", playlist, re.M)
    case.assertEqual(await (await http.get(proxy + segment.decode())).content(), b"T" * 2000)


class ApiKeyTests(TestCase):
    async def test_entry_points_need_the_key_children_do_not_and_never_carry_it(self) -> None:
        origin = normal_origin(self)
        proxy = start_proxy(self, api_key="s3cret-key")
        http = client(self)
        url = proxied_url(proxy, origin + "/ok.m3u8")
        refused = await http.get(url)
        self.assertEqual((refused.code, await refused.content()),
                         (401, b"missing or wrong api key (api_key= or X-API-Key)\n"))  # fmt: skip
        wrong = await http.get(url + "&api_key=nope")
        self.assertEqual(wrong.code, 401)
        await wrong.content()
        by_header = await http.get(url, headers={"X-API-Key": "s3cret-key"})
        self.assertEqual(by_header.code, 200)
        await by_header.content()
        playlist = await (await http.get(url + "&api_key=s3cret-key")).content()
        self.assertNotIn(b"s3cret-key", playlist)
        [segment] = re.findall(rb"^/p/\S+$", playlist, re.M)
        child = await http.get(proxy + segment.decode())
        self.assertEqual(await child.content(), b"T" * 2000)


class ClientLimitTests(TestCase):
    async def test_beyond_max_clients_a_503_with_retry_after(self) -> None:
        proxy = start_proxy(self, max_clients=2)
        held = [await connect(self, proxy), await connect(self, proxy)]
        third = await connect(self, proxy)
        await within(5, third.closed, "the third connection closed")
        self.assertTrue(third.kept.startswith(b"HTTP/1.1 503 "), third.kept)
        self.assertIn(b"Retry-After: 2", third.kept)
        for connection in held:
            connection.transport.loseConnection()  # type: ignore[union-attr]
        site = proxy_parts(self, proxy).site
        await until(lambda: site.open_connections == 0, "the held connections gone")
        health = await client(self).get(proxy + "/health")
        self.assertEqual(health.code, 200)
        await health.content()

    async def test_500_slowloris_connections_are_dropped_and_a_normal_request_is_served(
        self,
    ) -> None:
        origin = normal_origin(self)
        proxy = start_proxy(self, client_header_timeout_s=2)
        # One after another: 500 at once would overflow the listen backlog and leave
        # the kernel retrying SYNs for a minute.
        slow = [await connect(self, proxy, b"GET /health HTTP/1.1\r\nX-a: ") for _ in range(500)]
        await still_serves(self, proxy, origin)  # while they hang
        await within(10, gatherResults([c.closed for c in slow]), "slowloris dropped")
        self.assertTrue(all(connection.received == 0 for connection in slow))
        await still_serves(self, proxy, origin)


class BugTests(TestCase):
    async def test_a_bug_answers_500_is_logged_and_the_proxy_keeps_serving(self) -> None:
        origin = normal_origin(self)
        proxy = start_proxy(self)
        original = Proxy.serve
        calls = []

        async def broken(self_: Proxy, *args: Any, **kwargs: Any) -> None:
            if not calls:
                calls.append(1)
                raise ZeroDivisionError("a bug")
            await original(self_, *args, **kwargs)

        self.patch(Proxy, "serve", broken)
        answer = await client(self).get(proxied_url(proxy, origin + "/ok.m3u8"))
        self.assertEqual((answer.code, await answer.content()), (500, b"internal error (logged)\n"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        await still_serves(self, proxy, origin)


def _stall_after(first: bytes) -> Callable[[Request], int]:
    def handler(request: Request) -> int:
        request.setHeader(b"content-type", b"video/mp2t")
        request.setHeader(b"content-length", b"100000")
        request.write(first)
        return NOT_DONE_YET  # and never another byte

    return handler


def _endless_chunks(request: Request) -> int:
    request.setHeader(b"content-type", b"application/vnd.apple.mpegurl")
    request.write(b"#EXTM3U\n")
    state = {"open": True}
    request.notifyFinish().addBoth(lambda _: state.update(open=False))

    def more() -> None:
        if state["open"]:
            request.write(b"#EXT-X-JUNK:" + b"x" * 60000 + b"\n")
            reactor.callLater(0.001, more)

    more()
    return NOT_DONE_YET


class FaultTests(TestCase):
    timeout = 60

    async def test_faults_get_clear_answers_and_the_proxy_stays_healthy(self) -> None:
        # 21 redirects: one more than the 20 the Fetch standard (and the proxy) follows.
        chain = {f"/hop{i}": Redirect(f"/hop{i + 1}".encode()) for i in range(21)}
        chain["/hop21"] = Body(PLAYLIST)
        origin = normal_origin(
            self,
            {
                "/stall.ts": Scripted(_stall_after(b"\x47" * 1000)),
                "/endless.m3u8": Scripted(_endless_chunks),
                "/garbage.m3u8": Body(bytes(range(256)) * 10, b"application/octet-stream"),
                "/empty.m3u8": Body(b""),
                **chain,
            },
        )
        proxy = start_proxy(self, body_idle_timeout_s=0.5, max_playlist_bytes=1024 * 1024)
        http = client(self)
        cases = [
            ("/hop0", 502, b"too many upstream redirects"),
            ("/endless.m3u8", 502, b"playlist larger than 1048576 bytes"),
            ("/garbage.m3u8", 502, b"#EXTM3U missing"),
            ("/empty.m3u8", 502, b"#EXTM3U missing"),
            ("/nothing.m3u8", 404, b"upstream answered 404"),
        ]
        for path, status, message in cases:
            answer = await http.get(proxied_url(proxy, origin + path))
            body = await answer.content()
            self.assertEqual(answer.code, status, path)
            self.assertIn(message, body, path)
            await still_serves(self, proxy, origin)
        # A segment that stalls after its first bytes: the client's response is aborted
        # after the idle timeout, never ended as if complete.
        stalled = await connect(
            self, proxy, http_get(proxied_url("", origin + "/stall.ts", endpoint="stream"))
        )
        await within(5, stalled.closed, "the stalled segment's response aborted")
        self.assertIn(b"200 OK", stalled.head)
        self.assertLess(stalled.body_bytes, 100000)
        await still_serves(self, proxy, origin)


class DrainTests(TestCase):
    async def test_sigterm_drains_in_flight_responses_and_health_says_so(self) -> None:
        arrived: Deferred[Request] = Deferred()

        def slow(request: Request) -> int:
            arrived.callback(request)
            return NOT_DONE_YET

        origin, _ = start_origin(self, Tree({"/slow.ts": Scripted(slow)}))
        ports: list[Any] = []

        def listen(site: Any) -> TCPServer:
            server = TCPServer(0, site, interface="127.0.0.1")
            ports.append(server)
            return server

        config = Config(secret=b"k", allow_private=True, shutdown_timeout_s=5)
        service = ProxyService(config, reactor, listen=listen)
        service.startService()
        proxy = f"http://127.0.0.1:{ports[0]._port.getHost().port}"
        http = client(self)
        in_flight = http.get(proxied_url(proxy, origin + "/slow.ts", endpoint="stream"))
        pending = await within(5, arrived, "the request at the origin")
        health_connection = await connect(self, proxy)
        stopped = service.stopService()
        # Asked on a connection opened before the stop, /health answers while draining.
        health_connection.transport.write(http_get("/health"))  # type: ignore[union-attr]
        await within(5, health_connection.received_at_least(12), "/health while draining")
        self.assertTrue(health_connection.kept.startswith(b"HTTP/1.1 503 "))
        self.assertFalse(stopped.called)  # waiting for the in-flight response
        assert service.site is not None
        self.assertTrue(service.site.draining)
        pending.setHeader(b"content-type", b"video/mp2t")
        pending.write(b"done")
        pending.finish()
        answer = await in_flight
        self.assertEqual(await answer.content(), b"done")
        await within(5, stopped, "the service stopped")
        health_connection.transport.loseConnection()  # type: ignore[union-attr]
        await within(5, health_connection.closed, "the /health connection closed")


class HeaderDeadlineTests(TestCase):
    async def test_a_response_slower_than_the_header_deadline_is_not_cut(self) -> None:
        def late(request: Request) -> int:
            def answer() -> None:
                request.setHeader(b"content-type", b"video/mp2t")
                request.write(b"late but whole")
                request.finish()

            reactor.callLater(0.6, answer)
            return NOT_DONE_YET

        origin, _ = start_origin(self, Tree({"/late.ts": Scripted(late)}))
        proxy = start_proxy(self, client_header_timeout_s=0.3)
        answer = await client(self).get(proxied_url(proxy, origin + "/late.ts", endpoint="stream"))
        self.assertEqual(await answer.content(), b"late but whole")


class UpstreamCapTests(TestCase):
    async def test_a_stream_has_at_most_n_upstream_requests_open(self) -> None:
        held: list[Request] = []

        def hang(request: Request) -> int:  # headers now, the body never (holds a slot)
            held.append(request)
            request.setHeader(b"content-type", b"video/mp2t")
            request.setHeader(b"content-length", b"2")
            request.write(b"x")
            return NOT_DONE_YET

        playlist = b"#EXTM3U\n" + b"".join(b"#EXTINF:1,\ns%d.ts\n" % i for i in range(3))
        origin, _ = start_origin(
            self,
            Tree({"/l.m3u8": Body(playlist), **{f"/s{i}.ts": Scripted(hang) for i in range(3)}}),
        )
        proxy = start_proxy(self, max_upstream_per_stream=2, upstream_timeout_s=0.5)
        http = client(self)
        body = await (await http.get(proxied_url(proxy, origin + "/l.m3u8"))).content()
        children = re.findall(rb"^/p/\S+$", body, re.M)
        # One after another, so which request waits is certain.
        first = await http.get(proxy + children[0].decode())
        second = await http.get(proxy + children[1].decode())
        third = await http.get(proxy + children[2].decode())
        self.assertEqual((third.code, await third.content()),
                         (503, b"too many upstream requests for this stream\n"))  # fmt: skip
        self.assertEqual(len(held), 2)
        for request in held:
            request.write(b"y")
            request.finish()
        for answer in (first, second):
            self.assertEqual(await answer.content(), b"xy")
