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
import os
from urllib.parse import unquote, urlsplit

__all__ = [
    "TOKEN_PARAMS",
    "Carrier",
    "CarryMode",
    "append_query",
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


class Carrier:
    """`carry_for` for the children of one playlist, with the playlist's part done once
    (a rewrite asks for every URI: the usual child is decided without urlsplit)."""

    def __init__(self, tokens: str, playlist_url: str) -> None:
        self._tokens = tokens
        self._playlist_url = playlist_url
        parent = urlsplit(playlist_url)
        self._origin = f"{parent.scheme}://{parent.netloc}/"
        self._names = {_name(pair) for pair in tokens.split("&")} if tokens else set()
        self._has_own: dict[str, bool] = {}  # by query: a playlist's URIs usually share theirs

    def __call__(self, child_url: str) -> str:
        if not self._tokens:
            return ""
        if not child_url.startswith(self._origin) and not _same_host(self._playlist_url, child_url):
            return ""
        return self._for_query(child_url.partition("#")[0].partition("?")[2])

    def many(self, child_urls: list[str]) -> list[str]:
        """`self(url)` of each. A playlist's segments are usually on its origin with one
        query between them: told so by a few C-level passes, and decided once."""
        if not self._tokens or not child_urls:
            return [""] * len(child_urls)
        joined = "\n".join(child_urls)
        query = child_urls[-1].partition("?")[2]
        # Each ends with `?query` and holds one `?` in all: each has that query.
        one_query = (
            joined.count("?") == len(child_urls)
            and joined.endswith(f"?{query}")
            and joined.count(f"?{query}\n") == len(child_urls) - 1
        )
        no_query = "?" not in joined
        if (
            "#" not in joined
            and (one_query or no_query)
            and os.path.commonprefix(child_urls).startswith(self._origin)  # noqa: RUF071
        ):
            return [self._for_query("" if no_query else query)] * len(child_urls)
        return [self(url) for url in child_urls]

    def _for_query(self, query: str) -> str:
        if not query:
            return self._tokens
        own = self._has_own.get(query)
        if own is None:
            own = any(_name(part) in self._names for part in query.split("&") if part)
            if len(self._has_own) < 1024:
                self._has_own[query] = own
        return "" if own else self._tokens


def carry_for(tokens: str, playlist_url: str, child_url: str) -> str:
    """The candidate tokens sealed into one child: `tokens` if the child is on the
    playlist's host and carries none of their parameters, else ""."""
    return Carrier(tokens, playlist_url)(child_url)
