"""Sealed URL parts (AES-SIV, canonical base64url) and URL deltas."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.sealing import DeltaEncoder, Sealer, apply_delta, delta, open_any

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class SealerTests(SynchronousTestCase):
    def test_deterministic_per_secret(self) -> None:
        first = Sealer.from_secret(b"s").seal(b"payload", [b"ad"])
        self.assertEqual(Sealer.from_secret(b"s").seal(b"payload", [b"ad"]), first)
        self.assertNotEqual(Sealer.from_secret(b"t").seal(b"payload", [b"ad"]), first)
        self.assertNotEqual(Sealer.from_secret(b"s").seal(b"payload", [b"other"]), first)
        self.assertEqual(Sealer.from_secret(b"s").open(first, [b"ad"]), b"payload")

    def test_plaintext_is_not_readable(self) -> None:
        sealed = Sealer.from_secret(b"s").seal(b"https://cdn.example/a.ts" * 3)
        self.assertNotIn("aHR0cHM6", sealed)  # base64 of "https:"
        self.assertTrue(set(sealed) <= set(_ALPHABET))

    def test_every_changed_character_fails_to_open(self) -> None:
        # Including the last character, whose low bits base64 does not use: a lenient
        # decoder would map two texts to one value.
        sealer = Sealer.from_secret(b"s")
        for size in range(0, 7):
            sealed = sealer.seal(b"x" * size)
            for index in range(len(sealed)):
                for replacement in _ALPHABET + "+/=.~%":
                    if replacement == sealed[index]:
                        continue
                    tampered = sealed[:index] + replacement + sealed[index + 1 :]
                    self.assertIsNone(sealer.open(tampered), (size, index, replacement))
            self.assertIsNone(sealer.open(sealed + "A"))
            self.assertIsNone(sealer.open(sealed[:-1]))
            self.assertIsNone(sealer.open(sealed + "="))

    def test_derived_keys_are_bound_to_their_context(self) -> None:
        root = Sealer.from_secret(b"s")
        sealed = root.derive(b"one").seal(b"payload")
        self.assertEqual(root.derive(b"one").open(sealed), b"payload")
        self.assertIsNone(root.derive(b"two").open(sealed))
        self.assertIsNone(root.open(sealed))

    def test_open_any_tries_every_key(self) -> None:
        old, new = Sealer.from_secret(b"old"), Sealer.from_secret(b"new")
        found = open_any([new, old], old.seal(b"p"))
        self.assertIsNotNone(found)
        assert found is not None
        self.assertIs(found[0], old)
        self.assertIsNone(open_any([new], old.seal(b"p")))


class DeltaTests(SynchronousTestCase):
    def test_a_segment_next_to_its_playlist_is_its_file_name(self) -> None:
        anchor = b"https://cdn.example/v/index.m3u8?token=abcdef"
        url = b"https://cdn.example/v/seg-00001.ts?token=abcdef"
        encoded = delta(anchor, url)
        self.assertEqual(encoded[2:], b"seg-00001.ts")
        self.assertEqual(apply_delta(anchor, encoded), url)

    def test_impossible_deltas_are_refused(self) -> None:
        self.assertRaises(ValueError, apply_delta, b"abc", b"")
        self.assertRaises(ValueError, apply_delta, b"abc", b"\x02\x02x")
        self.assertRaises(ValueError, apply_delta, b"abc", b"\x80")

    @settings(max_examples=500, deadline=None)
    @given(anchor=st.binary(max_size=300), url=st.binary(max_size=300))
    def test_property_round_trip(self, anchor: bytes, url: bytes) -> None:
        self.assertEqual(apply_delta(anchor, delta(anchor, url)), url)

    @settings(max_examples=300, deadline=None)
    @given(
        anchor=st.binary(max_size=40),
        urls=st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.tuples(st.binary(max_size=8), st.binary(max_size=8)).map(
                    lambda pair: b"https://c/v/" + pair[0] + b".ts?t=" + pair[1]
                ),
            ),
            max_size=12,
        ),
    )
    def test_property_encoder_equals_delta_in_any_order(
        self, anchor: bytes, urls: list[bytes]
    ) -> None:
        anchor = b"https://c/v/index.m3u8?t=" + anchor
        encoder = DeltaEncoder(anchor)
        for url in urls + urls[::-1]:
            self.assertEqual(encoder.encode(url), delta(anchor, url))
        expected = [delta(anchor, url) for url in urls + urls[::-1]]
        self.assertEqual(DeltaEncoder(anchor).encode_many(urls + urls[::-1]), expected)
