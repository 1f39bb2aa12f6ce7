"""Sealed URL parts: deterministic authenticated encryption. Pure.

A sealed part is base64url(AES-SIV(plaintext, associated data)). AES-SIV (RFC 5297) is
deterministic: the same input always gives the same text, so a proxied URL stays the
same from one rewrite to the next and caches in front of the proxy keep working, while
nothing of the plaintext is readable and any change to the text fails to open.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer", "open_any"]

_KEY_LABEL = b"hlsproxy child URL v2 AES-SIV"
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
_STANDARD = bytes.maketrans(b"-_", b"+/")


def _encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


def _decode(text: str) -> bytes | None:
    """The bytes of a canonical base64url text; None for anything else.

    Canonical only: a lenient decoder maps several texts to one value (unused low bits in
    the last character, `+` for `-`), and then a changed character would still open.
    """
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    try:
        data = binascii.a2b_base64(raw.translate(_STANDARD) + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None
    return data if _encode(data) == text else None


class Sealer:
    """AES-SIV under one 512-bit key; `derive` makes the key of a sub-context.

    From a secret, HKDF-SHA256 with a label gives the AES-SIV key and a separate key for
    `derive`; the label keeps both apart from any other use of the same secret, such as
    the HMAC of the previous URL format.
    """

    def __init__(self, siv_key: bytes, derive_key: bytes = b"") -> None:
        self._siv = AESSIV(siv_key)
        self._derive_key = derive_key

    @classmethod
    def from_secret(cls, secret: bytes) -> Sealer:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=128, salt=None, info=_KEY_LABEL)
        keys = hkdf.derive(secret)
        return cls(keys[:64], keys[64:])

    def derive(self, context: bytes) -> Sealer:
        """A sealer whose texts open only under the same `context` (HMAC-SHA512 as PRF).

        Binding by key rather than by associated data: one key per playlist costs a few
        microseconds once, associated data would cost about a microsecond per URI.
        """
        assert self._derive_key, "derive from a sealer made by from_secret"
        return Sealer(hmac.digest(self._derive_key, context, "sha512"))

    def seal(self, plaintext: bytes, associated: list[bytes] | None = None) -> str:
        return _encode(self._siv.encrypt(plaintext, associated))

    def seal_many(self, plaintexts: Iterable[bytes]) -> list[str]:
        """`seal` of each (no associated data), in one loop: a playlist's segments."""
        encrypt, b2a = self._siv.encrypt, binascii.b2a_base64
        # `_encode` written inline: a call per segment costs as much as the base64 itself.
        return [
            b2a(encrypt(plaintext, None), newline=False).translate(_URL_SAFE).rstrip(b"=").decode()
            for plaintext in plaintexts
        ]

    def open(self, text: str, associated: list[bytes] | None = None) -> bytes | None:
        """The plaintext, or None unless `text` is exactly what `seal` gave for it."""
        sealed = _decode(text)
        if sealed is None or len(sealed) < 16:
            return None
        try:
            return self._siv.decrypt(sealed, associated)
        except InvalidTag:
            return None


def open_any(
    sealers: Iterable[Sealer], text: str, associated: list[bytes] | None = None
) -> tuple[Sealer, bytes] | None:
    """Open with the first key that fits (current, then old ones); which key, and what."""
    for sealer in sealers:
        plaintext = sealer.open(text, associated)
        if plaintext is not None:
            return sealer, plaintext
    return None
