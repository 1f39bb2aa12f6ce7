"""compact.py: small documents made smaller, and given back exactly."""

from __future__ import annotations

import json
import random
import string
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from hls_proxy.compact import compress, decompress

DICTIONARY = b'["cookie","session=","user-agent","Mozilla/5.0 '
_PIECES = st.sampled_from(["cookie", "session=", "a" * 20, "0123456789abcdef" * 2, "-_", "\u00e9"])
_TEXT = st.lists(
    st.one_of(
        _PIECES, st.text(alphabet=string.ascii_letters + string.digits + "-_=;", max_size=70)
    ),
    max_size=8,
).map("".join)


def random_text(alphabet: str, length: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(alphabet, k=length))


class CompactTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_TEXT, max_size=6))
    def test_any_json_document_comes_back_exactly(self, values: list[str]) -> None:
        document = json.dumps(values, ensure_ascii=False).encode()
        packed = compress(document, DICTIONARY)
        self.assertEqual(decompress(packed, DICTIONARY), document)

    def test_random_runs_cost_their_entropy(self) -> None:
        b64 = random_text(string.ascii_letters + string.digits + "-_", 140, 1)
        hexa = random_text("0123456789abcdef", 64, 2)
        document = json.dumps([["cookie", f"session={b64}"], f"x?hmac={hexa}", hexa]).encode()
        deflated = compress(b"\x01" + document, DICTIONARY)  # a marker byte: plain deflate
        packed = compress(document, DICTIONARY)
        self.assertEqual(decompress(packed, DICTIONARY), document)
        self.assertEqual(packed[:1], b"\x01")
        # 105 bytes of base64 bits + 32 of hex, the repeated HMAC nearly free.
        self.assertLess(len(packed), 105 + 32 + 40)
        self.assertLess(len(packed), len(deflated) - 25)

    def test_words_stay_text_and_never_cost_more_than_deflate(self) -> None:
        document = json.dumps(["akamai-live-streaming-cdn", "user-agent", "a" * 30]).encode()
        packed = compress(document, DICTIONARY)
        self.assertEqual(packed[:1], b"\x00")
        self.assertEqual(decompress(packed, DICTIONARY), document)

    def test_anything_else_is_refused(self) -> None:
        packed = compress(json.dumps(["0123456789abcdef" * 3]).encode(), DICTIONARY)
        for broken in (b"", b"\x02", packed[:-1], packed + b"\x00", b"\x00" + b"\xff" * 8):
            with self.assertRaises(ValueError):
                decompress(broken, DICTIONARY)

    def test_time_stays_linear_in_a_hostile_documents_length(self) -> None:
        # A 16 KB cookie of letters only: a look-ahead per position made this seconds.
        for document in (b"x" * 16384, b"ab-" * 5461, b"a1" * 8192):
            started = time.perf_counter()
            self.assertEqual(decompress(compress(document, DICTIONARY), DICTIONARY), document)
            self.assertLess(time.perf_counter() - started, 0.25)
