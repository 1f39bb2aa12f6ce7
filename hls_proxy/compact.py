"""Small documents made smaller: deflate with a preset dictionary, random runs packed. Pure.

A sealed stream (signing.py's X) is mostly a JSON document of headers and URLs, and
much of its length is random text: a cookie's value, a CDN token's HMAC. Deflate codes
such text at 5 to 6 bits a character plus the table it must send for them; packed as
the bits it holds (6 per base64url character, 4 per hex digit), a random run costs its
entropy and nothing else. So `compress` takes each run of at least 16 random-looking
characters out of the text, leaves a marker in its place, deflates what remains, and
appends the packed runs; a run seen before is a reference to it. Whichever of that and
plain deflate is shorter is kept (the first byte says which).

The markers are bytes JSON text never holds raw (control characters are escaped).
"""

from __future__ import annotations

import base64
import re
import zlib

from .deltas import read_varint, varint

__all__ = ["compress", "decompress", "inflate"]

_DEFLATED = b"\x00"  # then the raw deflate stream of the document
_PACKED = b"\x01"  # then varint(length of the deflated rest), that deflate stream, the runs
_BASE64_RUN = 1  # then varint(characters): that many base64url characters, packed
_HEX_RUN = 2  # then varint(characters): that many lower-case hex digits, packed
_REPEAT = 3  # then varint(index): the index-th run again
_MARKERS = bytes([_BASE64_RUN, _HEX_RUN, _REPEAT])
_MARKER = re.compile(rb"[\x01-\x03]")
# Runs of base64url characters (hex digits among them), maximal: a linear search. Worth
# packing when all hex, or with a digit and a letter in them (a long hyphenated word,
# which deflate codes well, stays text).
_RUN = re.compile(rb"[A-Za-z0-9_-]{16,}")
_DIGIT = re.compile(rb"[0-9]")
_LETTER = re.compile(rb"[A-Za-z]")
_HEX = re.compile(rb"[0-9a-f]+")
_MAX_RUNS = 64


def _deflate(data: bytes, dictionary: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return deflate.compress(data) + deflate.flush()


def inflate(data: bytes, dictionary: bytes) -> bytes:
    """One whole raw deflate stream made with `dictionary`, inflated; ValueError if not."""
    inflater = zlib.decompressobj(-15, dictionary)
    try:
        out = inflater.decompress(data) + inflater.flush()
    except zlib.error as error:
        raise ValueError(f"undecodable deflate stream: {error}") from None
    if not inflater.eof or inflater.unused_data:
        raise ValueError("not one whole deflate stream")
    return out


def _pack_run(run: bytes) -> tuple[int, bytes]:
    if _HEX.fullmatch(run):
        return _HEX_RUN, bytes.fromhex((run + b"0" * (len(run) % 2)).decode("ascii"))
    padded = run + b"A" * (-len(run) % 4)  # "A" is six zero bits
    return _BASE64_RUN, base64.urlsafe_b64decode(padded)[: (6 * len(run) + 7) // 8]


def _unpack_run(kind: int, characters: int, data: bytes, at: int) -> tuple[bytes, int]:
    if kind == _HEX_RUN:
        end = at + (characters + 1) // 2
        run = data[at:end].hex().encode("ascii")[:characters]
    else:
        end = at + (6 * characters + 7) // 8
        whole = data[at:end] + b"\0" * (-(end - at) % 3)
        run = base64.urlsafe_b64encode(whole)[:characters]
    if end > len(data) or len(run) != characters:
        raise ValueError("truncated run")
    return run, end


def compress(document: bytes, dictionary: bytes) -> bytes:
    """`document` (text without raw control characters, as JSON) made small."""
    plain = _DEFLATED + _deflate(document, dictionary)
    if any(marker in document for marker in _MARKERS) or _RUN.search(document) is None:
        return plain
    runs: list[bytes] = []
    seen: dict[bytes, int] = {}
    packed: list[bytes] = []

    def marker(match: re.Match[bytes]) -> bytes:
        run = match.group()
        if not (_HEX.fullmatch(run) or (_DIGIT.search(run) and _LETTER.search(run))):
            return run
        if run in seen:
            return bytes([_REPEAT]) + varint(seen[run])
        if len(runs) >= _MAX_RUNS:
            return run
        seen[run] = len(runs)
        runs.append(run)
        kind, bits = _pack_run(run)
        packed.append(bits)
        return bytes([kind]) + varint(len(run))

    structure = _deflate(_RUN.sub(marker, document), dictionary)
    if not runs:
        return plain
    compact = _PACKED + varint(len(structure)) + structure + b"".join(packed)
    return compact if len(compact) < len(plain) else plain


def decompress(data: bytes, dictionary: bytes) -> bytes:
    """The document `compress` was given; ValueError if `data` cannot be one."""
    try:
        if data[:1] == _DEFLATED:
            return inflate(data[1:], dictionary)
        if data[:1] != _PACKED:
            raise ValueError("unknown compact form")
        length, at = read_varint(data, 1)
        structure = inflate(data[at : at + length], dictionary)
        at += length
        runs: list[bytes] = []
        out: list[bytes] = []
        done = 0
        for found in _MARKER.finditer(structure):
            position = found.start()
            if position < done:  # inside the number after the previous marker
                continue
            out.append(structure[done:position])
            number, done = read_varint(structure, position + 1)
            if structure[position] == _REPEAT:
                out.append(runs[number])
                continue
            run, at = _unpack_run(structure[position], number, data, at)
            runs.append(run)
            out.append(run)
        if at != len(data):
            raise ValueError("bytes left after the runs")
        out.append(structure[done:])
        return b"".join(out)
    except IndexError as error:
        raise ValueError(f"undecodable compact form: {error}") from None
