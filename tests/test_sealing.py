"""Sealed URL parts: AES-SIV, canonical base64url."""

from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.sealing import Sealer, open_any

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
