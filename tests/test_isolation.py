"""Nothing crosses between users or trust levels: shared caches, types, CORS, loops."""

from __future__ import annotations

import re
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from .memory import MemoryProxy, body_of, child, head_of, media_head

ENTRY = "http://o.example/live/i.m3u8"
KEY = "http://o.example/live/k.key"


def login_playlist() -> bytes:
    body = (
        b'#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n'
        b"#EXTINF:4,\ns1.ts\n#EXT-X-ENDLIST\n"
    )
    return (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.apple.mpegurl\r\n"
        b"Set-Cookie: session=alice-secret; Path=/\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def key_answer(extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n"
        + extra
        + b"Content-Length: 16\r\n\r\n"
        + b"K" * 16
    )


def _child_paths(playlist: bytes) -> list[str]:
    return re.findall(r"(/p/[^\s\"]+)", playlist.decode())


class SharedCacheTests(SynchronousTestCase):
    def _alice_fetches_her_key(self, proxy: MemoryProxy, key_extra: bytes = b"") -> None:
        alice, _ = proxy.get("/playlist.m3u8?url=" + quote(ENTRY, safe=""))
        proxy.answer(0, login_playlist())
        key_path = next(p for p in _child_paths(body_of(alice)) if p.endswith(".key"))
        alice_key, _ = proxy.get(key_path)
        upstream, _ = proxy.answer(1, key_answer(key_extra))
        self.assertIn(b"session=alice-secret", upstream.value(), "the jar cookie is sent")
        self.assertEqual(body_of(alice_key), b"K" * 16)

    def test_a_key_fetched_with_jar_cookies_is_not_served_to_a_request_without_them(
        self,
    ) -> None:
        proxy = MemoryProxy(self)
        self._alice_fetches_her_key(proxy)
        eve, _ = proxy.get("/stream?url=" + quote(KEY, safe=""))
        self.assertEqual(len(proxy.reactor.tcpClients), 3, "Eve's request goes upstream")
        refused = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        upstream, _ = proxy.answer(2, refused)
        self.assertNotIn(b"alice-secret", upstream.value())
        retry, _ = proxy.answer(3, refused)  # once more without the derived Referer/Origin
        self.assertNotIn(b"alice-secret", retry.value())
        self.assertTrue(eve.value().startswith(b"HTTP/1.1 403"))
        self.assertNotIn(b"K" * 16, eve.value())

    def test_a_viewer_never_joins_a_fetch_made_with_other_credentials(self) -> None:
        proxy = MemoryProxy(self)
        alice, _ = proxy.get("/playlist.m3u8?url=" + quote(ENTRY, safe=""))
        proxy.answer(0, login_playlist())
        key_path = next(p for p in _child_paths(body_of(alice)) if p.endswith(".key"))
        proxy.get(key_path)  # in flight, not answered yet
        proxy.get("/stream?url=" + quote(KEY, safe=""))
        self.assertEqual(len(proxy.reactor.tcpClients), 3, "two fetches, not one shared")

    def test_vary_star_and_authorization_without_public_are_never_shared(self) -> None:
        for extra, headers in [
            (b"Vary: *\r\n", ""),
            (b"", "&h_authorization=" + quote("Bearer t0k", safe="")),
        ]:
            proxy = MemoryProxy(self)
            url = "/stream?url=" + quote("http://o.example/s.ts", safe="") + headers
            first, _ = proxy.get(url)
            proxy.answer(0, media_head(4, extra) + b"abcd")
            self.assertEqual(body_of(first), b"abcd")
            self.assertNotIn(b"public", head_of(first)[1][b"cache-control"])
            proxy.get(url)
            self.assertEqual(len(proxy.reactor.tcpClients), 2, extra or headers)

    def test_authorized_object_marked_public_is_shared(self) -> None:
        proxy = MemoryProxy(self)
        auth = "&h_authorization=" + quote("Bearer t0k", safe="")
        url = "/stream?url=" + quote("http://o.example/s.ts", safe="") + auth
        proxy.get(url)
        proxy.answer(0, media_head(4, b"Cache-Control: public, max-age=60\r\n") + b"abcd")
        again, _ = proxy.get(url)
        self.assertEqual(body_of(again), b"abcd")
        self.assertEqual(len(proxy.reactor.tcpClients), 1)


class ProxiedBytesTests(SynchronousTestCase):
    def _answered(self, content_type: bytes, name: str = "x.ts") -> tuple[bytes, dict]:
        proxy = MemoryProxy(self)
        client, _ = proxy.get(child(f"http://o.example/{name}"))
        proxy.answer(
            0,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: "
            + content_type
            + b"\r\nContent-Length: 5\r\n\r\n<svg>",
        )
        return head_of(client)

    def test_html_script_and_svg_are_sent_as_octet_stream_sandboxed_and_nosniff(self) -> None:
        for upstream_type in [
            b"text/html",
            b"text/javascript",
            b"application/javascript",
            b"image/svg+xml",
            b"application/xhtml+xml",
            b"text/xml",
        ]:
            _, headers = self._answered(upstream_type)
            self.assertEqual(headers[b"content-type"], b"application/octet-stream", upstream_type)
            self.assertEqual(headers[b"x-content-type-options"], b"nosniff")
            self.assertEqual(headers[b"content-security-policy"], b"sandbox")

    def test_player_types_pass(self) -> None:
        for upstream_type in [b"video/mp2t", b"audio/aac", b"text/vtt", b"image/jpeg"]:
            _, headers = self._answered(upstream_type)
            self.assertEqual(headers[b"content-type"], upstream_type)

    def test_errors_and_playlists_are_sandboxed_too(self) -> None:
        proxy = MemoryProxy(self)
        forged, _ = proxy.get("/p/forged/path.x/x.ts")
        status, headers = head_of(forged)
        self.assertEqual(status, b"HTTP/1.1 403 Forbidden")
        self.assertEqual(headers[b"content-security-policy"], b"sandbox")

    def test_a_service_worker_registration_is_refused(self) -> None:
        proxy = MemoryProxy(self)
        client, _ = proxy.get(child("http://o.example/sw.js"), "Service-Worker: script\r\n")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 403"))
        self.assertEqual(len(proxy.reactor.tcpClients), 0, "nothing fetched")


class PageTests(SynchronousTestCase):
    def test_the_page_has_a_strict_policy_and_no_inline_script(self) -> None:
        proxy = MemoryProxy(self, hlsjs_url="https://cdn.example/hls.min.js")
        page, _ = proxy.get("/?url=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
        _, headers = head_of(page)
        policy = headers[b"content-security-policy"]
        self.assertIn(b"script-src 'self' https://cdn.example;", policy)
        self.assertIn(b"frame-ancestors 'none'", policy)
        self.assertNotIn(b"unsafe-inline", policy)
        body = body_of(page)
        self.assertEqual(re.findall(rb"<script(?![^>]*\ssrc=)[^>]*>", body), [])
        self.assertNotIn(b"alert(1)", body, "the page never reflects input")


class CorsTests(SynchronousTestCase):
    def test_only_configured_origins_may_read(self) -> None:
        proxy = MemoryProxy(self, cors_origins=("https://app.example",))
        allowed, _ = proxy.get("/health", "Origin: https://app.example\r\n")
        other, _ = proxy.get("/health", "Origin: https://evil.example\r\n")
        allowed_headers = head_of(allowed)[1]
        self.assertEqual(allowed_headers[b"access-control-allow-origin"], b"https://app.example")
        self.assertEqual(allowed_headers[b"vary"], b"Origin")
        self.assertNotIn(b"access-control-allow-origin", head_of(other)[1])

    def test_default_is_any_origin(self) -> None:
        proxy = MemoryProxy(self)
        client, _ = proxy.get("/health", "Origin: https://evil.example\r\n")
        self.assertEqual(head_of(client)[1][b"access-control-allow-origin"], b"*")


class LoopTests(SynchronousTestCase):
    def test_a_request_that_came_through_this_proxy_is_508_at_once(self) -> None:
        proxy = MemoryProxy(self)
        via = f"Via: 1.1 other, 1.1 hlsproxy-{proxy.parts.instance_id}\r\n"
        looped, _ = proxy.get(child("http://o.example/s.ts"), via)
        self.assertTrue(looped.value().startswith(b"HTTP/1.1 508"))
        self.assertEqual(len(proxy.reactor.tcpClients), 0)
        proxy.get(child("http://o.example/s.ts"), "Via: 1.1 hlsproxy-someone\r\n")
        self.assertEqual(len(proxy.reactor.tcpClients), 1, "another instance's id is fine")
