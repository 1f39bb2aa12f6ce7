"""How a browser reads a URI that RFC 3986 reads differently, for special schemes. Pure.

A playlist is written for hls.js in a browser, which resolves its URIs with the WHATWG URL
standard. For the special schemes (http, https, ws, wss, ftp) that parser treats `\\` as
`/`, skips any number of slashes before the host, and reads `https:host/x` as
`https://host/x` when the base has another scheme. RFC 3986 reads the same text as a path
on the playlist's own host, so a proxy resolving by RFC 3986 fetches another URL than the
player would. `special_url_fixup` gives the browser's reading as a plain RFC 3986 URL.

What it follows from the standard (https://url.spec.whatwg.org/#concept-basic-url-parser):
leading and trailing C0 controls and spaces stripped, tabs and newlines removed; the
"special relative or authority", "special authority slashes", "special authority ignore
slashes", "relative" and "relative slash" states; `\\` as `/` in the path; `.`/`..`
segments including their `%2e` spellings; the default port dropped; an ASCII host lower
cased. What it leaves alone: percent-encoding (done later by the proxy), IPv4 number
forms and IDNA (the guard and urls.py handle hosts), non-special and file references.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["SPECIAL_PORTS", "special_url_fixup"]

SPECIAL_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_SLASHES = "/\\"
_SINGLE_DOT = frozenset({".", "%2e"})
_DOUBLE_DOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


@attrs.frozen
class _Url:
    scheme: str
    userinfo: str  # "user:pass@" or ""
    host: str
    port: int | None
    path: tuple[str, ...]
    query: str | None
    fragment: str | None

    def serialize(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        text = f"{self.scheme}://{self.userinfo}{self.host}{port}/" + "/".join(self.path)
        if self.query is not None:
            text += "?" + self.query
        if self.fragment is not None:
            text += "#" + self.fragment
        return text


def special_url_fixup(reference: str, base: str) -> str:
    """The absolute URL a browser makes of `reference` against `base` (an http(s) URL).

    A reference with a non-special scheme (`skd:`, `data:`, `file:`) is returned as it is.
    Raises ValueError where the browser fails too (no host, a bad port).
    """
    text = reference.strip(_C0_AND_SPACE).translate(_TAB_OR_NEWLINE)
    base_url = _parse_absolute(base)
    match = _SCHEME.match(text)
    if match is None:
        return _relative(base_url, text).serialize()
    scheme, rest = match[1].lower(), text[match.end() :]
    if scheme not in SPECIAL_PORTS:
        return reference
    if scheme == base_url.scheme:  # "special relative or authority state"
        if rest.startswith("//"):
            return _authority(scheme, rest).serialize()
        return _relative(base_url, rest).serialize()
    # "special authority slashes" then "special authority ignore slashes": `https:host`,
    # `https:/host` and `https:\\\\host` all name the host.
    return _authority(scheme, rest).serialize()


def _parse_absolute(url: str) -> _Url:
    text = url.strip(_C0_AND_SPACE).translate(_TAB_OR_NEWLINE)
    match = _SCHEME.match(text)
    if match is None or match[1].lower() not in SPECIAL_PORTS:
        raise ValueError("base must be an absolute URL with a special scheme")
    return _authority(match[1].lower(), text[match.end() :])


def _authority(scheme: str, text: str) -> _Url:
    """From "special authority ignore slashes": the host, then the path."""
    text = text.lstrip(_SLASHES)
    end = len(text)
    for delimiter in "/\\?#":
        found = text.find(delimiter)
        if found >= 0:
            end = min(end, found)
    authority, rest = text[:end], text[end:]
    credentials, at, host_port = authority.rpartition("@")
    # An "@" inside the credentials is escaped, so RFC 3986 parsers find the same host;
    # an empty password is dropped, and empty credentials altogether.
    username, _, password = credentials.replace("@", "%40").partition(":")
    userinfo = username + (":" + password if password else "")
    userinfo = userinfo + "@" if at and userinfo else ""
    host, port = _host_port(scheme, host_port)
    if rest[:1] in ("/", "\\"):
        rest = rest[1:]  # "path start state"
    path, query, fragment = _path(scheme, [], rest)
    return _Url(scheme, userinfo, host, port, path, query, fragment)


def _host_port(scheme: str, text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        closing = text.find("]")
        if closing < 0:
            raise ValueError("unclosed IPv6 address")
        host, after = text[: closing + 1], text[closing + 1 :]
        if after and not after.startswith(":"):
            raise ValueError("text after an IPv6 address")
        port_text = after[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("a special URL needs a host")
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise ValueError("port is not a number")
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        raise ValueError("port out of range")
    if port == SPECIAL_PORTS[scheme]:
        port = None
    return (host.lower() if host.isascii() else host), port


def _relative(base: _Url, text: str) -> _Url:
    """The "relative state" and "relative slash state" for a special base."""
    if text[:1] in ("/", "\\"):
        if text[1:2] in ("/", "\\") and len(text) > 1:
            return _authority(base.scheme, text)  # `//host`, `\\host`, `/\host`
        path, query, fragment = _path(base.scheme, [], text[1:])
        return attrs.evolve(base, path=path, query=query, fragment=fragment)
    if not text:
        return attrs.evolve(base, fragment=None)
    if text.startswith("?"):
        query, _, fragment = text[1:].partition("#")
        return attrs.evolve(base, query=query, fragment=fragment if "#" in text else None)
    if text.startswith("#"):
        return attrs.evolve(base, fragment=text[1:])
    path, query, fragment = _path(base.scheme, list(base.path[:-1]), text)
    return attrs.evolve(base, path=path, query=query, fragment=fragment)


def _path(
    scheme: str, segments: list[str], text: str
) -> tuple[tuple[str, ...], str | None, str | None]:
    """The "path state" from `segments` on; then the query and the fragment."""
    text, hash_sign, fragment = text.partition("#")
    text, question_mark, query = text.partition("?")
    pieces = text.replace("\\", "/").split("/")
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        lowered = piece.lower()
        if lowered in _DOUBLE_DOT:
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in _SINGLE_DOT:
            if last:
                segments.append("")
        else:
            segments.append(piece)
    return (
        tuple(segments),
        query if question_mark else None,
        fragment if hash_sign else None,
    )
