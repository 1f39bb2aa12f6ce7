"""Format-1 child URLs (`stream_part` + `child_path`, still minted until `minter` is wired in):
deterministic, tamper-evident, extension-keeping. Format 2: test_signing_minter.py."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.playlist import UriKind
from hls_proxy.signing import BadSignature, Signer, StreamSpec, child_file_name

SPEC = StreamSpec("abc", (("referer", "https://site.example/"), ("user-agent", "UA")))


def _segments(path: str) -> list[str]:
    assert path.startswith("/p/")
    return path[len("/p/") :].split("/")


class SignerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.signer = Signer(b"secret")
        self.part = self.signer.stream_part(SPEC)

    def test_round_trip(self) -> None:
        url = "https://cdn.example/v/seg-1.ts?token=a%2Fb&e=1"
        path = self.signer.child_path(self.part, url, UriKind.MEDIA)
        target = self.signer.verify(_segments(path))
        self.assertEqual((target.stream, target.url, target.kind), (SPEC, url, UriKind.MEDIA))

    def test_deterministic_and_shared_across_instances_with_one_secret(self) -> None:
        url = "https://cdn.example/v/seg-1.ts"
        first = self.signer.child_path(self.part, url, UriKind.MEDIA)
        other = Signer(b"secret")
        second = other.child_path(other.stream_part(SPEC), url, UriKind.MEDIA)
        self.assertEqual(first, second)
        self.assertEqual(other.verify(_segments(first)).url, url)

    def test_every_changed_character_is_refused(self) -> None:
        path = self.signer.child_path(self.part, "https://cdn.example/a.ts", UriKind.MEDIA)
        for index in range(len("/p/"), len(path)):
            if path[index] == "/":
                continue
            replacement = "A" if path[index] != "A" else "B"
            tampered = path[:index] + replacement + path[index + 1 :]
            self.assertRaises(BadSignature, self.signer.verify, _segments(tampered))

    def test_other_secret_is_refused(self) -> None:
        path = self.signer.child_path(self.part, "https://cdn.example/a.ts", UriKind.MEDIA)
        self.assertRaises(BadSignature, Signer(b"other").verify, _segments(path))

    def test_malformed_paths_are_refused(self) -> None:
        for segments in ([], ["a"], ["a", "b"], ["a", "b", "c", "d"], ["", "", ""]):
            self.assertRaises(BadSignature, self.signer.verify, segments)

    @settings(max_examples=200, deadline=None)
    @given(
        url=st.text(min_size=1, max_size=200),
        headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=4),
        kind=st.sampled_from(list(UriKind)),
    )
    def test_property_any_url_round_trips(
        self, url: str, headers: list[tuple[str, str]], kind: UriKind
    ) -> None:
        spec = StreamSpec("id", tuple(headers))
        path = self.signer.child_path(self.signer.stream_part(spec), url, kind)
        target = self.signer.verify(_segments(path))
        self.assertEqual((target.stream, target.url, target.kind), (spec, url, kind))


class FileNameTests(SynchronousTestCase):
    def test_extension_kept_or_supplied(self) -> None:
        cases = [
            ("https://c/v/seg-1.ts?token=x", UriKind.MEDIA, "seg-1.ts"),
            ("https://c/v/chunk.m4s", UriKind.MEDIA, "chunk.m4s"),
            ("https://c/v/init.mp4", UriKind.MEDIA, "init.mp4"),
            ("https://c/a/audio.aac", UriKind.MEDIA, "audio.aac"),
            ("https://c/s/sub.vtt", UriKind.MEDIA, "sub.vtt"),
            ("https://c/k/key.key", UriKind.KEY, "key.key"),
            ("https://c/k/getkey?id=1", UriKind.KEY, "getkey.key"),
            ("https://c/v/index.m3u8", UriKind.PLAYLIST, "index.m3u8"),
            ("https://c/v/index.php?c=1", UriKind.PLAYLIST, "index.php.m3u8"),
            ("https://c/v/segment", UriKind.MEDIA, "segment.ts"),
            ("https://c/v/", UriKind.PLAYLIST, "index.m3u8"),
            ("https://c/v/we ird%20name.ts", UriKind.MEDIA, "we_ird_20name.ts"),
        ]
        for url, kind, expected in cases:
            self.assertEqual(child_file_name(url, kind), expected, url)
