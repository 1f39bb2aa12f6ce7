"""Signing: candidate tokens and disguised segment names sealed into child URLs, and
URLs minted before either existed still verifying."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind
from hls_proxy.signing import (
    BadSignature,
    ChildTarget,
    Signer,
    StreamSpec,
    child_file_name,
    segment_extension,
)

PROXY = "http://proxy.test"
SPEC = StreamSpec("compatStream", (("referer", "https://cdn.example/"),), (("derived", "referer"),))
ENTRY = "https://cdn.example/live/index.m3u8?token=T1"
HDNTS = "hdnts=exp=1764675600~acl=/hls/live/*~hmac=0a1b2c3d4e5f60718293a4b5c6d7e8f9"
# Minted by the signing code of 4e03b13 (before carry and disguises), secret below.
OLD_SECRET = b"compat-secret"
OLD_URLS = [
    (
        "/p/2e8qSmTTJhZpmXhZrH1EzUWAU6zvWsUaUgidc3JJ_sby2sKsuql1HZnD8cvc-itOXJH-EoTrQ9ZmF3piiTf7"
        "AeSQZqzE/k4tiS3qzaq9IJfmVksRMDqD-TVfmp3IjW6tN/seg1.jpg",
        "https://cdn.example/live/seg1.jpg?token=T1",
        UriKind.MEDIA,
    ),
    (
        "/p/2MIQuTT6-KGmemqJa7AOBngtKuW-LeBaSkFcXkaUTjq-kWnQz5WC0siYWQP0B_5M9D5F9rSLuQQJbgn3r7DMz"
        "UfNem7pj5Xg/index.m3u8",
        "https://cdn.example/live/v1/index.m3u8?token=T1",
        UriKind.PLAYLIST,
    ),
    (
        "/p/2e8qSmTTJhZpmXhZrH1EzUWAU6zvWsUaUgidc3JJ_sby2sKsuql1HZnD8cvc-itOXJH-EoTrQ9ZmF3piiTf7"
        "AeSQZqzE/wEUfbBEgEYPqvlXkONBkSDxhP2MyQXyK/k.key",
        "https://cdn.example/live/k.key?token=T1",
        UriKind.KEY,
    ),
]


def verify(signer: Signer, playlist_path: str, ref: str) -> tuple[str, ChildTarget]:
    path = urlsplit(urljoin(PROXY + playlist_path, ref)).path
    return path, signer.verify(path[len("/p/") :].split("/"))


class CompatibilityTests(SynchronousTestCase):
    def test_urls_minted_before_carry_and_disguises_still_verify(self) -> None:
        signer = Signer(OLD_SECRET)
        for path, url, kind in OLD_URLS:
            target = signer.verify(path[len("/p/") :].split("/"))
            self.assertEqual((target.stream, target.url, target.kind), (SPEC, url, kind))
            self.assertEqual((target.carry, target.segment_extension), ("", ""))

    def test_the_same_children_are_minted_as_format_three_to_the_same_targets(self) -> None:
        signer = Signer(OLD_SECRET)
        minter = signer.minter(SPEC, ENTRY)
        for path, url, kind in OLD_URLS[:2]:
            new = minter.ref(url, kind)
            self.assertEqual((new[:4], len(new.split("/"))), ("/p/3", len(path.split("/"))))
            target = signer.verify(new[len("/p/") :].split("/"))
            self.assertEqual((target.stream, target.url, target.kind), (SPEC, url, kind))


class CarryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.signer = Signer(b"secret")

    def test_a_candidate_travels_sealed_in_every_shape(self) -> None:
        master = f"https://cdn.example/live/master.m3u8?{HDNTS}"
        minter = self.signer.minter(SPEC, master, anchor_carry=HDNTS)
        variant = "https://cdn.example/live/720p/index.m3u8"
        variant_path, variant_target = verify(
            self.signer, "/playlist.m3u8", minter.ref(variant, UriKind.PLAYLIST, HDNTS)
        )
        self.assertEqual((variant_target.url, variant_target.carry), (variant, HDNTS))
        self.assertNotIn("hdnts", variant_path)
        _, entry_segment = verify(
            self.signer, "/playlist.m3u8", minter.ref(variant + "x.ts", UriKind.MEDIA, HDNTS)
        )
        self.assertEqual(entry_segment.carry, HDNTS)
        # The variant's segments inherit the candidate: it costs them about nothing, as
        # the delta shares it with the variant's X.
        under = self.signer.minter(SPEC, variant, variant_target)
        for carry in (HDNTS, ""):
            segment = "https://cdn.example/live/720p/seg-00017.ts"
            ref = under.ref(segment, UriKind.MEDIA, carry)
            _, target = verify(self.signer, variant_path, ref)
            self.assertEqual(
                (target.url, target.carry, target.kind), (segment, carry, UriKind.MEDIA)
            )
            self.assertLess(len(ref), 60, ref)
        key = under.ref("https://cdn.example/live/k.key", UriKind.KEY, HDNTS)
        self.assertEqual(verify(self.signer, variant_path, key)[1].carry, HDNTS)

    def test_a_key_gets_one_url_from_any_playlist_of_the_stream(self) -> None:
        master = f"https://cdn.example/live/master.m3u8?{HDNTS}"
        key = "https://cdn.example/live/keys/k1.key"
        minter = self.signer.minter(SPEC, master, anchor_carry=HDNTS)
        session_key = minter.ref(key, UriKind.KEY, HDNTS)
        variant_ref = minter.ref("https://cdn.example/live/720p/i.m3u8", UriKind.PLAYLIST, HDNTS)
        _, variant = verify(self.signer, "/playlist.m3u8", variant_ref)
        media_key = self.signer.minter(SPEC, variant.url, variant).ref(key, UriKind.KEY, HDNTS)
        self.assertEqual(media_key, session_key)
        self.assertTrue(session_key.startswith("/p/3"))


class DisguiseNameTests(SynchronousTestCase):
    def test_segment_extension_of_a_playlist(self) -> None:
        cases = [
            (b"#EXTM3U\n#EXTINF:4,\nseg1.jpg\n", "ts"),
            (b'#EXTM3U\n#EXT-X-MAP:URI="i.jpg"\n#EXTINF:4,\nseg1.jpg\n', "m4s"),
            (b"#EXTM3U\n#EXT-X-IMAGES-ONLY\n#EXTINF:4,\nthumb1.jpg\n", ""),
            (b"#EXTM3U\r\n#EXT-X-I-FRAMES-ONLY\r\n#EXTINF:4,\nthumb1.jpg\n", ""),
            (b"#EXTM3U\n#EXTINF:4,\nseg-#EXT-X-IMAGES-ONLY.jpg\n", "ts"),
            (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", ""),
        ]
        for body, expected in cases:
            self.assertEqual(segment_extension(body), expected, body)

    def test_names_table(self) -> None:
        cases = [
            ("https://c/a/seg1.jpg?x=1", "ts", "seg1.jpg.ts"),
            ("https://c/a/seg1.PNG", "m4s", "seg1.PNG.m4s"),
            ("https://c/a/seg1.css", "ts", "seg1.css.ts"),
            ("https://c/a/seg1.php", "m4s", "seg1.php.m4s"),
            ("https://c/a/seg1.ts", "ts", "seg1.ts"),
            ("https://c/a/seg1.m4s", "m4s", "seg1.m4s"),
            ("https://c/a/seg1.vtt", "ts", "seg1.vtt"),
            ("https://c/a/thumb.jpg", "", "thumb.jpg"),
        ]
        for url, extension, expected in cases:
            self.assertEqual(child_file_name(url, UriKind.MEDIA, extension), expected, url)

    def test_a_disguised_name_is_sealed_and_checked(self) -> None:
        signer = Signer(b"secret")
        for extension in ("ts", "m4s"):
            minter = signer.minter(SPEC, ENTRY, segment_extension=extension)
            for name in ("seg1.jpg", "seg2.ts", "seg3.png"):
                ref = minter.ref(f"https://cdn.example/live/{name}", UriKind.MEDIA)
                path, target = verify(signer, "/playlist.m3u8", ref)
                expected = name if name.endswith(".ts") else f"{name}.{extension}"
                self.assertTrue(path.endswith("/" + expected), path)
                self.assertEqual(target.url, f"https://cdn.example/live/{name}")
                # The name a player sees is the only one accepted.
                segments = path[len("/p/") :].split("/")
                for other in (
                    name,
                    f"{name}.mp4",
                    f"{name}.{'m4s' if extension == 'ts' else 'ts'}",
                ):
                    if other != expected:
                        with self.assertRaises(BadSignature):
                            signer.verify([*segments[:-1], other])
        # In an image playlist a thumbnail keeps its name.
        minter = signer.minter(SPEC, ENTRY)
        self.assertTrue(minter.ref("https://cdn.example/t/1.jpg", UriKind.MEDIA).endswith("/1.jpg"))
