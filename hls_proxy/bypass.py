"""Domain-locked and token streams: the browser identity a CDN expects, and the
tokens a child URL should carry. Pure functions.

- Identity: with no `h_referer` / `h_origin`, a CDN that checks them most likely
  expects its own site, i.e. the entry URL's origin. We send that, with the Accept
  headers a browser's media element sends. Explicit `h_*` always win.
- Token carry-over (tokens.py): which of the playlist's auth parameters a child may
  need, decided per stream by the `inherit_query` switch kept here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .signing import StreamSpec
from .streamspec import stream_spec
from .tokens import (
    TOKEN_PARAMS,
    CarryMode,
    carry_mode,
    carry_tokens,
    has_token,
    is_token_param,
)
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
    "stream_carry_mode",
]

IDENTITY_HEADERS = ("referer", "origin", "accept", "accept-language")
_ACCEPT = "*/*"
_ACCEPT_LANGUAGE = "en-US,en;q=0.9"


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


def stream_carry_mode(stream: StreamSpec) -> CarryMode:
    """How the stream's children get its playlists' tokens (`inherit_query`)."""
    return carry_mode(stream.option("inherit_query", CarryMode.RETRY.value))


def carries_tokens(stream: StreamSpec, playlist_url: str) -> bool:
    """Whether children of this playlist are fetched with its tokens appended: only
    when asked for (`inherit_query=1`); by default they are a candidate for a retry."""
    return stream_carry_mode(stream) is CarryMode.ALWAYS and has_token(playlist_url)
