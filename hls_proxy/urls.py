"""Entry requests: the upstream URL and the stream's headers, read from a query string.

Pure functions. The query is read as `urllib.parse.parse_qsl` reads it (what a front
proxy or a WAF checking `url` sees), and the proxy never fetches another URL than that:

- exactly one `url` parameter; a second one is 400.
- no other parameter the proxy reads may have a name ending in `url` (`h_x-url=B&url=A`,
  `URL=B&url=A`): a reader that looks for the text `url=` would find another URL. 400.
- Users paste URLs without percent-encoding them. When the `url` parameter is written
  literally as `url=` and its value starts with `scheme://` unencoded, the value is taken
  as written (a token's `+` stays a `+`), and every later parameter that is not ours
  (`h_*`, `api_key`, `bypass`, `inherit_query`, `heal`) is given back to the upstream URL as
  written, so a token after an `&` is never lost; names ending in `url` are fine there,
  they belong to the upstream. This raw reading is used only where it is unambiguous:
  its scheme and authority must be exactly those parse_qsl decodes (so `%`-escapes or a
  `+` in the host are 400, not a different host).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, quote, unquote_plus, urlsplit, urlunsplit

import attrs

from .errors import ProxyError, bad_request

__all__ = [
    "EntryRequest",
    "normalize_upstream_url",
    "parse_entry_query",
    "quote_unsafe",
    "quote_unsafe_many",
]

# Parameters that belong to the proxy, never to the upstream URL.
_OWN_PARAMS = frozenset({"url", "api_key", "bypass", "inherit_query", "heal"})
# Per-stream switches and the values they take.
_SWITCHES = {"bypass": ("0", "1"), "inherit_query": ("0", "1"), "heal": ("0", "1")}
_HEADER_PARAM = "h_"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MAX_URL_CHARS = 16 * 1024
_MAX_HEADER_PARAMS = 32
_MAX_HEADER_VALUE_CHARS = 4096
_MAX_HEADERS_CHARS = 16 * 1024
# Characters kept as they are when percent-encoding a pasted URL (RFC 3986 reserved + %).
_URL_SAFE = "%:/?#[]@!$&'()*+,;=~"
# Userinfo keeps unreserved, sub-delims, ":" and escapes; a second "@" is escaped.
_USERINFO_SAFE = "%:!$&'()*+,;=~"
_RAW_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Headers whose value is a URL: an internationalised host is sent in its IDNA form, as
# browsers do, instead of refusing the value.
_URL_HEADERS = frozenset({"referer", "origin"})


@attrs.frozen
class EntryRequest:
    """What an entry request (`/playlist.m3u8`, `/stream`) asks for."""

    url: str
    headers: dict[str, str]
    # bypass, inherit_query, heal: "0" / "1"
    switches: dict[str, str] = attrs.field(factory=dict)


def _ascii_host(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise bad_request("url host is not a valid name") from None
    return f"[{ascii_host}]" if ":" in ascii_host else ascii_host


def _userinfo(parts: SplitResult) -> str:
    """`user:pass@` as written, escaped where needed; "" when there is none.

    Kept in the URL: the upstream client turns it into Basic auth for that origin only.
    It is never logged (no URL is) and never part of a derived Referer or Origin.
    """
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at or userinfo in ("", ":"):
        return ""
    return quote(userinfo, safe=_USERINFO_SAFE) + "@"


# Characters an upstream URL may not carry as they are in a request line: anything but
# printable ASCII, and `"<>\^`{|}`. One character class (no alternation): this runs for
# every URI of a playlist.
_UNSAFE_IN_URL = re.compile(r"[^!#-;=?-\[\]_a-z~]")
_SAFE_IN_URL = bytes(byte for byte in range(256) if not _UNSAFE_IN_URL.match(chr(byte)))


def quote_unsafe(url: str) -> str:
    """`url` with what a request line cannot hold percent-encoded (the rest as written)."""
    return quote(url, safe=_URL_SAFE) if _UNSAFE_IN_URL.search(url) else url


def quote_unsafe_many(urls: list[str]) -> list[str]:
    """`quote_unsafe` of each: when none needs it, `urls` (a playlist's segments usually:
    told by deleting every safe byte of them all at once, faster than a pattern search)."""
    joined = "".join(urls)
    if joined.isascii() and not joined.encode("ascii").translate(None, _SAFE_IN_URL):
        return urls
    return [quote_unsafe(url) for url in urls]


def normalize_upstream_url(url: str) -> str:
    """An absolute http(s) URL, percent-encoded where the user or a playlist did not.

    Raises a 400 ProxyError for anything that is not one.
    """
    url = url.strip()
    if not url:
        raise bad_request("missing url parameter")
    if len(url) > _MAX_URL_CHARS:
        raise ProxyError(414, f"url longer than {_MAX_URL_CHARS} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise bad_request("url contains control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad_request("url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise bad_request("url must be http or https")
    host = parts.hostname
    if not host:
        raise bad_request("url has no host")
    ascii_host = _ascii_host(host)
    netloc = ascii_host if port is None else f"{ascii_host}:{port}"
    return urlunsplit(
        (
            parts.scheme.lower(),
            _userinfo(parts) + netloc,
            quote(parts.path, safe=_URL_SAFE) or "/",
            quote(parts.query, safe=_URL_SAFE),
            "",  # a fragment is never sent to a server
        )
    )


def _header_name(param: str) -> str:
    name = param[len(_HEADER_PARAM) :].lower()
    if not _TOKEN.match(name):
        raise bad_request(f"invalid header name in {param!r}")
    return name


def _ascii_url_value(value: str) -> str:
    """A Referer/Origin URL with an internationalised host in its IDNA form, the rest
    %-encoded as UTF-8 (what a browser sends); unchanged if it is not an http(s) URL."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return value
    ascii_host = _ascii_host(parts.hostname)
    return urlunsplit(
        (
            parts.scheme.lower(),
            ascii_host if port is None else f"{ascii_host}:{port}",
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            "",
        )
    )


def _header_value(param: str, name: str, value: str) -> str:
    if any(char in value for char in "\r\n\0"):
        raise bad_request(f"invalid value for {param}")
    if name in _URL_HEADERS and not value.isascii():
        value = _ascii_url_value(value)
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        # HTTP header values are bytes; the upstream client sends them as Latin-1.
        raise bad_request(f"{param} is not Latin-1 (ISO-8859-1) text") from None
    return value


def _is_own(name: str) -> bool:
    return name in _OWN_PARAMS or name.startswith(_HEADER_PARAM)


def _entry_url(query: str) -> str:
    """The one upstream URL the query names (see the module docstring for the rules)."""
    segments = [segment for segment in query.split("&") if segment]
    names = [unquote_plus(segment.partition("=")[0]) for segment in segments]
    where = [index for index, name in enumerate(names) if name == "url"]
    if not where:
        raise bad_request("missing url parameter")
    if len(where) > 1:
        raise bad_request("more than one url parameter")
    [at] = where
    decoded = dict(parse_qsl(segments[at], keep_blank_values=True)).get("url", "")
    written = segments[at][len("url=") :]
    raw = segments[at].startswith("url=") and _RAW_SCHEME.match(written) is not None
    for index, name in enumerate(names):
        if index == at or not name.lower().endswith("url"):
            continue
        if not (raw and index > at and not _is_own(name)):
            raise bad_request(f"parameter {name[:40]!r} looks like a second url parameter")
    if not raw:
        return decoded
    if _authority(written) != _authority(decoded):
        raise bad_request("url is ambiguous as written: percent-encode it")
    leftovers = [
        segment
        for segment, name in zip(segments[at + 1 :], names[at + 1 :], strict=True)
        if not _is_own(name)
    ]
    if leftovers:
        written += ("&" if "?" in written else "?") + "&".join(leftovers)
    return written


def _authority(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise bad_request("url is not a valid URL") from None
    return parts.scheme.lower(), parts.netloc


def parse_entry_query(query: str) -> EntryRequest:
    """Read `url=` and `h_<name>=` from a raw query string.

    The query comes as Latin-1 (one character per byte); bytes that are not ASCII are read
    as UTF-8 when they are, as a browser's address bar would send them.
    """
    if not query.isascii():
        try:
            query = query.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    url = _entry_url(query)
    pairs = parse_qsl(query, keep_blank_values=True)
    headers: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith(_HEADER_PARAM):
            name = _header_name(key)
            headers[name] = _header_value(key, name, value)
    if len(headers) > _MAX_HEADER_PARAMS:
        raise ProxyError(431, f"more than {_MAX_HEADER_PARAMS} h_ parameters")
    if any(len(value) > _MAX_HEADER_VALUE_CHARS for value in headers.values()):
        raise ProxyError(431, f"an h_ value is longer than {_MAX_HEADER_VALUE_CHARS} characters")
    if sum(len(name) + len(value) for name, value in headers.items()) > _MAX_HEADERS_CHARS:
        raise ProxyError(431, f"h_ parameters longer than {_MAX_HEADERS_CHARS} characters in all")
    switches: dict[str, str] = {}
    for key, value in pairs:
        if key in _SWITCHES:
            if value not in _SWITCHES[key]:
                raise bad_request(f"{key} must be 0 or 1")
            switches[key] = value
    return EntryRequest(normalize_upstream_url(url), headers, switches)
