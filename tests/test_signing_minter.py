"""Format-3 child URLs: sealed, compact, relative inside proxied playlists, bound, expiring."""

import base64
import random
import string
from urllib.parse import urljoin, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind, rewrite_playlist
from hls_proxy.signing import BadSignature, ChildTarget, Signer, StreamSpec
from hls_proxy.streamspec import stream_spec

PROXY = "http://proxy.test"
COOKIE = "cf_clearance=" + "Qx7" * 40 + "; session=" + "9f3e" * 12
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
LOCKED = StreamSpec(
    "lockedStream",
    (
        ("authorization", "Bearer sEcReTbEaReRtOkEn123"),
        ("cookie", COOKIE),
        ("origin", "https://sports.example"),
        ("referer", "https://sports.example/watch/42"),
        ("user-agent", UA),
    ),
    (("derived", "origin"),),
)
HDNTS = "hdnts=exp=1764675600~acl=/hls/live/*~hmac=0a1b2c3d4e5f60718293a4b5c6d7e8f9"
MASTER = f"https://akamai.example-cdn.net/hls/live/2012345/ch1/master.m3u8?{HDNTS}"
VARIANT = f"https://akamai.example-cdn.net/hls/live/2012345/ch1/720p/index.m3u8?{HDNTS}"
SEGMENT = f"https://akamai.example-cdn.net/hls/live/2012345/ch1/720p/seg-17.ts?{HDNTS}"
MEDIA_PLAYLIST = b"""#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-KEY:METHOD=AES-128,URI="key.bin?k=1"
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg-1.ts?token=abc
#EXTINF:4.0,
/other/path/seg-2.ts
#EXTINF:4.0,
https://elsewhere.example/seg-3.ts
#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=3
#EXT-X-ENDLIST
"""


def resolve(playlist_path: str, ref: str) -> tuple[str, list[str]]:
    """The proxy path a player fetches for `ref` found in the playlist at `playlist_path`."""
    path = urlsplit(urljoin(PROXY + playlist_path, ref)).path
    assert path.startswith("/p/"), path
    return path, path[len("/p/") :].split("/")


def verify_ref(signer: Signer, playlist_path: str, ref: str) -> tuple[str, ChildTarget]:
    path, segments = resolve(playlist_path, ref)
    return path, signer.verify(segments)


class EntryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.signer = Signer(b"secret")

    def test_entry_children_are_path_absolute_and_verify(self) -> None:
        minter = self.signer.minter(LOCKED, MASTER)
        variant = minter.ref(VARIANT, UriKind.PLAYLIST)
        segment = minter.ref(SEGMENT, UriKind.MEDIA)
        # A playlist gets an X of its own (its children will hang from it), media and
        # keys a C under the entry playlist's X.
        self.assertRegex(variant, r"^/p/3[\w-]+/index\.m3u8$")
        self.assertRegex(segment, r"^/p/3[\w-]+/[\w-]+/seg-17\.ts$")
        cases = [(variant, VARIANT, UriKind.PLAYLIST), (segment, SEGMENT, UriKind.MEDIA)]
        for ref, url, kind in cases:
            _, target = verify_ref(self.signer, "/playlist.m3u8?url=x", ref)
            self.assertEqual((target.stream, target.url, target.kind), (LOCKED, url, kind))

    def test_deterministic_across_instances(self) -> None:
        first = self.signer.minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST)
        self.assertEqual(
            Signer(b"secret").minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST), first
        )
        self.assertNotEqual(
            Signer(b"other").minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST), first
        )

    def test_a_reference_does_not_depend_on_the_uris_before_it(self) -> None:
        urls = [SEGMENT, MASTER, "https://x.example/a.ts", SEGMENT.replace("17", "18"), VARIANT]
        first = self.signer.minter(LOCKED, MASTER)
        forward = {url: first.ref(url, UriKind.MEDIA) for url in urls}
        second = self.signer.minter(LOCKED, MASTER)
        backward = {url: second.ref(url, UriKind.MEDIA) for url in reversed(urls)}
        self.assertEqual(forward, backward)

    def test_nothing_of_the_url_or_headers_is_readable(self) -> None:
        refs = [
            self.signer.minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST),
            self.signer.path(LOCKED, MASTER, UriKind.PLAYLIST),
        ]
        secrets = [
            "akamai", "example-cdn", "2012345", "hls/live", "720p", "hdnts", "hmac=",
            "0a1b2c3d4e5f", "cf_clearance", "Qx7Qx7", "9f3e9f3e", "sEcReTbEaReR", "Bearer",
            "sports.example", "Mozilla", "Chrome", "lockedStream",
        ]  # fmt: skip
        for ref in refs:
            for secret in secrets:
                self.assertNotIn(secret.lower(), ref.lower())
                data = secret.encode()
                for offset in range(3):  # base64 of the text at each alignment
                    for encode in (base64.b64encode, base64.urlsafe_b64encode):
                        inner = encode(b"\0" * offset + data).decode()[4:-4].rstrip("=")
                        if len(inner) >= 6:
                            self.assertNotIn(inner, ref, secret)

    def test_every_changed_character_is_refused(self) -> None:
        minter = self.signer.minter(LOCKED, MASTER)
        paths = [minter.ref(VARIANT, UriKind.PLAYLIST), minter.ref(SEGMENT, UriKind.KEY)]
        for path in paths:
            self.signer.verify(path[len("/p/") :].split("/"))
            for index in range(len("/p/"), len(path)):
                if path[index] == "/":
                    continue
                for replacement in ("A", "B", ".", "_"):
                    if replacement == path[index]:
                        continue
                    tampered = path[:index] + replacement + path[index + 1 :]
                    segments = tampered[len("/p/") :].split("/")
                    self.assertRaises(BadSignature, self.signer.verify, segments)

    def test_pieces_of_two_urls_do_not_combine(self) -> None:
        one = self.signer.minter(LOCKED, MASTER).ref(SEGMENT, UriKind.MEDIA)[3:].split("/")
        two = self.signer.minter(LOCKED, VARIANT).ref(SEGMENT, UriKind.MEDIA)[3:].split("/")
        self.signer.verify(one)
        self.signer.verify(two)
        self.assertRaises(BadSignature, self.signer.verify, [one[0], two[1], "seg-17.ts"])
        self.assertRaises(BadSignature, self.signer.verify, [two[0], one[1], "seg-17.ts"])

    def test_malformed_paths_are_refused(self) -> None:
        for segments in ([], ["a"], ["2", "b"], ["2a", "b", "c", "d"], ["", "", ""], ["2"] * 3):
            self.assertRaises(BadSignature, self.signer.verify, segments)


class RelativeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.signer = Signer(b"secret")
        entry_ref = self.signer.minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST)
        self.variant_path, self.variant = verify_ref(self.signer, "/playlist.m3u8", entry_ref)

    def check_playlist(self, playlist_path: str, parent: ChildTarget, final_url: str) -> list[str]:
        """Rewrite MEDIA_PLAYLIST served at `playlist_path`; every ref verifies to its URL."""
        minter = self.signer.minter(parent.stream, parent.url, parent)
        expected: list[tuple[str, UriKind]] = []
        refs: list[str] = []

        def ref(url: str, kind: UriKind) -> str:
            expected.append((url, kind))
            refs.append(minter.ref(url, kind))
            return refs[-1]

        rewritten = rewrite_playlist(MEDIA_PLAYLIST, final_url, ref).decode()
        self.assertEqual(len(refs), 6)
        for written, (url, kind) in zip(refs, expected, strict=True):
            self.assertIn(written, rewritten)
            # Media relative; a playlist or key standalone (`/p/3X/name`), few of them.
            self.assertEqual(written.startswith("/p/3"), kind is not UriKind.MEDIA, written)
            _, target = verify_ref(self.signer, playlist_path + "?_HLS_msn=3", written)
            self.assertEqual((target.url, target.kind, target.stream), (url, kind, LOCKED))
        return refs

    def test_children_of_a_proxied_playlist_are_relative_and_resolve(self) -> None:
        self.assertEqual(len(self.variant_path.split("/")), 4)  # /p/3X/index.m3u8
        refs = self.check_playlist(self.variant_path, self.variant, VARIANT)
        seg_1 = next(ref for ref in refs if ref.endswith("/seg-1.ts"))
        # No stream in it: a token (a tag and what differs from the playlist URL), the name.
        self.assertLess(len(seg_1), 64)
        self.assertFalse(seg_1.startswith("../"))

    def test_children_of_a_playlist_under_a_c_token_go_up_one_level(self) -> None:
        # A URI listed as media that turns out to be a playlist is served at /p/3X/C/name.
        ref = self.signer.minter(LOCKED, MASTER).ref(VARIANT, UriKind.MEDIA)
        path, parent = verify_ref(self.signer, "/playlist.m3u8", ref)
        refs = self.check_playlist(path, parent, VARIANT)
        self.assertTrue(all(ref.startswith(("../", "/p/3")) for ref in refs), refs)

    def test_after_a_redirect_and_on_another_origin_children_still_resolve_exactly(self) -> None:
        # The deltas are taken from absolute URLs (already resolved against the final URL),
        # so a playlist that moved, or URIs on another host, give longer tokens, never
        # wrong ones: no fallback to the full form is needed.
        redirected = "https://other-cdn.example/moved/deeper/index.m3u8?sig=1"
        self.check_playlist(self.variant_path, self.variant, redirected)

    def test_nested_playlists_do_not_grow_the_path(self) -> None:
        path, target = self.variant_path, self.variant
        for hop in range(4):  # a rendition report of a rendition report of ...
            report = f"https://akamai.example-cdn.net/hls/live/2012345/ch1/r{hop}/index.m3u8"
            ref = self.signer.minter(LOCKED, target.url, target).ref(report, UriKind.PLAYLIST)
            path, target = verify_ref(self.signer, path, ref)
            self.assertEqual(len(path[len("/p/") :].split("/")), 2)
            self.assertEqual(target.url, report)

    def test_a_parent_of_another_stream_is_refused(self) -> None:
        other = StreamSpec("other", ())
        self.assertRaises(ValueError, self.signer.minter, other, VARIANT, self.variant)

    def test_every_changed_character_of_a_relative_child_is_refused(self) -> None:
        ref = self.signer.minter(LOCKED, VARIANT, self.variant).ref(SEGMENT, UriKind.MEDIA)
        path, _ = resolve(self.variant_path, ref)
        for index in range(len("/p/"), len(path)):
            if path[index] == "/":
                continue
            for replacement in ("A", "B", "."):
                if replacement != path[index]:
                    tampered = path[:index] + replacement + path[index + 1 :]
                    segments = tampered[len("/p/") :].split("/")
                    self.assertRaises(BadSignature, self.signer.verify, segments)


class BindingTests(SynchronousTestCase):
    def test_children_are_bound_to_the_api_key(self) -> None:
        signer = Signer(b"secret", api_key="key-one")
        ref = signer.minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST)
        path, target = verify_ref(signer, "/", ref)
        child = signer.minter(LOCKED, VARIANT, target).ref(SEGMENT, UriKind.MEDIA)
        _, child_segments = resolve(path, child)
        for other in (Signer(b"secret", api_key="key-two"), Signer(b"secret")):
            self.assertRaises(BadSignature, other.verify, path[3:].split("/"))
            self.assertRaises(BadSignature, other.verify, child_segments)
        self.assertEqual(Signer(b"secret", api_key=b"key-one").verify(child_segments).url, SEGMENT)
        # Without a key, URLs minted with one are refused, and the other way round.
        plain = Signer(b"secret").minter(LOCKED, MASTER).ref(VARIANT, UriKind.PLAYLIST)
        self.assertRaises(BadSignature, signer.verify, plain[3:].split("/"))


class FormatOneTests(SynchronousTestCase):
    # Minted by the format-1 code as it was on main (d12df1e), kept verbatim.
    WITH_EXPIRY = (
        "/p/eNqLNtRRykwxVNKJjlYqSk1LLUotUtJRyigpKSi20tcvzixJ1UutSMwtyEnVV4qNBalKSS3KLEtNAaqCqQeKGx"
        "oYGFgYGMQCAPLfGP8/maHR0cHM6Ly9jZG4uZXhhbXBsZS92L3NlZy0xLnRzP3Rva2VuPWFiYw.jG5467rIDdAU9"
        "u7muvc-Ag/seg-1.ts"
    )
    PLAIN = (
        "/p/eNqLNtRRykwxUtKJjo0FABQHAz0/paHR0cHM6Ly9jZG4uZXhhbXBsZS92L2luZGV4Lm0zdTg.mXzeJUSe4Uvt"
        "gZtzUTlUtQ/index.m3u8"
    )

    def test_urls_minted_by_the_previous_release_still_verify(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        signer = Signer(b"old-format-secret", clock=clock)
        target = signer.verify(self.WITH_EXPIRY[3:].split("/"))
        self.assertEqual(target.url, "https://cdn.example/v/seg-1.ts?token=abc")
        self.assertEqual(target.stream.options, (("derived", "referer"),))
        self.assertEqual(signer.verify(self.PLAIN[3:].split("/")).kind, UriKind.PLAYLIST)
        clock.advance(900)
        self.assertRaises(BadSignature, signer.verify, self.WITH_EXPIRY[3:].split("/"))
        self.assertRaises(BadSignature, Signer(b"x").verify, self.PLAIN[3:].split("/"))

    def test_children_of_a_format_one_playlist_are_format_three_with_its_expiry(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        signer = Signer(b"old-format-secret", ttl_s=3600, clock=clock)
        parent = signer.verify(self.PLAIN[3:].split("/"))
        self.assertIsNone(parent.anchor)
        ref = signer.minter(parent.stream, parent.url, parent).ref(
            "https://cdn.example/v/a.ts", UriKind.MEDIA
        )
        self.assertTrue(ref.startswith("/p/3"))
        _, child = verify_ref(signer, self.PLAIN, ref)
        self.assertEqual(child.url, "https://cdn.example/v/a.ts")
        self.assertEqual(child.expires_s, 1_003_800)  # new (the parent had none), rounded up

    @settings(max_examples=200, deadline=None)
    @given(
        url=st.text(st.characters(codec=None), min_size=1, max_size=200),
        anchor=st.text(max_size=120),
        child=st.text(st.characters(codec=None), max_size=200),
        headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=4),
        options=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=2),
        kinds=st.tuples(st.sampled_from(list(UriKind)), st.sampled_from(list(UriKind))),
    )
    def test_property_any_url_and_stream_round_trip(
        self,
        url: str,
        anchor: str,
        child: str,
        headers: list[tuple[str, str]],
        options: list[tuple[str, str]],
        kinds: tuple[UriKind, UriKind],
    ) -> None:
        signer = Signer(b"k")
        spec = StreamSpec("id", tuple(headers), tuple(options))
        ref = signer.minter(spec, anchor).ref(url, kinds[0])
        path, target = verify_ref(signer, "/playlist.m3u8", ref)
        self.assertEqual((target.stream, target.url, target.kind), (spec, url, kinds[0]))
        ref = signer.minter(spec, url, target).ref(child, kinds[1])
        _, grandchild = verify_ref(signer, path, ref)
        self.assertEqual(
            (grandchild.stream, grandchild.url, grandchild.kind), (spec, child, kinds[1])
        )


class CompactTests(SynchronousTestCase):
    """X is small: random runs packed (compact.py), a stream id found again when it can be."""

    def locked_stream(self) -> tuple[StreamSpec, str]:
        """A stream locked to its site, as bench_playlists.py has it: Chrome User-Agent,
        Referer, Origin, a 200-character cookie, an Akamai `hdnts=` token on the master."""
        rng = random.Random(7)
        b64 = string.ascii_letters + string.digits + "-_"
        cookie = (
            f"cf_clearance={''.join(rng.choices(b64, k=60))}; "
            f"__cf_bm={''.join(rng.choices(b64, k=80))}; "
            f"session={''.join(rng.choices('0123456789abcdef', k=40))}"
        )[:200]
        chrome = (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36"
        )
        hmac = "".join(rng.choices("0123456789abcdef", k=64))
        master = (
            "https://akamai-live.example-cdn.net/hls/live/2012345/channel1/master.m3u8"
            f"?hdnts=exp=1764675600~acl=/hls/live/2012345/channel1/*~hmac={hmac}"
        )
        headers = {
            "cookie": cookie,
            "origin": "https://www.example-sports.com",
            "referer": "https://www.example-sports.com/live/channel-1",
            "user-agent": chrome,
        }
        return stream_spec(master, headers), master

    def test_a_locked_streams_children_fit_in_512_characters(self) -> None:
        signer = Signer(b"compact-test")
        spec, master = self.locked_stream()
        variant_url = master.replace("master.m3u8", "720p/index.m3u8")
        variant = signer.minter(spec, master, None, master).ref(
            variant_url, UriKind.PLAYLIST, rendition="v0.1"
        )
        path, target = verify_ref(signer, "/playlist.m3u8", variant)
        self.assertEqual((target.stream, target.url), (spec, variant_url))
        segment_url = master.replace("master.m3u8", "720p/seg-1.ts")
        ref = signer.minter(spec, variant_url, target).ref(segment_url, UriKind.MEDIA)
        segment_path, segment = verify_ref(signer, path, ref)
        self.assertEqual((segment.stream, segment.url), (spec, segment_url))
        self.assertLess(len(path), 512 - 40)
        self.assertLess(len(segment_path), 512)

    def test_the_stream_id_is_written_only_when_it_cannot_be_found_again(self) -> None:
        signer = Signer(b"compact-test")
        spec, master = self.locked_stream()
        other = StreamSpec("not-derived", spec.headers, spec.options)
        lengths = []
        for stream in (spec, other):
            ref = signer.minter(stream, master, None, master).ref(
                master.replace("master", "v1"), UriKind.PLAYLIST, rendition="v1"
            )
            _, target = verify_ref(signer, "/playlist.m3u8", ref)
            self.assertEqual(target.stream, stream)
            lengths.append(len(ref))
        self.assertLess(lengths[0], lengths[1])
