"""Stateless child URLs: all that serving one needs, sealed into its path. Pure, no I/O.

Format 3, two shapes:

    /p/3<X>/<file name>            X seals the stream (id, headers, options), the expiry,
                                   the upstream URL and its kind
    /p/3<X>/<C>/<file name>        C seals another URL and kind, as a delta from X's URL,
                                   under a key bound to X

A playlist URI gets the first shape, an X of its own. Media and key URIs in a playlist
served at `/p/3X/name` are written `<C>/<name>`, relative, so a player resolves them
against the playlist's URL to `/p/3X/<C>/<name>`: the long X (a cookie, a User-Agent, a
token) is written once, in the playlist's own URL, instead of once per segment, and C is
little more than what differs from the playlist's URL (`seg00001.ts`). Under a playlist
served at the second shape (a URI listed as media that was a playlist) they are written
`../<C>/<name>`. An entry playlist (`/playlist.m3u8?url=...`) has no X in its URL, so its
media URIs are path-absolute `/p/3<X>/<C>/<name>` with X sealing the entry playlist.

Keys get the first shape too, so an EXT-X-SESSION-KEY in a multivariant playlist and its
EXT-X-KEY twin in a media playlist are one proxy URL (a player preloads the key by URI).

Nothing is readable: X and C are AES-SIV (sealing.py), deterministic, so a URL stays the
same from one rewrite to the next and caches keep working. The file name (names.py;
a disguised segment's extension is recorded in C's first byte) is not sealed but
recomputed from the unsealed URL and compared, so any changed character in the path
gives BadSignature (403) before anything is fetched.

A child may carry candidate token parameters (tokens.py): sealed after the URL in C
(after a 0xFF byte, which UTF-8 never contains), and as a sixth element in X's document.
C's delta is then taken from X's URL and X's own candidate, so a token shared down a
playlist costs about nothing per URI. URLs without them are exactly what they were.

Self-healing streams (heal.py) need two more facts, both optional so URLs minted without
them still verify: X may seal a `Lineage` (the stream's entry URL and which rendition of
it the playlist is; per playlist, so written once in X, never per segment), and a media C
may carry its media sequence number (`n` and a varint before its first byte).

X's document is compressed by compact.py (deflate with `_DICTIONARY`, random runs packed)
and carries no stream id when `streamspec.stream_spec` finds it again from the lineage's
entry URL. Format 2 (X as plain deflate, ids always written) and format 1 (signing_v1.py,
readable) still verify for one release.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence

import attrs
from twisted.internet.interfaces import IReactorTime

from .childurls import (
    CARRY_SEPARATOR,
    Anchor,
    BadSignature,
    ChildTarget,
    Lineage,
    StreamSpec,
)
from .compact import compress, decompress, inflate
from .deltas import DeltaEncoder, apply_delta, read_varint, varint
from .names import (
    PLAIN_MEDIA_EXTENSIONS,
    base_names,
    child_file_name,
    name_suffix,
    segment_extension,
)
from .playlist import UriKind
from .sealing import Sealer, open_any
from .signing_v1 import (
    LegacyKey,
    b64decode,
    b64encode,
    decode_stream_part,
    encode_stream_part,
)
from .streamspec import stream_spec

__all__ = [
    "Anchor",
    "BadSignature",
    "ChildTarget",
    "Lineage",
    "Minter",
    "Signer",
    "StreamSpec",
    "child_file_name",
    "segment_extension",
]

FORMAT = "3"  # first character of X; format 1 stream parts always start `eN` (zlib)
_FORMAT_2 = "2"  # X as plain deflate (compact.py's first form, without its flag byte)
_EXPIRY_STEP_S = 300
_OPENED_MAX = 1024  # X values kept opened: about one per playlist being watched
_KIND_BY_CHAR = {kind.value: kind for kind in UriKind}
_KIND_BYTES = {kind: kind.value.encode("ascii") for kind in UriKind}
# C's first byte for a media URI named with its playlist's segment extension (not a
# UriKind value: those are letters).
_SEGMENT_MARKS = {"ts": b"\x01", "m4s": b"\x02"}
_EXTENSION_BY_MARK = {mark[0]: extension for extension, mark in _SEGMENT_MARKS.items()}
_CARRY_SEPARATOR = CARRY_SEPARATOR  # never in UTF-8, even with surrogatepass
# A media C with its media sequence number: this byte and the number (varint) come first.
_SEQUENCED = b"n"
# Preset deflate dictionary for X: what a stream's JSON usually repeats (header names in
# their sorted order, a browser's identity, URL and token syntax). Part of formats 2 and 3:
# changing it needs a new FORMAT, or URLs already handed out stop opening.
_DICTIONARY = (
    b'[["derived","origin,referer"],["inherit_query","1"]]'
    b"https://www.example.com/index.m3u8?token=&expires=&signature=&Policy=&Key-Pair-Id="
    b"~acl=/*~hmac=.m3u8?hdnts=exp=st=playlist.m3u8master.m3u8chunklist"
    b'["accept","*/*"],["accept-language","en-US,en;q=0.9"],["authorization","Bearer '
    b'"],["cookie","cf_clearance=; __cf_bm=; PHPSESSID=; session='
    b'"],["origin","https://www.'
    b'"],["referer","https://www.'
    b'"],["user-agent","Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/'
    b"605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1Mozilla/5.0 "
    b"(X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0Mozilla/5.0 (Macintosh; "
    b"Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13"
    b'"],["user-agent","Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
    b'(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"]],'
)


def _derived_id(stream: StreamSpec, entry_url: str) -> str:
    """The id `streamspec.stream_spec` gives the stream entered at `entry_url`: an X with a
    lineage need not carry its id when this finds it again."""
    return stream_spec(entry_url, dict(stream.headers), dict(stream.options)).stream_id


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # any str round-trips, even a lone surrogate


def _child_sealer(sealer: Sealer, sealed_anchor: str) -> Sealer:
    """The key C is sealed with, bound to X: a C opens under no other X."""
    return sealer.derive(b"C" + sealed_anchor.encode("ascii"))


def _check_name(name: str, target: ChildTarget) -> None:
    if name != child_file_name(target.url, target.kind, target.segment_extension):
        raise BadSignature("bad signature")


class Minter:
    """Writes the references of one playlist's URIs: `Signer.minter` makes one per rewrite.

    A playlist URI gets a standalone `/p/3X/name` of its own, so that its own children
    hang from it (short deltas: they share its directory and usually its token); there
    are few per playlist. So does a key: the same key URI in two playlists of a stream
    is then one proxy URL. Media hang from the playlist's anchor, sealed once here
    (lazily: a master has none), so `ref` costs one AES-SIV of a few dozen bytes.
    """

    def __init__(
        self,
        child_sealer: Callable[[str], Sealer],
        standalone: Callable[[str, UriKind, str, str | None], str],
        anchor: Callable[[], tuple[Anchor, str]],
        segment_extension: str = "",
    ) -> None:
        self._sealer = child_sealer
        self._standalone = standalone
        self._anchor = anchor
        self._segment_extension = segment_extension
        self._segment_mark = _SEGMENT_MARKS.get(segment_extension, b"")
        self._media: tuple[Sealer, DeltaEncoder] | None = None
        self._prefix = ""

    def ref(
        self,
        url: str,
        kind: UriKind,
        carry: str = "",
        *,
        rendition: str | None = None,
        sequence: int | None = None,
    ) -> str:
        """The reference to write in the playlist for absolute upstream `url`.

        `/p/3X/name` for a playlist or a key; for media, relative (`C/name`, `../C/name`)
        inside a proxied playlist and path-absolute (`/p/3X/C/name`) inside an entry one.
        Resolved against the playlist's proxy URL it verifies to exactly `url`, `kind`
        and `carry` (the candidate token parameters, tokens.py). With a minter made with
        an `entry_url`, a playlist's `rendition` is sealed in its X (its Lineage); a
        segment's `sequence` is sealed in its C (heal.py).
        """
        if kind is not UriKind.MEDIA:
            return self._standalone(url, kind, carry, rendition)
        return self.media_refs([url], [carry], [sequence])[0]

    def media_refs(
        self,
        urls: Sequence[str],
        carries: Sequence[str] = (),
        sequences: Sequence[int | None] = (),
    ) -> list[str]:
        """`ref(url, UriKind.MEDIA, carry, sequence=sequence)` of each (`carries` and
        `sequences`: one per URL, or empty for none), in a few tight loops: a big
        playlist's segments cost about one AES-SIV each and little else."""
        sealer, encoder = self._media_sealing()
        plain_mark = _KIND_BYTES[UriKind.MEDIA]
        marks = [plain_mark] * len(urls)
        names: list[str] = []
        for index, (name, extension) in enumerate(base_names(list(urls))):
            if extension not in PLAIN_MEDIA_EXTENSIONS:  # else decided at once: the usual case
                suffix = name_suffix(UriKind.MEDIA, extension, self._segment_extension)
                if self._segment_mark and suffix != name_suffix(UriKind.MEDIA, extension, ""):
                    marks[index] = self._segment_mark  # verify must name it the same way
                name += suffix
            names.append(name)
        payloads = [url.encode("utf-8", "surrogatepass") for url in urls]
        if carries:
            payloads = [
                payload + _CARRY_SEPARATOR + _utf8(carry) if carry else payload
                for payload, carry in zip(payloads, carries, strict=True)
            ]
        if sequences:
            marks = [
                mark if sequence is None or sequence < 0 else _SEQUENCED + varint(sequence) + mark
                for mark, sequence in zip(marks, sequences, strict=True)
            ]
        deltas = encoder.encode_many(payloads)
        sealed = sealer.seal_many([mark + delta for mark, delta in zip(marks, deltas, strict=True)])
        prefix = self._prefix
        return [f"{prefix}{text}/{name}" for text, name in zip(sealed, names, strict=True)]

    def _media_sealing(self) -> tuple[Sealer, DeltaEncoder]:
        """The key media C are sealed with and their delta encoder: the playlist's anchor,
        sealed on first use (a multivariant playlist has no media and needs none)."""
        if self._media is None:
            anchor, self._prefix = self._anchor()
            self._media = self._sealer(anchor.sealed), DeltaEncoder(anchor.delta_base)
        return self._media


class Signer:
    """Mints child URLs with the current secret; verifies them with it or an old one.

    With `ttl_s`, an entry request's URLs carry an expiry rounded up to `_EXPIRY_STEP_S`,
    so they stay the same (and cacheable) for minutes at a time and are valid for ttl to
    ttl + step; children keep their playlist's expiry instead of extending it. With
    `api_key`, X is bound to a fingerprint of it: a new key refuses URLs minted before.
    """

    def __init__(
        self,
        secret: bytes,
        old_secrets: Sequence[bytes] = (),
        ttl_s: float | None = None,
        clock: IReactorTime | None = None,
        api_key: str | bytes | None = None,
    ) -> None:
        olds = [old for old in old_secrets if old != secret]
        self._sealers = tuple(Sealer.from_secret(each) for each in (secret, *olds))
        self._legacy_keys = (LegacyKey(secret), *(LegacyKey(old) for old in olds))
        self._ttl_s = ttl_s
        self._clock = clock
        key = api_key.encode("utf-8") if isinstance(api_key, str) else api_key
        # Only a hash of the key is bound (associated data, never in the URL).
        fingerprint = hashlib.sha256(b"hlsproxy api key\0" + key).digest() if key else b""
        self._stream_binding = [b"X" + fingerprint]
        # X opened, and the current key for C under it; bounded, cleared when full.
        self._opened: dict[str, tuple[ChildTarget, Sealer]] = {}

    def _expires(self) -> int | None:
        if self._ttl_s is None or self._clock is None:
            return None
        deadline = self._clock.seconds() + self._ttl_s
        return int(math.ceil(deadline / _EXPIRY_STEP_S) * _EXPIRY_STEP_S)

    # Formats 2 and 3.

    def _seal_stream(
        self,
        stream: StreamSpec,
        expires_s: int | None,
        url: str,
        kind: UriKind,
        carry: str = "",
        lineage: Lineage | None = None,
    ) -> str:
        steps = 0 if expires_s is None else -(-expires_s // _EXPIRY_STEP_S)
        stream_id = stream.stream_id
        if lineage is not None and _derived_id(stream, lineage.entry_url) == stream_id:
            stream_id = ""  # found again from the entry URL: not written
        fields: list[object] = [
            [list(pair) for pair in stream.options],
            [list(pair) for pair in stream.headers],
            stream_id,
            steps,
            kind.value + url,
        ]
        if carry or lineage is not None:  # only then: an X without is as it was before
            fields.append(carry)
        if lineage is not None:
            # An entry URL equal to the sealed one (an entry media playlist) is written "".
            fields.append(
                ["" if lineage.entry_url == url else lineage.entry_url, lineage.rendition]
            )
        document = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        packed = compress(_utf8(document), _DICTIONARY)
        return FORMAT + self._sealers[0].seal(packed, self._stream_binding)

    def _open_stream(self, sealed: str) -> ChildTarget:
        """X opened (from the cache: every segment of a playlist has the same), unexpired."""
        opened = self._opened.get(sealed)
        if opened is None:
            opened = self._unseal_stream(sealed), _child_sealer(self._sealers[0], sealed)
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[sealed] = opened
        target = opened[0]
        expires_s = target.expires_s
        if expires_s is not None and self._clock is not None and self._clock.seconds() > expires_s:
            raise BadSignature("proxy URL expired")
        return target

    def _child_sealers(self, sealed: str) -> Iterator[Sealer]:
        """The keys a C under X may be sealed with: the current one, then the old ones."""
        opened = self._opened.get(sealed)
        yield opened[1] if opened is not None else _child_sealer(self._sealers[0], sealed)
        for old in self._sealers[1:]:
            yield _child_sealer(old, sealed)

    def _unseal_stream(self, sealed: str) -> ChildTarget:
        version = sealed[:1]
        if version not in (FORMAT, _FORMAT_2):
            raise BadSignature("bad signature")
        opened = open_any(self._sealers, sealed[1:], self._stream_binding)
        if opened is None:
            raise BadSignature("bad signature")
        packed = opened[1]
        try:
            if version == FORMAT:
                document = decompress(packed, _DICTIONARY)
            else:  # format 2: plain deflate
                document = inflate(packed, _DICTIONARY)
            fields = json.loads(document.decode("utf-8", "surrogatepass"))
            options, headers, stream_id, steps, target, *rest = fields
            carry = str(rest[0]) if rest else ""
            entry, rendition = rest[1] if len(rest) > 1 else (None, "")
            url = target[1:]
            lineage = None if entry is None else Lineage(str(entry) or url, str(rendition))
            spec = StreamSpec(
                str(stream_id),
                tuple((str(k), str(v)) for k, v in headers),
                tuple((str(k), str(v)) for k, v in options),
            )
            if not stream_id and lineage is not None:
                spec = attrs.evolve(spec, stream_id=_derived_id(spec, lineage.entry_url))
            kind = _KIND_BY_CHAR[target[:1]]
            expires_s = int(steps) * _EXPIRY_STEP_S or None
        except (KeyError, ValueError, TypeError) as error:
            # Only reachable with our own key: a bug, never a forgery.
            raise BadSignature(f"undecodable proxy URL: {error}") from None
        anchor = Anchor(sealed, url, "", carry)
        return ChildTarget(spec, url, kind, expires_s, anchor, carry, lineage=lineage)

    def minter(
        self,
        stream: StreamSpec,
        playlist_url: str,
        parent: ChildTarget | None = None,
        entry_url: str | None = None,
        *,
        anchor_carry: str = "",
        segment_extension: str = "",
    ) -> Minter:
        """The minter for the URIs of one playlist of `stream`, fetched from `playlist_url`.

        `parent` is the verified target the playlist was requested by, None for an entry
        request. Under a format-2 parent, media refs are relative and `playlist_url` is
        unused (they hang from the parent's X); otherwise they are path-absolute under an
        X sealing `playlist_url` (best: the final URL, the one the URIs resolve against)
        and `anchor_carry` (best: the candidate tokens its children get, so their deltas
        share it). Every URL minted keeps the parent's expiry; an entry (or a parent
        without one) starts a new one. `segment_extension`: see `child_file_name`. With
        `entry_url` (heal.py), playlist refs given a rendition seal
        `Lineage(entry_url, rendition)`, and an entry's own X `Lineage(entry_url, "")`.
        """
        if parent is not None and parent.stream != stream:
            raise ValueError("parent belongs to another stream")
        expires_s = self._inherited_expiry(parent)

        def standalone(url: str, kind: UriKind, carry: str, rendition: str | None) -> str:
            lineage = None
            if entry_url is not None and rendition is not None:
                lineage = Lineage(entry_url, rendition)
            return self._path(stream, url, kind, expires_s, carry, lineage)

        def anchor() -> tuple[Anchor, str]:
            if parent is not None and parent.anchor is not None:
                return parent.anchor, parent.anchor.relative_prefix
            # Not when the URL ends with it: the deltas share it there already, and an
            # entry's X is written in full in every URI.
            carry = "" if playlist_url.endswith(anchor_carry) else anchor_carry
            lineage = None
            if entry_url is not None and parent is None:
                lineage = Lineage(entry_url, "")
            sealed = self._seal_stream(
                stream, expires_s, playlist_url, UriKind.PLAYLIST, carry, lineage
            )
            return Anchor(sealed, playlist_url, "", carry), f"/p/{sealed}/"

        return Minter(
            lambda sealed: next(self._child_sealers(sealed)), standalone, anchor, segment_extension
        )

    def path(
        self,
        stream: StreamSpec,
        url: str,
        kind: UriKind,
        parent: ChildTarget | None = None,
        carry: str = "",
    ) -> str:
        """The standalone proxy path `/p/3X/name` of one URL (a link, a redirect target).

        Expiry as for `minter`: the parent's, else a new one.
        """
        expires_s = self._inherited_expiry(parent)
        return self._path(stream, url, kind, expires_s, carry)

    def _inherited_expiry(self, parent: ChildTarget | None) -> int | None:
        if parent is not None and parent.expires_s is not None:
            return parent.expires_s
        return self._expires()

    def _path(
        self,
        stream: StreamSpec,
        url: str,
        kind: UriKind,
        expires_s: int | None,
        carry: str = "",
        lineage: Lineage | None = None,
    ) -> str:
        sealed = self._seal_stream(stream, expires_s, url, kind, carry, lineage)
        return f"/p/{sealed}/{child_file_name(url, kind)}"

    def verify(self, segments: Sequence[str]) -> ChildTarget:
        """Decode the path segments after `/p/`; raise BadSignature unless intact.

        Formats 2 and 3: `[X, name]` or `[X, C, name]`; format 1: `[stream, target.sig, name]`.
        """
        if len(segments) == 3 and "." in segments[1]:
            return self._verify_v1(*segments)
        if len(segments) == 2:
            sealed, name = segments
            target = self._open_stream(sealed)
        elif len(segments) == 3:
            sealed, child, name = segments
            anchor_target = self._open_stream(sealed)
            # C is sealed with the key current when it was minted: children of a playlist
            # sealed before a rotation are minted after it, with the new key.
            found = open_any(self._child_sealers(sealed), child)
            if found is None:
                raise BadSignature("bad signature")
            opened = found[1]
            parent_anchor = anchor_target.anchor
            assert parent_anchor is not None  # formats 2 and 3 always have one
            try:
                sequence = None
                at = 0
                if opened[:1] == _SEQUENCED:
                    sequence, at = read_varint(opened, 1)
                extension = _EXTENSION_BY_MARK.get(opened[at], "")
                kind = UriKind.MEDIA if extension else _KIND_BY_CHAR[chr(opened[at])]
                moved = sealed[:1] == FORMAT  # format 2: suffixes only at the anchor's end
                raw = apply_delta(parent_anchor.delta_base, opened[at + 1 :], moved)
                url, _, carry = raw.partition(_CARRY_SEPARATOR)
                text = url.decode("utf-8", "surrogatepass")
                carry_text = carry.decode("utf-8", "surrogatepass")
            except (KeyError, IndexError, ValueError) as error:
                raise BadSignature(f"undecodable proxy URL: {error}") from None
            anchor = attrs.evolve(parent_anchor, relative_prefix="../")
            target = attrs.evolve(
                anchor_target,
                url=text,
                kind=kind,
                anchor=anchor,
                carry=carry_text,
                segment_extension=extension,
                sequence=sequence,
            )
        else:
            raise BadSignature("malformed proxy URL")
        _check_name(name, target)
        return target

    # Format 1: verified for one release; `stream_part` + `child_path` mint it until every
    # caller uses `minter`.

    def stream_part(self, stream: StreamSpec) -> str:
        """Format 1: the encoded stream (readable; see `minter`)."""
        return encode_stream_part(stream.stream_id, stream.headers, stream.options, self._expires())

    def child_path(self, stream_part: str, url: str, kind: UriKind) -> str:
        """Format 1: the path-absolute proxy URL for one upstream URL of a stream."""
        target = kind.value + b64encode(url.encode("utf-8"))
        name = child_file_name(url, kind)
        signature = self._legacy_keys[0].sign(stream_part, target, name)
        return f"/p/{stream_part}/{target}.{signature}/{name}"

    def _verify_v1(self, stream_part: str, signed_target: str, name: str) -> ChildTarget:
        target, _, signature = signed_target.rpartition(".")
        if not any(key.matches(stream_part, target, name, signature) for key in self._legacy_keys):
            raise BadSignature("bad signature")
        try:
            kind = _KIND_BY_CHAR[target[:1]]
            url = b64decode(target[1:]).decode("utf-8")
            stream = decode_stream_part(stream_part)
        except (KeyError, ValueError) as error:
            # Only reachable with our own secret, i.e. a bug or an old format.
            raise BadSignature(f"undecodable proxy URL: {error}") from None
        expires = stream.expires_s
        if expires is not None and self._clock is not None and self._clock.seconds() > expires:
            raise BadSignature("proxy URL expired")
        spec = StreamSpec(stream.stream_id, stream.headers, stream.options)
        return ChildTarget(spec, url, kind, expires)
