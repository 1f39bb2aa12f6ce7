"""Entry query parsing and upstream URL normalisation."""

from urllib.parse import parse_qsl, urlsplit

from hypothesis import given as hypothesis_given
from hypothesis import strategies as st
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
            "http://cdn.example/a\r\nX: y": "control",
            "http://cdn.example:99999/": "not a valid URL",
            "/relative.m3u8": "http or https",
        }
        for given, reason in cases.items():
            error = self.assertRaises(ProxyError, normalize_upstream_url, given)
            self.assertEqual(error.status, 400, given)
            self.assertIn(reason, error.message, given)

    def test_userinfo_is_kept_escaped_where_needed(self) -> None:
        cases = [
            ("http://user:pass@cdn.example/live.m3u8", "http://user:pass@cdn.example/live.m3u8"),
            ("http://us%40er:p@ss@cdn.example/a", "http://us%40er:p%40ss@cdn.example/a"),
            ("https://u@bücher.example:8443/a", "https://u@xn--bcher-kva.example:8443/a"),
            ("http://@cdn.example/a", "http://cdn.example/a"),
            ("http://:@cdn.example/a", "http://cdn.example/a"),
        ]
        for given_url, expected in cases:
            self.assertEqual(normalize_upstream_url(given_url), expected, given_url)

    def test_userinfo_reaches_the_entry_url(self) -> None:
        entry = parse_entry_query("url=http%3A%2F%2Fuser%3Apass%40cdn.example%2Flive.m3u8")
        self.assertEqual(entry.url, "http://user:pass@cdn.example/live.m3u8")


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

    def test_raw_paste_gives_upstream_names_ending_in_url_back(self) -> None:
        entry = parse_entry_query("url=http://cdn.example/a.m3u8?x=1&callback_url=y&bypass=0")
        self.assertEqual(entry.url, "http://cdn.example/a.m3u8?x=1&callback_url=y")
        self.assertEqual(entry.switches, {"bypass": "0"})

    def test_raw_paste_without_a_query_gets_one_and_keeps_segments_as_written(self) -> None:
        entry = parse_entry_query("url=https://cdn.example/a.m3u8&token=a%2Bb&flag&e=")
        self.assertEqual(entry.url, "https://cdn.example/a.m3u8?token=a%2Bb&flag&e=")

    def test_raw_utf8_bytes_in_the_query_are_read_as_utf8(self) -> None:
        # resources.py hands the query over as Latin-1, one character per byte.
        query = "url=http://cdn.example/é.m3u8".encode().decode("latin-1")
        self.assertEqual(parse_entry_query(query).url, "http://cdn.example/%C3%A9.m3u8")

    def test_a_second_url_parameter_is_400(self) -> None:
        for query in (
            "url=http%3A%2F%2Fa.example%2F&url=http%3A%2F%2Fb.example%2F",
            "url=http://a.example/&url=http://b.example/",
            "url=http://a.example/x.m3u8?t=1&url=http://b.example/",
            "%75rl=http%3A%2F%2Fb.example%2F&url=http%3A%2F%2Fa.example%2F",
        ):
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual((error.status, error.message), (400, "more than one url parameter"))

    def test_a_url_hidden_in_another_parameter_name_is_400(self) -> None:
        for query in (
            "h_x-url=http://b.example/b.m3u8&url=http://a.example/a.m3u8",  # fetched b before
            "h_x-url=http%3A%2F%2Fb.example%2F&url=http%3A%2F%2Fa.example%2F",
            "URL=http://b.example/&url=http%3A%2F%2Fa.example%2F",
            "redirect_url=http://b.example/&url=http://a.example/a.m3u8",
            "url=http%3A%2F%2Fa.example%2F&h_x-url=http://b.example/",
            "url=http://a.example/a.m3u8?t=1&h_x-url=http://b.example/",
        ):
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual(error.status, 400, query)
            self.assertIn("second url", error.message)

    def test_a_raw_url_whose_host_reads_differently_is_400(self) -> None:
        for query in ("url=http://a+b.example/x", "url=http://%65vil.example/x"):
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual(error.status, 400, query)
            self.assertIn("ambiguous", error.message)

    @hypothesis_given(
        st.lists(
            st.sampled_from(
                ["url=", "url=http://", "a.example", "b.example", "%2F", "%3A", "/", "?",
                 "&", "=", "+", "%26", "h_x-", "h_referer=", "url", "callback_", "x",
                 "%75rl=", "@", ":", "%40", "http%3A%2F%2F"]
            ),
            max_size=14,
        )
    )  # fmt: skip
    def test_the_host_fetched_is_the_host_parse_qsl_reads(self, parts: list[str]) -> None:
        query = "".join(parts)
        try:
            entry = parse_entry_query(query)
        except ProxyError:
            return
        [seen] = [value for key, value in parse_qsl(query, keep_blank_values=True) if key == "url"]
        self.assertEqual(
            urlsplit(entry.url).hostname, urlsplit(normalize_upstream_url(seen)).hostname
        )

    def test_header_values_that_are_not_latin1_are_400(self) -> None:
        for query in (
            "url=http%3A%2F%2Fa%2F&h_user-agent=Mozilla%E2%84%A2",
            "url=http%3A%2F%2Fa%2F&h_user-agent=Mozilla™",
            "url=http%3A%2F%2Fa%2F&h_x-note=%FF%FE",  # not UTF-8: decoded with U+FFFD
        ):
            error = self.assertRaises(ProxyError, parse_entry_query, query)
            self.assertEqual(error.status, 400, query)
            self.assertIn("Latin-1", error.message)
        entry = parse_entry_query("url=http%3A%2F%2Fa%2F&h_x-note=caf%C3%A9")
        self.assertEqual(entry.headers, {"x-note": "café"})

    def test_referer_and_origin_hosts_are_sent_in_idna_form(self) -> None:
        cases = [
            ("h_referer=https://bücher.example/", {"referer": "https://xn--bcher-kva.example/"}),
            ("h_referer=https%3A%2F%2Fb%C3%BCcher.example%2F%C3%B6%3Fq%3D%C3%BC",
             {"referer": "https://xn--bcher-kva.example/%C3%B6?q=%C3%BC"}),
            ("h_origin=https://bücher.example:8443",
             {"origin": "https://xn--bcher-kva.example:8443"}),
        ]  # fmt: skip
        for params, headers in cases:
            entry = parse_entry_query("url=http%3A%2F%2Fa%2F&" + params)
            self.assertEqual(entry.headers, headers, params)

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
