"""Entry requests: the upstream URL and the stream's headers, read from a query string.

Pure functions. Users paste URLs without percent-encoding them; when the `url`
value arrives raw (its `://` not encoded) the query parameters that are ours are taken
out and everything else is given back to the upstream URL, so a token after an `&`
is never lost.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import attrs

from .errors import ProxyError, bad_request

__all__ = ["EntryRequest", "normalize_upstream_url", "parse_entry_query"]

# Parameters that belong to the proxy, never to the upstream URL.
_OWN_PARAMS = frozenset({"url", "api_key", "bypass", "inherit_query"})
# Per-stream switches and the values they take.
_SWITCHES = {"bypass": ("0", "1"), "inherit_query": ("0", "1")}
_HEADER_PARAM = "h_"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MAX_URL_CHARS = 16 * 1024
_MAX_HEADER_PARAMS = 32
_MAX_HEADER_VALUE_CHARS = 4096
_MAX_HEADERS_CHARS = 16 * 1024
# Characters kept as they are when percent-encoding a pasted URL (RFC 3986 reserved + %).
_URL_SAFE = "%:/?#[]@!$&'()*+,;=~"


@attrs.frozen
class EntryRequest:
    """What an entry request (`/playlist.m3u8`, `/stream`) asks for."""

    url: str
    headers: dict[str, str]
    switches: dict[str, str] = attrs.field(factory=dict)  # bypass, inherit_query: "0" / "1"


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
    if parts.username is not None or parts.password is not None:
        raise bad_request("url must not carry credentials (user:pass@)")
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise bad_request("url host is not a valid name") from None
    if ":" in ascii_host:
        ascii_host = f"[{ascii_host}]"
    netloc = ascii_host if port is None else f"{ascii_host}:{port}"
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
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


def parse_entry_query(query: str) -> EntryRequest:
    """Read `url=` and `h_<name>=` from a raw query string."""
    pairs = parse_qsl(query, keep_blank_values=True)
    raw_url = next((value for key, value in pairs if key == "url"), None)
    if raw_url is None:
        raise bad_request("missing url parameter")
    url = raw_url
    if _url_was_pasted_raw(query):
        # Taken as written: unquoting would turn a token's "+" into a space.
        url = query[query.find("url=") + 4 :].split("&", 1)[0]
        leftovers = [
            f"{key}={value}" if value else key
            for key, value in _raw_pairs(query)
            if key not in _OWN_PARAMS and not key.startswith(_HEADER_PARAM)
        ]
        if leftovers:
            url += ("&" if "?" in url else "?") + "&".join(leftovers)
    headers: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith(_HEADER_PARAM):
            if any(char in value for char in "\r\n\0"):
                raise bad_request(f"invalid value for {key}")
            headers[_header_name(key)] = value
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


def _url_was_pasted_raw(query: str) -> bool:
    start = query.find("url=")
    return start >= 0 and "://" in query[start : start + 16]


def _raw_pairs(query: str) -> list[tuple[str, str]]:
    """Pairs as they were written after url=, unquoted only in their names."""
    after_url = query[query.find("url=") :].split("&")[1:]
    return [(unquote(key), value) for key, _, value in (part.partition("=") for part in after_url)]
