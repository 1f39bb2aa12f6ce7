"""Key rotation, expiring URLs, and tampering, as properties."""

from urllib.parse import urljoin, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind
from hls_proxy.signing import BadSignature, Signer, StreamSpec

SPEC = StreamSpec("id", (("referer", "https://site/"),))
URL = "https://cdn.example/v/seg.ts"


def segments(path: str) -> list[str]:
    return path[len("/p/") :].split("/")


def mint(signer: Signer) -> str:
    return signer.child_path(signer.stream_part(SPEC), URL, UriKind.MEDIA)


class RotationTests(SynchronousTestCase):
    def test_old_secret_still_accepted_until_removed(self) -> None:
        old_url = mint(Signer(b"old"))
        self.assertEqual(Signer(b"new", [b"old"]).verify(segments(old_url)).url, URL)
        self.assertRaises(BadSignature, Signer(b"new").verify, segments(old_url))
        self.assertNotEqual(mint(Signer(b"new", [b"old"])), old_url)  # minted with the new one


class ExpiryTests(SynchronousTestCase):
    def test_urls_expire_after_the_ttl_and_stay_stable_meanwhile(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        signer = Signer(b"k", ttl_s=600, clock=clock)
        first = mint(signer)
        clock.advance(10)
        self.assertEqual(mint(signer), first)  # same 5-minute step: same URL, cacheable
        self.assertEqual(signer.verify(segments(first)).url, URL)
        clock.advance(600 + 300)
        error = self.assertRaises(BadSignature, signer.verify, segments(first))
        self.assertEqual(str(error), "proxy URL expired")

    def test_urls_without_ttl_never_expire(self) -> None:
        clock = Clock()
        signer = Signer(b"k", clock=clock)
        url = mint(signer)
        clock.advance(10**9)
        self.assertEqual(signer.verify(segments(url)).url, URL)


class TamperPropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        url=st.text(min_size=1, max_size=120),
        position=st.integers(min_value=0),
        replacement=st.characters(min_codepoint=33, max_codepoint=126),
    )
    def test_any_changed_character_is_refused(
        self, url: str, position: int, replacement: str
    ) -> None:
        signer = Signer(b"k")
        path = signer.child_path(signer.stream_part(SPEC), url, UriKind.MEDIA)
        index = len("/p/") + position % (len(path) - len("/p/"))
        if path[index] in ("/", replacement):
            return
        tampered = path[:index] + replacement + path[index + 1 :]
        self.assertRaises(BadSignature, signer.verify, segments(tampered))


def entry_child(signer: Signer, url: str = "https://cdn.example/v/index.m3u8") -> str:
    return signer.minter(SPEC, "https://cdn.example/master.m3u8").ref(url, UriKind.PLAYLIST)


def relative_child(signer: Signer, parent_path: str) -> str:
    """The path a player fetches for a segment listed in the playlist at `parent_path`."""
    parent = signer.verify(segments(parent_path))
    ref = signer.minter(SPEC, parent.url, parent).ref(URL, UriKind.MEDIA)
    return urlsplit(urljoin("http://proxy.test" + parent_path, ref)).path


class FormatTwoRotationTests(SynchronousTestCase):
    def test_old_secret_still_accepted_for_both_shapes_until_removed(self) -> None:
        old_signer, rotated = Signer(b"old"), Signer(b"new", [b"old"])
        variant = entry_child(old_signer)
        standalone = old_signer.path(SPEC, URL, UriKind.MEDIA)
        # The playlist minted before the rotation, served after it: new children.
        segment = relative_child(rotated, variant)
        for path in (variant, standalone, segment):
            self.assertIn(
                rotated.verify(segments(path)).url, (URL, "https://cdn.example/v/index.m3u8")
            )
            self.assertRaises(BadSignature, Signer(b"new").verify, segments(path))
        self.assertNotEqual(entry_child(rotated), variant)  # minted with the new one


class ExpiryInheritanceTests(SynchronousTestCase):
    def test_children_keep_the_entry_expiry_instead_of_extending_it(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        signer = Signer(b"k", ttl_s=600, clock=clock)
        variant = entry_child(signer)
        expires_s = signer.verify(segments(variant)).expires_s
        self.assertEqual(expires_s, 1_000_800)  # now + ttl, rounded up to 5 minutes
        clock.advance(590)  # a reload just before: its children are minted now ...
        segment = relative_child(signer, variant)
        self.assertEqual(signer.verify(segments(segment)).expires_s, expires_s)
        clock.advance(220)  # ... and expire with the entry all the same
        for path in (variant, segment):
            error = self.assertRaises(BadSignature, signer.verify, segments(path))
            self.assertEqual(str(error), "proxy URL expired")
        self.assertNotEqual(entry_child(signer), variant)  # a new entry: a new expiry

    def test_entry_urls_stay_the_same_within_a_step(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        signer = Signer(b"k", ttl_s=600, clock=clock)
        first = entry_child(signer)
        clock.advance(10)
        self.assertEqual(entry_child(signer), first)

    @settings(max_examples=300, deadline=None)
    @given(
        url=st.text(min_size=1, max_size=120),
        media=st.booleans(),
        position=st.integers(min_value=0),
        replacement=st.characters(min_codepoint=33, max_codepoint=126),
    )
    def test_any_changed_character_of_a_format_two_url_is_refused(
        self, url: str, media: bool, position: int, replacement: str
    ) -> None:
        signer = Signer(b"k")
        kind = UriKind.MEDIA if media else UriKind.PLAYLIST
        path = signer.minter(SPEC, "https://cdn.example/index.m3u8").ref(url, kind)
        index = len("/p/") + position % (len(path) - len("/p/"))
        if path[index] in ("/", replacement):
            return
        tampered = path[:index] + replacement + path[index + 1 :]
        self.assertRaises(BadSignature, signer.verify, segments(tampered))
