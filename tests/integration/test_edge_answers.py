"""The real proxy on loopback answers malformed, oversized and ambiguous requests at once,
with a status and one line of text, and keeps serving."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web import http

from .harness import client, connect, proxied_url, start_origin, start_proxy
from .origin import Body, Tree
from .test_hardening import PLAYLIST, still_serves


class EdgeAnswerTests(TestCase):
    def setUp(self) -> None:
        self.spooled: list[Any] = []

        def temporary_file(*args: Any, **kwargs: Any) -> BytesIO:
            self.spooled.append(args)
            return BytesIO()

        self.patch(http.tempfile, "TemporaryFile", temporary_file)
        self.origin, self.seen = start_origin(
            self, Tree({"/ok.m3u8": Body(PLAYLIST), "/seg.ts": Body(b"T" * 2000, b"video/mp2t")})
        )
        # A long header deadline: an answer that is not immediate would fail the test.
        self.proxy = start_proxy(self, client_header_timeout_s=60)

    async def exchange(self, data: bytes) -> bytes:
        connection = await connect(self, self.proxy, data)
        await connection.closed
        return connection.kept

    async def test_a_gigabyte_content_length_is_413_at_once_and_never_spooled(self) -> None:
        answer = await self.exchange(
            b"GET /health HTTP/1.1\r\nHost: p\r\nContent-Length: 1073741824\r\n\r\n" + b"B" * 8192
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertEqual(self.spooled, [])
        await still_serves(self, self.proxy, self.origin)

    async def test_line_and_header_faults_get_their_status(self) -> None:
        for request, status in [
            (b"GET /health?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: p\r\n\r\n", b"414"),
            (b"GET /health HTTP/1.1\r\nHost: p\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
            (b"GET /health HTTP/1.1\nHost: p\n\n", b"400"),
            (b"GET /health HTTP/1.1\r\nHost: p\r\nX-A: 1\r\n 2\r\n\r\n", b"400"),
        ]:
            answer = await self.exchange(request)
            self.assertTrue(answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:80])
            self.assertTrue(answer.endswith(b"\n"), answer[-80:])
        await still_serves(self, self.proxy, self.origin)

    async def test_a_url_hidden_in_a_header_parameter_name_is_400_and_not_fetched(
        self,
    ) -> None:
        query = f"h_x-url={self.origin}/seg.ts&url={self.origin}/ok.m3u8"
        response = await client(self).get(f"{self.proxy}/playlist.m3u8?{query}")
        self.assertEqual(response.code, 400)
        self.assertIn(b"second url", await response.content())
        self.assertEqual(self.seen.paths(), [])

    async def test_header_values_not_latin1_are_400_and_idn_referers_go_idna(self) -> None:
        http_client = client(self)
        url = proxied_url(self.proxy, self.origin + "/ok.m3u8", user_agent="Mozilla™")
        response = await http_client.get(url)
        self.assertEqual(response.code, 400)
        self.assertIn(b"Latin-1", await response.content())
        url = proxied_url(self.proxy, self.origin + "/ok.m3u8", referer="https://bücher.example/")
        response = await http_client.get(url)
        self.assertEqual(response.code, 200)
        await response.content()
        self.assertEqual(self.seen.seen[-1].headers["referer"], "https://xn--bcher-kva.example/")
