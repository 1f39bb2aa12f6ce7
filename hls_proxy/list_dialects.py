"""The ways IPTV channel lists declare a channel's HTTP headers. Pure functions.

Each reader takes one line (text, without its line ending) and returns the headers it
declares, `None` when the line is not that dialect, or raises `Malformed` when it is
but cannot be read (the caller then leaves the line as it was):

- `#EXTVLCOPT:http-referrer=…` / `http-user-agent=…` / `http-origin=…` (VLC);
- `#EXTHTTP:{"User-Agent": "…"}` (a JSON object, TiviMate/OTT Navigator);
- `#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=…&Referer=…` (Kodi);
- a Kodi pipe suffix on the URL: `URL|User-Agent=X&Referer=Y` or `URL|A=X|B=Y`, values
  quoted or percent-encoded, and containing `=` (split at the first `=` only);
- `user-agent=` / `http-user-agent=` attributes of `#EXTINF`.

Attribute lists (`#EXTINF`, `#EXTM3U`) are read with the position of each value, so a
rewrite changes the value's characters and nothing else on the line.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import attrs

__all__ = [
    "Attribute",
    "Malformed",
    "attributes",
    "exthttp_headers",
    "extinf_headers",
    "extvlcopt_header",
    "kodiprop_headers",
    "split_pipe",
]

Headers = tuple[tuple[str, str], ...]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers a list may not set: they frame the request or belong to the connection.
_REFUSED = frozenset(
    "host content-length transfer-encoding connection te upgrade keep-alive trailer "
    "proxy-authorization proxy-connection".split()
)
_ALIASES = {"referrer": "referer", "useragent": "user-agent"}
_VLC_OPTIONS = {
    "http-referrer": "referer",
    "http-referer": "referer",
    "http-user-agent": "user-agent",
    "http-origin": "origin",
}
_KODIPROP_HEADERS = (
    "inputstream.adaptive.stream_headers",
    "inputstream.adaptive.manifest_headers",
)
_EXTINF_HEADERS = {"user-agent": "user-agent", "http-user-agent": "user-agent"}
# After `&` in an unquoted value: the start of another header only if it names one
# (a known single word, or a dashed name such as X-Forwarded-For); otherwise the `&`
# belongs to the value (`Referer=https://a/?b=1&c=2`).
_NEXT_PAIR = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)=")
_SINGLE_WORD_HEADERS = frozenset(
    "referer referrer origin cookie authorization accept range useragent".split()
)
_MAX_HEADERS = 32
_MAX_VALUE_CHARS = 4096
# name=value, value quoted ("…" or '…') or bare; names as Kodi/TiviMate/M3U writers use.
# One token of an attribute list: an attribute, the title's comma, a stray quoted run
# (skipped whole, so a comma inside it is not the end), or any other word.
_ATTRIBUTE_TOKEN = re.compile(
    r"""\s*(?:([A-Za-z0-9_:.-]+)=(?:"([^"]*)"|'([^']*)'|([^\s",]*))|(,)|"[^"]*"?|'[^']*'?"""
    r"""|[^\s,"']+)"""
)


class Malformed(ValueError):
    """A header declaration that cannot be read; the line is kept as it is."""


@attrs.frozen
class Attribute:
    """One `name=value` of an attribute list; `start`/`end` delimit the value only."""

    name: str  # lower case
    value: str
    start: int
    end: int


def attributes(line: str, title_follows: bool) -> tuple[list[Attribute], int]:
    """The attributes of an `#EXTINF:`/`#EXTM3U` line and where they end.

    With `title_follows` (EXTINF) the list ends at the first comma outside quotes; the
    title after it is never read as attributes (`#EXTINF:-1 a="x",Title b=c`).
    """
    colon = line.find(":")
    space = line.find(" ")
    at = min(pos for pos in (colon, space, len(line)) if pos >= 0) + 1
    found: list[Attribute] = []
    while at < len(line):
        match = _ATTRIBUTE_TOKEN.match(line, at)
        if match is None:  # only a lone quote-free oddity; step over it
            at += 1
            continue
        if match.group(5) is not None and title_follows:
            return found, match.start(5)
        if match.group(1) is not None:
            group = next(g for g in (2, 3, 4) if match.group(g) is not None)
            found.append(Attribute(match.group(1).lower(), match.group(group), *match.span(group)))
        at = max(match.end(), at + 1)
    return found, len(line)


def _header(name: str, value: str) -> tuple[str, str]:
    """A validated (lower-case name, value) pair."""
    name = name.strip().lower()
    name = _ALIASES.get(name, name)
    if not _TOKEN.fullmatch(name) or name in _REFUSED:
        raise Malformed(f"unusable header name {name[:40]!r}")
    if any(char in value for char in "\r\n\0") or len(value) > _MAX_VALUE_CHARS:
        raise Malformed(f"unusable value for {name}")
    try:
        value.encode("latin-1")  # what an HTTP header can carry
    except UnicodeEncodeError:
        raise Malformed(f"{name} is not Latin-1 text") from None
    return name, value


def _checked(pairs: list[tuple[str, str]]) -> Headers:
    if len(pairs) > _MAX_HEADERS:
        raise Malformed("too many headers")
    return tuple(_header(name, value) for name, value in pairs)


def _unquoted(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def extvlcopt_header(line: str) -> Headers | None:
    """`#EXTVLCOPT:http-user-agent=…`: one header, or None for any other VLC option."""
    if not line.startswith("#EXTVLCOPT:"):
        return None
    option, equals, value = line[len("#EXTVLCOPT:") :].partition("=")
    name = _VLC_OPTIONS.get(option.strip().lower())
    if name is None:
        return None
    if not equals:
        raise Malformed("VLC option without a value")
    return _checked([(name, _unquoted(value))])


def exthttp_headers(line: str) -> Headers | None:
    """`#EXTHTTP:{json object of string values}`."""
    if not line.startswith("#EXTHTTP:"):
        return None
    try:
        document = json.loads(line[len("#EXTHTTP:") :])
    except ValueError:
        raise Malformed("EXTHTTP is not JSON") from None
    if not isinstance(document, dict) or not all(
        isinstance(value, str) for value in document.values()
    ):
        raise Malformed("EXTHTTP is not an object of strings")
    return _checked(list(document.items()))


def kodiprop_headers(line: str) -> Headers | None:
    """`#KODIPROP:inputstream.adaptive.stream_headers=Name=value&Name=value`."""
    if not line.startswith("#KODIPROP:"):
        return None
    prop, equals, value = line[len("#KODIPROP:") :].partition("=")
    if prop.strip().lower() not in _KODIPROP_HEADERS:
        return None
    if not equals:
        raise Malformed("KODIPROP headers without a value")
    return _checked(_pairs(value))


def extinf_headers(found: list[Attribute]) -> Headers:
    """The headers an `#EXTINF` line's attributes declare (malformed ones are skipped)."""
    headers: list[tuple[str, str]] = []
    for attribute in found:
        name = _EXTINF_HEADERS.get(attribute.name)
        if name is not None and attribute.value:
            try:
                headers.append(_header(name, attribute.value))
            except Malformed:
                continue
    return tuple(headers)


def split_pipe(line: str) -> tuple[str, Headers | None]:
    """`URL|Name=value…` → (URL, headers); (line, None) without a pipe."""
    url, pipe, rest = line.partition("|")
    if not pipe:
        return line, None
    return url, _checked(_pairs(rest))


def _pairs(text: str) -> list[tuple[str, str]]:
    """`A=x&B=y`, `A=x|B=y`, `A="x&y"|B=y%3Dz`: split at the first `=` of each pair.

    Unquoted values are percent-decoded, as Kodi does; quoted ones are taken literally.
    """
    pairs: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        if text[at] in "&| ":
            at += 1
            continue
        equals = text.find("=", at)
        if equals < 0:
            raise Malformed("header without '='")
        name = text[at:equals]
        start = equals + 1
        if start < len(text) and text[start] in "\"'":
            close = text.find(text[start], start + 1)
            if close < 0:
                raise Malformed("unterminated quoted header value")
            pairs.append((name, text[start + 1 : close]))
            at = close + 1
            if at < len(text) and text[at] not in "&|":
                raise Malformed("text after a quoted header value")
            continue
        end = _value_end(text, start)
        pairs.append((name, unquote(text[start:end])))
        at = end
    return pairs


def _value_end(text: str, start: int) -> int:
    """Where an unquoted value ends: at `|`, or at an `&` that starts another header."""
    at = start
    while True:
        separator = min((pos for pos in (text.find("&", at), text.find("|", at)) if pos >= 0),
                        default=-1)  # fmt: skip
        if separator < 0:
            return len(text)
        if text[separator] == "|":
            return separator
        match = _NEXT_PAIR.match(text, separator + 1)
        if match is not None:
            name = match.group(1).lower()
            if "-" in name or name in _SINGLE_WORD_HEADERS:
                return separator
        at = separator + 1
