"""Signed, stateless child URLs: pure functions, no I/O.

A child URL carries everything needed to serve it on any instance that shares the
secret: the stream (its id and upstream headers), the upstream URL and its kind.

    /p/<stream part>/<kind><url part>.<signature>/<file name>

The stream part is the same for every URI of a playlist, so it is encoded once per
rewrite. The file name keeps the upstream extension because ffmpeg's HLS demuxer and
ExoPlayer choose by it; it is covered by the signature, so any changed character in
the path gives 403 before anything is fetched.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import zlib
from collections.abc import Sequence

import attrs
from twisted.internet.interfaces import IReactorTime

from .playlist import UriKind

__all__ = ["BadSignature", "ChildTarget", "Signer", "StreamSpec", "child_file_name"]

_SIGNATURE_BYTES = 16
_EXPIRY_STEP_S = 300
_KIND_BY_CHAR = {kind.value: kind for kind in UriKind}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_SAFE_NAME_FULL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")
_DEFAULT_EXTENSION = {UriKind.PLAYLIST: "m3u8", UriKind.MEDIA: "ts", UriKind.KEY: "key"}
# Extensions players recognise; anything else (.php, .jpg disguises) gets the kind's own.
_MEDIA_EXTENSIONS = frozenset(
    "ts m2ts mts m4s mp4 m4a m4v mov cmfv cmfa cmft aac ac3 ec3 eac3 mp3 mp2 flac ogg oga "
    "ogv opus webm mkv vtt webvtt srt ttml dfxp xml json key bin m3u8 m3u mpd jpg jpeg png "
    "gif webp".split()
)
_PLAYLIST_EXTENSIONS = frozenset({"m3u8", "m3u"})


class BadSignature(ValueError):
    """The path is not one this proxy signed (or it was changed)."""


@attrs.frozen
class StreamSpec:
    """What a child URL carries about its stream: its id and the upstream headers."""

    stream_id: str
    headers: tuple[tuple[str, str], ...]
    # Per-stream switches (bypass.py): which headers were derived, token carry-over.
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.options if key == name), default)


@attrs.frozen
class ChildTarget:
    """A verified child URL, decoded."""

    stream: StreamSpec
    url: str
    kind: UriKind


_URL_SAFE_ALPHABET = bytes.maketrans(b"+/", b"-_")


def _b64encode(data: bytes) -> str:
    encoded = binascii.b2a_base64(data, newline=False).translate(_URL_SAFE_ALPHABET)
    return encoded.rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def child_file_name(url: str, kind: UriKind) -> str:
    """The last path segment of a child URL: the upstream file name, made safe.

    The extension is kept when players know it; otherwise the kind's usual one is
    appended (a variant at `index.php` becomes `index.php.m3u8`).
    """
    path = url.partition("#")[0].partition("?")[0]
    if path.count("/") < 3:  # http://host with no path
        path = ""
    name = path.rpartition("/")[2]
    if not _SAFE_NAME_FULL.fullmatch(name):
        name = _SAFE_NAME.sub("_", name)[-80:].lstrip(".") or "index"
    stem, dot, extension = name.rpartition(".")
    extension = extension.lower() if dot and stem else ""
    known = _PLAYLIST_EXTENSIONS if kind is UriKind.PLAYLIST else _MEDIA_EXTENSIONS
    if extension not in known:
        name = f"{name}.{_DEFAULT_EXTENSION[kind]}"
    return name


class _Key:
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
        return _b64encode(mac.digest()[:_SIGNATURE_BYTES])


class Signer:
    """Mints child URLs with the current secret; verifies them with it or an old one.

    With `ttl_s`, URLs carry an expiry rounded up to `_EXPIRY_STEP_S`, so they stay the
    same (and cacheable) for minutes at a time and are valid for ttl to ttl + step.
    """

    def __init__(
        self,
        secret: bytes,
        old_secrets: Sequence[bytes] = (),
        ttl_s: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self._key = _Key(secret)
        self._old_keys = tuple(_Key(old) for old in old_secrets if old != secret)
        self._ttl_s = ttl_s
        self._clock = clock

    def _expires(self) -> int | None:
        if self._ttl_s is None or self._clock is None:
            return None
        deadline = self._clock.seconds() + self._ttl_s
        return int(math.ceil(deadline / _EXPIRY_STEP_S) * _EXPIRY_STEP_S)

    def stream_part(self, stream: StreamSpec) -> str:
        """The encoded stream (compressed: headers repeat on every line of a playlist)."""
        fields: list[object] = [1, stream.stream_id, [list(pair) for pair in stream.headers]]
        expires = self._expires()
        # Both absent when unused, so URLs minted before they existed still verify.
        if stream.options or expires is not None:
            fields.append([list(pair) for pair in stream.options])
        if expires is not None:
            fields.append(expires)
        document = json.dumps(
            fields,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return _b64encode(zlib.compress(document.encode("utf-8"), 9))

    def child_path(self, stream_part: str, url: str, kind: UriKind) -> str:
        """The path-absolute proxy URL for one upstream URL of a stream."""
        target = kind.value + _b64encode(url.encode("utf-8"))
        name = child_file_name(url, kind)
        signature = self._key.sign(stream_part, target, name)
        return f"/p/{stream_part}/{target}.{signature}/{name}"

    def verify(self, segments: Sequence[str]) -> ChildTarget:
        """Decode the path segments after `/p/`; raise BadSignature unless intact."""
        if len(segments) != 3:
            raise BadSignature("malformed proxy URL")
        stream_part, signed_target, name = segments
        target, _, signature = signed_target.rpartition(".")
        given = signature.encode("ascii", "replace")
        if not any(
            hmac.compare_digest(key.sign(stream_part, target, name).encode("ascii"), given)
            for key in (self._key, *self._old_keys)
        ):
            raise BadSignature("bad signature")
        try:
            kind = _KIND_BY_CHAR[target[:1]]
            url = _b64decode(target[1:]).decode("utf-8")
            version, stream_id, headers, *rest = json.loads(
                zlib.decompress(_b64decode(stream_part))
            )
            options = rest[0] if rest else []
            expires = rest[1] if len(rest) > 1 else None
        except (KeyError, ValueError, TypeError, binascii.Error, zlib.error) as error:
            # Only reachable with our own secret, i.e. a bug or an old format.
            raise BadSignature(f"undecodable proxy URL: {error}") from None
        if version != 1:
            raise BadSignature("unsupported proxy URL version")
        if expires is not None and self._clock is not None and self._clock.seconds() > expires:
            raise BadSignature("proxy URL expired")
        spec = StreamSpec(
            str(stream_id),
            tuple((str(k), str(v)) for k, v in headers),
            tuple((str(k), str(v)) for k, v in options),
        )
        return ChildTarget(spec, url, kind)
