"""Child file names (names.py): many at a time give what one at a time gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.names import base_name, base_names
from hls_proxy.playlist import UriKind
from hls_proxy.signing import Signer, StreamSpec

_URL = st.one_of(
    st.sampled_from([
        "https://cdn.example/v/seg00001.ts?token=abc", "https://cdn.example/v/seg2.TS",
        "http://h", "http://h/", "http://h/a#b?c", "http://h/a?b#c", "http://h/x/.ts",
        "http://h/é.ts", "http://h/a/b/..", "http://h?x=/a.ts", "http://h#/a.ts", "x",
        "http://h/a.b.c?d", "http://h/" + "a" * 90 + ".ts", "http://h/.x", "http://h/a.",
        "http://h/a..ts", "http://h/ts", "http://hx.ts", "http://h/seg 1.ts", "http://h/s.php",
    ]),
    st.builds(
        lambda name, query: f"https://cdn.example/v/{name}{query}",
        st.text(alphabet="ab.-_/?#é ", max_size=12),
        st.sampled_from(["", "?t=1", "?t=a/b.ts"]),
    ),
)  # fmt: skip


class BaseNamesTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_URL, max_size=8))
    def test_many_at_a_time_as_one_at_a_time(self, urls: list[str]) -> None:
        self.assertEqual(base_names(urls), [base_name(url) for url in urls])

    def test_a_playlists_segments_share_an_extension(self) -> None:
        urls = [f"https://cdn.example/v/seg{n}.TS?t=1" for n in range(3)]
        self.assertEqual(base_names(urls), [(f"seg{n}.TS", "ts") for n in range(3)])


class MediaRefsTests(SynchronousTestCase):
    """`Minter.media_refs` mints what `ref` mints for each, and each verifies."""

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(_URL.filter(lambda url: url.startswith("http")), min_size=1, max_size=6),
        st.lists(st.sampled_from(["", "token=1"]), min_size=6, max_size=6),
        st.lists(st.sampled_from([None, 0, 7, 300]), min_size=6, max_size=6),
        st.sampled_from(["", "ts", "m4s"]),
    )
    def test_media_refs_as_refs(
        self,
        urls: list[str],
        carries: list[str],
        sequences: list[int | None],
        segment_extension: str,
    ) -> None:
        signer = Signer(b"names-test")
        spec = StreamSpec("s", (("referer", "https://site.example/"),))
        playlist = "https://cdn.example/v/index.m3u8?t=1"
        carries, sequences = carries[: len(urls)], sequences[: len(urls)]
        refs = [
            signer.minter(spec, playlist, segment_extension=segment_extension).ref(
                url, UriKind.MEDIA, carry, sequence=sequence
            )
            for url, carry, sequence in zip(urls, carries, sequences, strict=True)
        ]
        minter = signer.minter(spec, playlist, segment_extension=segment_extension)
        self.assertEqual(minter.media_refs(urls, carries, sequences), refs)
        for ref, url, carry in zip(refs, urls, carries, strict=True):
            target = signer.verify(ref.removeprefix("/p/").split("/"))
            self.assertEqual((target.url, target.carry), (url, carry))
