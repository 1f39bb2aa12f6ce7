"""Catch-up child URLs (`/c/…`): signed like `/p/` children, with named parts left open.

An IPTV player asks for a past programme by changing the channel URL it was given:

- `catchup="append"`/`"shift"`: it appends a query (`?utc=…&lutc=…`) to the channel URL.
  The `/c/` child for such a channel passes the query it is requested with on to the
  upstream channel URL (after the upstream's own query).
- `catchup="default"`: it fills `{utc}`-style placeholders in `catchup-source`. The
  `/c/` child signs the template with its placeholders in place and carries each
  placeholder as a query parameter (`?v0={utc}&v1={lutc}`), which the player fills in;
  the values go back into their positions, percent-encoded, so a value can never reach
  another part of the URL. Everything else stays signed.

The path is made and checked by `Signer` (so key rotation and expiry apply), with the
upstream URL prefixed by its mode. A `/c/` path is therefore never a valid `/p/` child
(its "URL" is not http) and a `/p/` path is never a valid `/c/` one (no mode prefix).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote

from .errors import bad_request, forbidden
from .playlist import UriKind
from .signing import ChildTarget, Signer, StreamSpec
from .urls import quote_unsafe

__all__ = ["PLACEHOLDER", "append_path", "resolve", "template_url"]

_APPEND = "append:"
_TEMPLATE = "template:"
# `{utc}`, `{utc:Y-m-d}`, `${start}`, `{duration:3600}`, `{catchup-id}`.
PLACEHOLDER = re.compile(r"\$?\{[^{}\s]{1,40}\}")
_MAX_PLACEHOLDERS = 16
# Characters a filled-in value keeps as they are; the rest is percent-encoded.
_VALUE_SAFE = "-._~:"


def _child(signer: Signer, stream: StreamSpec, marked_url: str, kind: UriKind) -> str:
    path = signer.path(stream, marked_url, kind)
    return "/c/" + path.removeprefix("/p/")


def append_path(signer: Signer, stream: StreamSpec, url: str, kind: UriKind) -> str:
    """The path of a channel whose player appends a catch-up query to it."""
    return _child(signer, stream, _APPEND + url, kind)


def template_url(signer: Signer, stream: StreamSpec, template: str, kind: UriKind) -> str:
    """The path and query (placeholders in place) for a `catchup-source` template."""
    placeholders = PLACEHOLDER.findall(template)
    if len(placeholders) > _MAX_PLACEHOLDERS:
        raise ValueError("too many placeholders")
    path = _child(signer, stream, _TEMPLATE + template, kind)
    query = "&".join(f"v{index}={text}" for index, text in enumerate(placeholders))
    return f"{path}?{query}" if query else path


def resolve(child: ChildTarget, query: str) -> str:
    """The upstream URL a verified `/c/` child asks for, given the request's query."""
    if child.url.startswith(_APPEND):
        url = child.url[len(_APPEND) :]
        if not query:
            return url
        base = url.partition("#")[0]
        return quote_unsafe(base + ("&" if "?" in base else "?") + query)
    if child.url.startswith(_TEMPLATE):
        template = child.url[len(_TEMPLATE) :]
        values = dict(parse_qsl(query, keep_blank_values=True))
        pieces = PLACEHOLDER.split(template)
        filled = [pieces[0]]
        for index, piece in enumerate(pieces[1:]):
            value = values.get(f"v{index}")
            if value is None:
                raise bad_request(f"catch-up parameter v{index} missing")
            filled += [quote(value, safe=_VALUE_SAFE), piece]
        return quote_unsafe("".join(filled))
    raise forbidden("not a catch-up URL")
