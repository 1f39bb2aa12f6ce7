"""Entry query parsing and upstream URL normalisation."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.errors import ProxyError
from hls_proxy.urls import normalize_upstream_url, parse_entry_query


class NormalizeTests(SynchronousTestCase):
    def test_valid_urls_pass_with_unsafe_characters_encoded(self) -> None:
        cases = [
            ("http://cdn.example/a.m3u8", "http://cdn.example/a.m3u8"),
            ("HTTPS://cdn.example:8443/a b.m3u8?t=1", "https://cdn.example:8443/a%20b.m3u8?t=1"),
            ("http://cdn.example/é.m3u8", "http://cdn.example/%C3%A9.m3u8"),
            ("http://cdn.example/a.m3u8?x=%2F&y=+", "http://cdn.example/a.m3u8?x=%2F&y=+"),
            ("http://cdn.example/a.m3u8#frag", "http://cdn.example/a.m3u8"),
            ("http://[::1]:8080/a", "http://[::1]:8080/a"),
            ("http://bücher.example/a", "http://xn--bcher-kva.example/a"),
        ]
        for given, expected in cases:
            self.assertEqual(normalize_upstream_url(given), expected, given)

    def test_invalid_urls_are_400_with_a_reason(self) -> None:
        cases = {
            "": "missing",
            "ftp://cdn.example/a": "http or https",
            "file:///etc/passwd": "http or https",
            "gopher://x/": "http or https",
            "javascript:alert(1)": "http or https",
            "http:///nohost": "no host",
            "http://user:pass@cdn.example/a": "credentials",
            "http://cdn.example/a\r\nX: y": "control",
            "http://cdn.example:99999/": "not a valid URL",
            "/relative.m3u8": "http or https",
        }
        for given, reason in cases.items():
            error = self.assertRaises(ProxyError, normalize_upstream_url, given)
            self.assertEqual(error.status, 400, given)
            self.assertIn(reason, error.message, given)


class EntryQueryTests(SynchronousTestCase):
    def test_encoded_url_and_headers(self) -> None:
        entry = parse_entry_query(
            "url=http%3A%2F%2Fcdn.example%2Fa.m3u8%3Ftoken%3D1%26e%3D2"
            "&h_referer=https%3A%2F%2Fsite.example%2F&h_User-Agent=UA%201"
        )
        self.assertEqual(entry.url, "http://cdn.example/a.m3u8?token=1&e=2")
        self.assertEqual(entry.headers, {"referer": "https://site.example/", "user-agent": "UA 1"})

    def test_raw_pasted_url_keeps_its_own_query(self) -> None:
        entry = parse_entry_query(
            "url=http://cdn.example/a.m3u8?token=a+b&e=2&h_referer=http%3A%2F%2Fs%2F&sig=x"
        )
        self.assertEqual(entry.url, "http://cdn.example/a.m3u8?token=a+b&e=2&sig=x")
        self.assertEqual(entry.headers, {"referer": "http://s/"})

    def test_missing_url(self) -> None:
        error = self.assertRaises(ProxyError, parse_entry_query, "h_referer=x")
        self.assertEqual((error.status, error.message), (400, "missing url parameter"))

    def test_header_injection_is_refused(self) -> None:
        for query in (
            "url=http%3A%2F%2Fa%2F&h_referer=x%0D%0AHost%3A%20evil",
            "url=http%3A%2F%2Fa%2F&h_x=a%00b",
            "url=http%3A%2F%2Fa%2F&h_bad%20name=1",
            "url=http%3A%2F%2Fa%2F&h_=1",
        ):
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual(error.status, 400, query)


class LimitTests(SynchronousTestCase):
    def test_sizes_and_counts(self) -> None:
        base = "url=http%3A%2F%2Fcdn.example%2Fa.m3u8"
        cases = [
            ("url=http%3A%2F%2Fa%2F" + "x" * 17000, 414),
            (base + "".join(f"&h_x{i}=v" for i in range(33)), 431),
            (base + "&h_cookie=" + "c" * 5000, 431),
            (base + "".join(f"&h_x{i}=" + "v" * 4000 for i in range(5)), 431),
        ]
        for query, status in cases:
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual(error.status, status)
        self.assertEqual(len(parse_entry_query(base + "&h_a=1&h_b=2").headers), 2)
