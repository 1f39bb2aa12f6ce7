"""Token carry-over: which auth parameters a child URL may need from its playlist. Pure.

Akamai (`hdnts`), CloudFront (`Policy`/`Signature`/`Key-Pair-Id`), S3 (`X-Amz-*`),
Wowza/nimble (`wmsAuthSign`) and many origins put the auth token on the playlist URL
only, and some of them expect every request of the stream to repeat it. Others (S3 and
GCS presigned children, origins that check the whole query) refuse a request whose query
is not exactly the one they signed. So by default (`inherit_query` auto) a child is
fetched as written, and the playlist's tokens are only a *candidate*: sealed into the
child URL, appended on one retry when the upstream refuses the child (upstream.py), and
then sent at once for the rest of the stream on that host. `inherit_query=1` appends
them always (the old rule), `inherit_query=0` never.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

__all__ = [
    "TOKEN_PARAMS",
    "CarryMode",
    "append_query",
    "carrier",
    "carry_for",
    "carry_mode",
    "carry_tokens",
    "children_tokens",
    "has_token",
    "is_token_param",
    "token_query",
]

# Query parameter names (lower case) that carry auth; documented in the README.
TOKEN_PARAMS = frozenset(
    "token auth hdnts hdntl hdnea sig signature expires exp e st hash policy key-pair-id "
    "wmsauthsign md5 acl hmac validfrom validto".split()
)
_TOKEN_PREFIXES = ("x-amz-", "x-goog-")


class CarryMode(enum.Enum):
    """The `inherit_query` switch of a stream."""

    RETRY = "auto"  # as written; the playlist's tokens on one retry after a refusal
    ALWAYS = "1"  # the playlist's tokens appended to every same-host child
    NEVER = "0"


def carry_mode(switch: str) -> CarryMode:
    """The mode for a stream's `inherit_query` option value ("" or unknown: auto)."""
    try:
        return CarryMode(switch)
    except ValueError:
        return CarryMode.RETRY


def is_token_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TOKEN_PARAMS or lowered.startswith(_TOKEN_PREFIXES)


def _name(pair: str) -> str:
    return unquote(pair.partition("=")[0]).lower()


def _token_pairs(url: str) -> list[str]:
    """The token parameters of `url` as written (`name=value`), in order."""
    query = urlsplit(url).query
    return [part for part in query.split("&") if part and is_token_param(_name(part))]


def has_token(url: str) -> bool:
    return bool(_token_pairs(url))


def token_query(url: str) -> str:
    """The token parameters of `url`, as a query (`a=1&b=2`), "" if none."""
    return "&".join(_token_pairs(url))


def _same_host(one: str, other: str) -> bool:
    first, second = urlsplit(one), urlsplit(other)
    try:
        return (first.hostname, first.port) == (second.hostname, second.port)
    except ValueError:  # a port that is not a number
        return False


def append_query(url: str, query: str) -> str:
    """`url` with `query` added to its own (before any fragment)."""
    if not query:
        return url
    base, hash_sign, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    return base + separator + query + hash_sign + fragment


def carry_tokens(parent_url: str, child_url: str) -> str:
    """`inherit_query=1`: `child_url` with the parent's token parameters appended, when it
    has none itself and is on the same host; otherwise unchanged."""
    tokens = token_query(parent_url)
    if not tokens or has_token(child_url) or not _same_host(parent_url, child_url):
        return child_url
    return append_query(child_url, tokens)


def children_tokens(playlist_url: str, inherited: str) -> str:
    """The candidate tokens for the children of a playlist: its own URL's token
    parameters, or else those it was itself given as a candidate (a variant listed
    without the master's token passes the master's down to its segments)."""
    return token_query(playlist_url) or inherited


def carrier(tokens: str, playlist_url: str) -> Callable[[str], str]:
    """`carry_for` for the children of one playlist, with the playlist's part done once
    (a rewrite calls it for every URI: the usual child is decided without urlsplit)."""
    if not tokens:
        return lambda child_url: ""
    parent = urlsplit(playlist_url)
    origin = f"{parent.scheme}://{parent.netloc}/"
    names = {_name(pair) for pair in tokens.split("&")}

    has_own: dict[str, bool] = {}  # by query: a playlist's URIs usually share theirs

    def carry(child_url: str) -> str:
        if not child_url.startswith(origin) and not _same_host(playlist_url, child_url):
            return ""
        query = child_url.partition("#")[0].partition("?")[2]
        if not query:
            return tokens
        own = has_own.get(query)
        if own is None:
            own = any(_name(part) in names for part in query.split("&") if part)
            if len(has_own) < 1024:
                has_own[query] = own
        return "" if own else tokens

    return carry


def carry_for(tokens: str, playlist_url: str, child_url: str) -> str:
    """The candidate tokens sealed into one child: `tokens` if the child is on the
    playlist's host and carries none of their parameters, else ""."""
    return carrier(tokens, playlist_url)(child_url)
