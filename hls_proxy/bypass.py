"""Domain-locked and token streams: the browser identity a CDN expects, and the
tokens a child URL should carry. Pure functions.

- Identity: with no `h_referer` / `h_origin`, a CDN that checks them most likely
  expects its own site, i.e. the entry URL's origin. We send that, with the Accept
  headers a browser's media element sends. Explicit `h_*` always win.
- Token carry-over: Akamai (`hdnts`), CloudFront (`Policy`/`Signature`/`Key-Pair-Id`),
  S3 (`X-Amz-*`), Wowza/nimble (`wmsAuthSign`) and many origins put the auth token on
  the playlist URL only and expect every request of the stream to repeat it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from .signing import StreamSpec
from .streamspec import stream_spec
from .urls import EntryRequest

__all__ = [
    "IDENTITY_HEADERS",
    "TOKEN_PARAMS",
    "carries_tokens",
    "carry_tokens",
    "derived_identity",
    "entry_stream",
    "has_token",
    "is_token_param",
]

# Query parameter names (lower case) that carry auth; documented in the README.
TOKEN_PARAMS = frozenset(
    "token auth hdnts hdntl hdnea sig signature expires exp e st hash policy key-pair-id "
    "wmsauthsign md5 acl hmac validfrom validto".split()
)
_TOKEN_PREFIXES = ("x-amz-", "x-goog-")
IDENTITY_HEADERS = ("referer", "origin", "accept", "accept-language")
_ACCEPT = "*/*"
_ACCEPT_LANGUAGE = "en-US,en;q=0.9"


def is_token_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TOKEN_PARAMS or lowered.startswith(_TOKEN_PREFIXES)


def _token_pairs(url: str) -> list[str]:
    """The token parameters of `url` as written (`name=value`), in order."""
    query = urlsplit(url).query
    return [
        part
        for part in query.split("&")
        if part and is_token_param(unquote(part.partition("=")[0]))
    ]


def has_token(url: str) -> bool:
    return bool(_token_pairs(url))


def carry_tokens(parent_url: str, child_url: str) -> str:
    """`child_url` with the parent's token parameters appended, when it has none itself
    and is on the same host; otherwise unchanged."""
    tokens = _token_pairs(parent_url)
    if not tokens or has_token(child_url):
        return child_url
    parent, child = urlsplit(parent_url), urlsplit(child_url)
    if (parent.hostname, parent.port) != (child.hostname, child.port):
        return child_url
    base, _, fragment = child_url.partition("#")
    joined = base + ("&" if child.query else "?") + "&".join(tokens)
    return joined + ("#" + fragment if fragment else "")


def derived_identity(entry_url: str, headers: dict[str, str]) -> dict[str, str]:
    """The identity headers to add for a stream; explicit headers are never replaced."""
    parts = urlsplit(entry_url)
    # Never the userinfo: a browser strips it from Referer and Origin too.
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    derived: dict[str, str] = {}
    if "referer" not in headers and "origin" not in headers:
        derived["referer"] = origin + "/"
        derived["origin"] = origin
    if "accept" not in headers:
        derived["accept"] = _ACCEPT
    if "accept-language" not in headers:
        derived["accept-language"] = _ACCEPT_LANGUAGE
    return derived


def entry_stream(entry: EntryRequest, bypass_by_default: bool) -> StreamSpec:
    """The stream an entry request opens, with the identity and switches it asked for.

    Derived Referer/Origin are listed in the `derived` option so the upstream client can
    retry without them when a CDN refuses them (and with them, the other way round).
    """
    headers = dict(entry.headers)
    options: dict[str, str] = {}
    if entry.switches.get("bypass", "1" if bypass_by_default else "0") == "1":
        derived = derived_identity(entry.url, headers)
        headers.update(derived)
        droppable = sorted(name for name in derived if name in ("referer", "origin"))
        if droppable:
            options["derived"] = ",".join(droppable)
    if "inherit_query" in entry.switches:
        options["inherit_query"] = entry.switches["inherit_query"]
    if entry.switches.get("heal") == "0":  # heal.py; on unless turned off
        options["heal"] = "0"
    return stream_spec(entry.url, headers, options)


def carries_tokens(stream: StreamSpec, playlist_url: str) -> bool:
    """Whether children of this playlist get its tokens: asked for, or auto-detected."""
    switch = stream.option("inherit_query", "auto")
    return switch == "1" or (switch == "auto" and has_token(playlist_url))
