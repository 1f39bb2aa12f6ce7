"""Identity and token carry-over rules (bypass.py): pure functions, tables of cases."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.bypass import carries_tokens, carry_tokens, derived_identity, entry_stream
from hls_proxy.playlist import UriKind
from hls_proxy.signing import Signer
from hls_proxy.urls import EntryRequest, parse_entry_query


class TokenCarryOverTests(SynchronousTestCase):
    def test_table(self) -> None:
        akamai = "https://cdn.example/live/master.m3u8?hdnts=exp%3D9~acl%3D%2F*~hmac%3Dab&x=1"
        cloudfront = "https://d1.example/v/index.m3u8?Policy=eyJ&Signature=abc~&Key-Pair-Id=K2"
        s3 = "https://b.example/i.m3u8?X-Amz-Algorithm=A&X-Amz-Signature=s&X-Amz-Date=d"
        cases = [
            (akamai, "https://cdn.example/live/v1/i.m3u8",
             "https://cdn.example/live/v1/i.m3u8?hdnts=exp%3D9~acl%3D%2F*~hmac%3Dab"),
            (akamai, "https://cdn.example/live/s.ts?n=1",
             "https://cdn.example/live/s.ts?n=1&hdnts=exp%3D9~acl%3D%2F*~hmac%3Dab"),
            (akamai, "https://cdn.example/live/s.ts?hdnts=own", "https://cdn.example/live/s.ts?hdnts=own"),
            (akamai, "https://other.example/s.ts", "https://other.example/s.ts"),
            (cloudfront, "https://d1.example/v/s1.ts",
             "https://d1.example/v/s1.ts?Policy=eyJ&Signature=abc~&Key-Pair-Id=K2"),
            (s3, "https://b.example/s.ts",
             "https://b.example/s.ts?X-Amz-Algorithm=A&X-Amz-Signature=s&X-Amz-Date=d"),
            ("https://a.example/i.m3u8?quality=hd", "https://a.example/s.ts", "https://a.example/s.ts"),
            ("https://a.example/i.m3u8?token=t", "https://a.example:8443/s.ts", "https://a.example:8443/s.ts"),
        ]  # fmt: skip
        for parent, child, expected in cases:
            self.assertEqual(carry_tokens(parent, child), expected, (parent, child))


class IdentityTests(SynchronousTestCase):
    def test_derived_from_the_entry_origin_and_explicit_headers_win(self) -> None:
        self.assertEqual(
            derived_identity("https://cdn.example:8443/a/b.m3u8?t=1", {}),
            {
                "referer": "https://cdn.example:8443/",
                "origin": "https://cdn.example:8443",
                "accept": "*/*",
                "accept-language": "en-US,en;q=0.9",
            },
        )
        only_browser = derived_identity("https://cdn.example/a.m3u8", {"referer": "https://site/"})
        self.assertNotIn("referer", only_browser)
        self.assertNotIn("origin", only_browser)

    def test_a_derived_identity_never_carries_the_entry_urls_userinfo(self) -> None:
        entry = parse_entry_query("url=https%3A%2F%2Fuser%3Apass%40cdn.example%2Flive.m3u8")
        derived = derived_identity(entry.url, {})
        self.assertEqual(
            (derived["referer"], derived["origin"]), ("https://cdn.example/", "https://cdn.example")
        )
        headers = dict(entry_stream(entry, bypass_by_default=True).headers)
        self.assertFalse(any("pass" in value for value in headers.values()), headers)

    def test_entry_stream_switches_are_signed_into_the_stream(self) -> None:
        url = "https://cdn.example/a.m3u8?token=1"
        on = entry_stream(EntryRequest(url, {}), bypass_by_default=True)
        self.assertEqual(dict(on.headers)["origin"], "https://cdn.example")
        self.assertEqual(on.option("derived"), "origin,referer")
        self.assertFalse(carries_tokens(on, url))  # auto: a candidate, not appended
        self.assertTrue(
            carries_tokens(entry_stream(EntryRequest(url, {}, {"inherit_query": "1"}), True), url)
        )
        off = entry_stream(EntryRequest(url, {}, {"bypass": "0", "inherit_query": "0"}), True)
        self.assertNotIn("referer", dict(off.headers))
        self.assertFalse(carries_tokens(off, url))
        self.assertNotEqual(on.stream_id, off.stream_id)
        default_off = entry_stream(EntryRequest(url, {}), bypass_by_default=False)
        self.assertNotIn("origin", dict(default_off.headers))
        signer = Signer(b"k")
        path = signer.child_path(signer.stream_part(off), "https://cdn.example/s.ts", UriKind.MEDIA)
        self.assertEqual(signer.verify(path[3:].split("/")).stream, off)
