"""special_url_fixup against what the WHATWG URL standard says (web-platform-tests
url/resources/urltestdata.json, where the case is there; the spec's states otherwise)."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.whatwg import special_url_fixup

BASE = "http://example.org/foo/bar"

# (input, base, href) as urltestdata.json has them (fragments included).
URLTESTDATA = [
    ("http:\\\\foo.com\\", BASE, "http://foo.com/"),
    ("http:\\\\a\\b:c\\d@foo.com\\", BASE, "http://a/b:c/d@foo.com/"),
    ("\\x", BASE, "http://example.org/x"),
    ("\\\\x\\hello", BASE, "http://x/hello"),
    ("http:/example.com/", BASE, "http://example.org/example.com/"),
    ("https:/example.com/", BASE, "https://example.com/"),
    ("ftp:/example.com/", BASE, "ftp://example.com/"),
    ("ws:/example.com/", BASE, "ws://example.com/"),
    ("wss:/example.com/", BASE, "wss://example.com/"),
    ("http:example.com/", BASE, "http://example.org/foo/example.com/"),
    ("https:example.com/", BASE, "https://example.com/"),
    ("ftp:example.com/", BASE, "ftp://example.com/"),
    ("http:foo.com", BASE, "http://example.org/foo/foo.com"),
    ("\t   :foo.com   \n", BASE, "http://example.org/foo/:foo.com"),
    (" foo.com  ", BASE, "http://example.org/foo/foo.com"),
    (":foo.com\\", BASE, "http://example.org/foo/:foo.com/"),
    (":\\", BASE, "http://example.org/foo/:/"),
    ("", BASE, "http://example.org/foo/bar"),
    ("  \t", BASE, "http://example.org/foo/bar"),
    ("#/", BASE, "http://example.org/foo/bar#/"),
    ("#\\", BASE, "http://example.org/foo/bar#\\"),
    ("?", BASE, "http://example.org/foo/bar?"),
    ("/", BASE, "http://example.org/"),
    ("/:23", BASE, "http://example.org/:23"),
    ("::23", BASE, "http://example.org/foo/::23"),
    ("//foo/bar", BASE, "http://foo/bar"),
    ("http::@c:29", BASE, "http://example.org/foo/:@c:29"),
    ("http://a:b@c:29/d", BASE, "http://a:b@c:29/d"),
    ("http://foo.com:b@d/", BASE, "http://foo.com:b@d/"),
    ("http://foo.com/\\@", BASE, "http://foo.com//@"),
    ("http://f:/c", BASE, "http://f/c"),
    ("http://f:0/c", BASE, "http://f:0/c"),
    ("http://f:00000000000000000000080/c", BASE, "http://f/c"),
    ("http://f:\n/c", BASE, "http://f/c"),
    ("http://example\t.\norg", BASE, "http://example.org/"),
    ("http://user:pass@foo:21/bar;par?b#c", BASE, "http://user:pass@foo:21/bar;par?b#c"),
    ("https://test:@test", BASE, "https://test@test/"),
    ("https://:@test", BASE, "https://test/"),
    ("http://[2001::1]:80", BASE, "http://[2001::1]/"),
    ("http://foo/path;a??e#f#g", BASE, "http://foo/path;a??e#f#g"),
    ("http://foo/abcd#foo?bar", BASE, "http://foo/abcd#foo?bar"),
    ("http:[61:27]/:foo", BASE, "http://example.org/foo/[61:27]/:foo"),
    ("/a/b/c", BASE, "http://example.org/a/b/c"),
    ("/a%2fc", BASE, "http://example.org/a%2fc"),
    ("http://example.com/foo/.", BASE, "http://example.com/foo/"),
    ("http://example.com/foo/bar/..", BASE, "http://example.com/foo/"),
    ("http://example.com/foo/..bar", BASE, "http://example.com/foo/..bar"),
    ("http://example.com/foo/bar/../ton/../../a", BASE, "http://example.com/a"),
    ("http://example.com/foo/../../../ton", BASE, "http://example.com/ton"),
    ("http://example.com/foo/%2e", BASE, "http://example.com/foo/"),
    ("http://example.com/foo/%2e%2", BASE, "http://example.com/foo/%2e%2"),
    ("http://example.com/foo/%2e./%2e%2e/.%2e/%2e.bar", BASE, "http://example.com/%2e.bar"),
    ("http://example.com////../..", BASE, "http://example.com//"),
    ("http://example.com/foo/bar//../..", BASE, "http://example.com/foo/"),
    ("http://example.com/foo/bar//..", BASE, "http://example.com/foo/bar/"),
    ("http://example.com\\\\foo\\\\bar", BASE, "http://example.com//foo//bar"),
    ("http://www/foo/%2E/html", BASE, "http://www/foo/html"),
    ("http://%25DOMAIN:foobar@foodomain.com/", BASE, "http://%25DOMAIN:foobar@foodomain.com/"),
    ("http:\\\\www.google.com\\foo", "about:blank", "http://www.google.com/foo"),
]

# Playlist shapes, by the same states (base: the playlist's own URL).
PLAYLIST = "https://cdn.example/live/index.m3u8"
PLAYLIST_CASES = [
    ("http:\\\\evil.example\\x.ts", PLAYLIST, "http://evil.example/x.ts"),
    ("https:\\\\evil.example\\x.ts", PLAYLIST, "https://evil.example/x.ts"),
    ("https:/evil.example/x.ts", PLAYLIST, "https://cdn.example/evil.example/x.ts"),
    ("http:/evil.example/x.ts", PLAYLIST, "http://evil.example/x.ts"),
    ("https:evil.example/x.ts", PLAYLIST, "https://cdn.example/live/evil.example/x.ts"),
    ("http:evil.example/x.ts", PLAYLIST, "http://evil.example/x.ts"),
    ("HTTP:EVIL.example:80/x.ts", PLAYLIST, "http://evil.example/x.ts"),
    ("\\\\evil.example\\x.ts", PLAYLIST, "https://evil.example/x.ts"),
    ("/\\evil.example/x.ts", PLAYLIST, "https://evil.example/x.ts"),
    ("https:///evil.example/x.ts", PLAYLIST, "https://evil.example/x.ts"),
    ("seg\\1.ts?a=\\b", PLAYLIST, "https://cdn.example/live/seg/1.ts?a=\\b"),
    ("../x.ts", PLAYLIST, "https://cdn.example/x.ts"),
    ("x.ts", "https://u:p@cdn.example/live/i.m3u8", "https://u:p@cdn.example/live/x.ts"),
]

UNCHANGED = ["skd://key-id", "data:text/plain,x", "file:///etc/passwd", "madeupscheme:/x"]
FAILURES = ["http://f:b/c", "http://f:999999/c", "http://user:pass@/", "https:", "https:///"]


class SpecialUrlFixupTests(SynchronousTestCase):
    def test_urltestdata_cases(self) -> None:
        for reference, base, href in URLTESTDATA:
            if base == "about:blank":
                base = BASE  # an absolute reference: any special base reads it the same
            self.assertEqual(special_url_fixup(reference, base), href, reference)

    def test_playlist_references_resolve_as_a_browser_resolves_them(self) -> None:
        for reference, base, expected in PLAYLIST_CASES:
            self.assertEqual(special_url_fixup(reference, base), expected, reference)

    def test_non_special_references_are_left_alone(self) -> None:
        for reference in UNCHANGED:
            self.assertEqual(special_url_fixup(reference, PLAYLIST), reference)

    def test_what_the_browser_refuses_is_a_value_error(self) -> None:
        for reference in FAILURES:
            self.assertRaises(ValueError, special_url_fixup, reference, BASE)
