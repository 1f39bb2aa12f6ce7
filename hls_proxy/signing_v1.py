"""Child URLs of format 1, still accepted for one release: `/p/<stream>/<kind><url>.<hmac>/<name>`.

The stream part is zlib+base64 JSON and the URL is base64: readable by anyone who has the
URL, which is why format 2 (signing.py) seals both. Kept so that playlists already handed
out keep playing across an upgrade; `Signer.stream_part` / `Signer.child_path` still mint
it until every caller uses `Signer.minter`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import zlib

import attrs

__all__ = [
    "LegacyKey",
    "LegacyStream",
    "b64decode",
    "b64encode",
    "decode_stream_part",
    "encode_stream_part",
]

_SIGNATURE_BYTES = 16
_URL_SAFE_ALPHABET = bytes.maketrans(b"+/", b"-_")


def b64encode(data: bytes) -> str:
    encoded = binascii.b2a_base64(data, newline=False).translate(_URL_SAFE_ALPHABET)
    return encoded.rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class LegacyStream:
    """What a format-1 stream part holds."""

    stream_id: str
    headers: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    expires_s: int | None


def encode_stream_part(
    stream_id: str,
    headers: tuple[tuple[str, str], ...],
    options: tuple[tuple[str, str], ...],
    expires_s: int | None,
) -> str:
    fields: list[object] = [1, stream_id, [list(pair) for pair in headers]]
    # Both absent when unused, so URLs minted before they existed still verify.
    if options or expires_s is not None:
        fields.append([list(pair) for pair in options])
    if expires_s is not None:
        fields.append(expires_s)
    document = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return b64encode(zlib.compress(document.encode("utf-8", "surrogatepass"), 9))


def decode_stream_part(stream_part: str) -> LegacyStream:
    """ValueError (or a subclass) unless `stream_part` is a format-1 stream part."""
    try:
        version, stream_id, headers, *rest = json.loads(zlib.decompress(b64decode(stream_part)))
        options = rest[0] if rest else []
        expires = rest[1] if len(rest) > 1 else None
        if version != 1:
            raise ValueError("unsupported proxy URL version")
        return LegacyStream(
            str(stream_id),
            tuple((str(k), str(v)) for k, v in headers),
            tuple((str(k), str(v)) for k, v in options),
            None if expires is None else int(expires),
        )
    except (TypeError, binascii.Error, zlib.error) as error:
        raise ValueError(str(error)) from None


class LegacyKey:
    """One HMAC key, with the per-stream-part MAC state cached."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._stream_macs: dict[str, hmac.HMAC] = {}

    def sign(self, stream_part: str, target: str, name: str) -> str:
        # HMAC over "stream_part/target/name"; the stream part is the same for every URI
        # of a playlist, so its state is computed once and copied.
        prefix = self._stream_macs.get(stream_part)
        if prefix is None:
            if len(self._stream_macs) >= 256:
                self._stream_macs.clear()
            prefix = hmac.new(self._secret, stream_part.encode("ascii", "replace") + b"/", "sha256")
            self._stream_macs[stream_part] = prefix
        mac = prefix.copy()
        mac.update(f"{target}/{name}".encode("ascii", "replace"))
        return b64encode(mac.digest()[:_SIGNATURE_BYTES])

    def matches(self, stream_part: str, target: str, name: str, signature: str) -> bool:
        expected = self.sign(stream_part, target, name).encode("ascii")
        return hmac.compare_digest(expected, signature.encode("ascii", "replace"))
