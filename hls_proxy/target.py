"""What one proxied request asks for: a value, built by the resource that received it."""

from __future__ import annotations

from collections.abc import Hashable
from urllib.parse import urlsplit

import attrs

from .playlist import UriKind
from .signing import ChildTarget, StreamSpec

__all__ = ["Target"]


@attrs.frozen
class Target:
    """The stream, the upstream URL, what the URL is expected to be, and how strictly.

    `strict` is set by `/playlist.m3u8`: the answer must be a playlist. Otherwise the
    kind is a guess from the playlist that listed the URL, and the first bytes decide.
    """

    stream: StreamSpec
    url: str
    kind: UriKind
    strict: bool = False
    # The verified child URL this request came in on (None for entry requests): its
    # children are minted relative to it, and inherit its expiry.
    child: ChildTarget | None = None
    # Token parameters to append if the upstream refuses `url` (tokens.py): the child's.
    carry: str = attrs.field(
        default=attrs.Factory(lambda self: self.child.carry if self.child else "", takes_self=True)
    )

    @property
    def wants_playlist(self) -> bool:
        return self.strict or self.kind is UriKind.PLAYLIST

    @property
    def authorized(self) -> bool:
        """The upstream request carries an Authorization (h_authorization or user:pass@)."""
        netloc = urlsplit(self.url).netloc
        return "@" in netloc or any(name == "authorization" for name, _ in self.stream.headers)

    def media_key(self, jar_cookies: str) -> Hashable:
        """Segment cache and fan-out key: everything sent upstream, credentials included
        (not the stream id, so one object fetched the same way is one entry)."""
        return (self.url, self.stream.headers, jar_cookies)

    def playlist_key(self, jar_cookies: str) -> Hashable:
        # The rewritten body depends on the URL it is served at (relative children).
        anchor = None if self.child is None else self.child.anchor
        return (self.stream, self.url, jar_cookies, anchor)
