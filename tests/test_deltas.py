"""URL deltas (deltas.py): exact, canonical, short for a playlist's segments."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.deltas import DeltaEncoder, apply_delta, delta

_PIECE = st.sampled_from([b"", b"?", b"&", b"=", b"t", b"token=T", b"v=1", b"/", b"a", b"\xff"])
_URL = st.one_of(
    st.binary(max_size=40),
    st.lists(_PIECE, max_size=8).map(b"".join),
    st.tuples(st.binary(max_size=6), st.sampled_from([b"", b"?token=T", b"?token=T&v=1"])).map(
        lambda pair: b"https://c/v/seg" + pair[0] + b".ts" + pair[1]
    ),
)


class DeltaTests(SynchronousTestCase):
    def test_a_segment_next_to_its_playlist_is_its_file_name(self) -> None:
        anchor = b"https://cdn.example/v/index.m3u8?token=abcdef"
        url = b"https://cdn.example/v/seg-00001.ts?token=abcdef"
        encoded = delta(anchor, url)
        self.assertEqual(encoded[2:], b"seg-00001.ts")
        self.assertEqual(apply_delta(anchor, encoded), url)

    def test_a_query_found_inside_the_playlists_url_is_not_written(self) -> None:
        # The playlist has a parameter its segments do not: their query is in the middle.
        anchor = b"https://cdn.example/v/index.m3u8?token=abcdef&v=3"
        url = b"https://cdn.example/v/seg-00001.ts?token=abcdef"
        encoded = delta(anchor, url)
        self.assertEqual(encoded[3:], b"seg-00001.ts?")
        self.assertEqual(apply_delta(anchor, encoded), url)
        self.assertEqual(DeltaEncoder(anchor).encode_many([url, url]), [encoded, encoded])

    def test_impossible_deltas_are_refused(self) -> None:
        for data in (b"", b"\x02", b"\x80", b"\x00\x09\x05", b"\x04\x00", b"\x00\x08"):
            self.assertRaises(ValueError, apply_delta, b"abc", data)
        # Format 2's layout: the suffix only at the anchor's end.
        self.assertRaises(ValueError, apply_delta, b"abc", b"\x02\x02x", False)
        self.assertEqual(apply_delta(b"abc", b"\x01\x01x", False), b"axc")

    @settings(max_examples=500, deadline=None)
    @given(anchor=_URL, url=_URL)
    def test_property_round_trip(self, anchor: bytes, url: bytes) -> None:
        self.assertEqual(apply_delta(anchor, delta(anchor, url)), url)

    @settings(max_examples=500, deadline=None)
    @given(anchor=_URL, urls=st.lists(_URL, max_size=12))
    def test_property_encoder_equals_delta_in_any_order(
        self, anchor: bytes, urls: list[bytes]
    ) -> None:
        for base in (anchor, b"https://c/v/index.m3u8?token=T&v=1" + anchor[:3]):
            expected = [delta(base, url) for url in urls + urls[::-1]]
            encoder = DeltaEncoder(base)
            self.assertEqual([encoder.encode(url) for url in urls + urls[::-1]], expected)
            self.assertEqual(DeltaEncoder(base).encode_many(urls + urls[::-1]), expected)
