"""Self-healing live streams: upstream tokens that expire do not stop playback.

A channel URL often redirects to a CDN URL whose token expires after minutes. Players do
not reload the multivariant playlist (hls.js will not), so they loop on the dead media
playlist: "plays, then 403". Every child URL of a healable stream carries its stream's
entry URL and which rendition it is (signing.Lineage, renditions.py), and every segment
its media sequence number. When a live media playlist or a segment of one is refused
(401, 403, 404, 410), the `Healer`:

- re-resolves the entry URL: at most once per stream per target duration, one fetch
  for every viewer asking meanwhile (`Coalescer`); a refused entry URL is answered with
  its own status, once, and not asked again within the interval (no loop);
- finds the same rendition in the fresh multivariant playlist and remembers its URL, so
  the unchanged proxy URL is served from the fresh upstream URL from then on (`current`:
  the expired URL is not asked first on every reload);
- for a segment, fetches the fresh media playlist and retries the segment with the same
  media sequence number.

The dispatcher retries once with the target `recover` returns; a second refusal reaches
the player. VOD playlists are left alone (a fresh playlist with EXT-X-ENDLIST is not
used, segments of VOD carry no sequence number). Off with `--heal off`, or `heal=0` on an
entry URL. State is per worker process, bounded by count (least recently used dropped).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .bypass import carries_tokens
from .cache import ByteLru, Coalescer
from .errors import ProxyError
from .playlist import UriKind, playlist_info
from .playlists import child_upstream_url
from .renditions import find_rendition, sequence_numbers
from .signing import ChildTarget, Lineage, StreamSpec
from .streams import Stream
from .target import Target

__all__ = ["HEALABLE_STATUSES", "Healer"]

log = Logger()

HEALABLE_STATUSES = frozenset({401, 403, 404, 410})
_MIN_INTERVAL_S = 1.0  # between two re-resolves of one entry, when the target duration is less
_MAX_KEPT = 4096  # entries, renditions and listings remembered, each

Fetch = Callable[[Stream, str], Awaitable[tuple[str, bytes]]]
_EntryKey = tuple[StreamSpec, str]
_Key = tuple[StreamSpec, str, str]  # the entry's key + the rendition


@attrs.frozen
class _Resolution:
    """One fetch of a stream's entry URL: the fresh playlist, or the status it was refused."""

    at_s: float  # when the fetch started
    final_url: str = ""
    body: bytes = b""
    refused: ProxyError | None = None


@attrs.frozen
class _Listing:
    """A fresh media playlist, as far as healing segments needs it."""

    url: str  # as requested (the rendition's current URL)
    live: bool
    segments: Mapping[int, str]  # media sequence number -> upstream URL, tokens carried


class Healer:
    """Finds fresh upstream URLs for refused children of live streams (see the module)."""

    def __init__(self, clock: IReactorTime, fetch: Fetch, enabled: bool = True) -> None:
        self._clock = clock
        self._fetch = fetch
        self._enabled = enabled
        # Each value weighs 1: bounded by count.
        self._resolutions: ByteLru[_EntryKey, _Resolution] = ByteLru(clock, _MAX_KEPT, 1)
        self._intervals_s: ByteLru[_EntryKey, float] = ByteLru(clock, _MAX_KEPT, 1)
        self._current: ByteLru[_Key, str] = ByteLru(clock, _MAX_KEPT, 1)
        self._listings: ByteLru[_Key, _Listing] = ByteLru(clock, _MAX_KEPT, 1)
        self._resolving: Coalescer[_EntryKey, _Resolution] = Coalescer()
        self._fetching: Coalescer[tuple[_Key, str], _Listing] = Coalescer()
        self.resolves = 0  # entry URL fetches started
        self.healed = 0  # requests answered from a fresh URL after a refusal

    def _lineage(self, target: Target) -> tuple[ChildTarget, Lineage] | None:
        child = target.child
        if not self._enabled or child is None or child.lineage is None:
            return None
        if target.stream.option("heal", "1") == "0":
            return None
        return child, child.lineage

    def current(self, target: Target) -> Target:
        """`target` with a healed playlist's fresh upstream URL, if it was healed."""
        found = self._lineage(target)
        if found is None or found[0].sequence is not None or target.kind is not UriKind.PLAYLIST:
            return target
        url = self._current.get(_key(target.stream, found[1]), count=False)
        return target if url is None else attrs.evolve(target, url=url)

    async def recover(self, stream: Stream, target: Target, error: ProxyError) -> Target:
        """The target to retry a refused request with; raises `error` when none is better."""
        found = self._lineage(target)
        if found is None or error.status not in HEALABLE_STATUSES:
            raise error
        child, lineage = found
        key = _key(target.stream, lineage)
        if child.sequence is not None:
            url = await self._segment(stream, key, child, target.url, error)
        elif target.kind is UriKind.PLAYLIST:
            url = await self._fresh_url(stream, key, target.url, error)
            if not (await self._listing(stream, key, url, error)).live:
                raise error  # VOD: left alone
        else:
            raise error
        self.healed += 1
        return attrs.evolve(target, url=url)

    async def _segment(
        self, stream: Stream, key: _Key, child: ChildTarget, failed: str, error: ProxyError
    ) -> str:
        """The fresh URL of the segment with `child.sequence`, from a fresh media playlist."""
        number = child.sequence
        assert number is not None and child.anchor is not None  # sequences are formats 2 and 3
        url = self._current.get(key, count=False) or child.anchor.url
        listing = await self._listing(stream, key, url, error)
        if listing.segments and number > max(listing.segments):  # newer than what we hold
            listing = await self._listing(stream, key, url, error, refresh=True)
        found = listing.segments.get(number)
        if found is None or found == failed:
            if not listing.segments or number < min(listing.segments):
                raise error  # gone from the live window: a fresh playlist will not have it
            # The playlist still names the refused URL: the rendition needs a fresh one.
            fresh = await self._fresh_url(stream, key, listing.url, error)
            found = (await self._listing(stream, key, fresh, error)).segments.get(number)
        if found is None or found == failed:
            raise error
        return found

    async def _fresh_url(self, stream: Stream, key: _Key, failed: str, error: ProxyError) -> str:
        """A URL of the rendition other than `failed`, re-resolving the entry if allowed."""
        current = self._current.get(key, count=False)
        if current is not None and current != failed:
            return current  # healed meanwhile (another viewer, another request)
        resolution = await self._resolve(stream, (key[0], key[1]))
        if resolution.refused is not None:
            refused = resolution.refused
            raise ProxyError(refused.status, refused.message)
        url = _pick(key[0], key[1], resolution, key[2])
        if url is None or url == failed:
            raise error  # not there any more, or nothing fresher within the interval
        self._current.put(key, url, 1)
        return url

    async def _resolve(self, stream: Stream, entry: _EntryKey) -> _Resolution:
        """The entry URL's playlist: fetched anew unless it was within the interval."""
        last = self._resolutions.get(entry, count=False)
        interval_s = self._intervals_s.get(entry, count=False) or _MIN_INTERVAL_S
        if last is not None and self._clock.seconds() - last.at_s < interval_s:
            return last
        return await self._resolving.run(entry, lambda: self._resolve_now(stream, entry))

    async def _resolve_now(self, stream: Stream, entry: _EntryKey) -> _Resolution:
        self.resolves += 1
        started_s = self._clock.seconds()
        try:
            final_url, body = await self._fetch(stream, entry[1])
        except ProxyError as refused:
            resolution = _Resolution(started_s, refused=refused)
            log.info(
                "entry URL of stream {stream_id} refused on re-resolve: {status}",
                stream_id=entry[0].stream_id,
                status=refused.status,
            )
        else:
            resolution = _Resolution(started_s, final_url, body)
            log.info("re-resolved the entry URL of stream {id}", id=entry[0].stream_id)
            if not playlist_info(body, final_url).is_master:
                # The entry is the media playlist: it is also the fresh listing.
                self._store_listing((entry[0], entry[1], ""), final_url, final_url, body)
        self._resolutions.put(entry, resolution, 1)
        return resolution

    async def _listing(
        self, stream: Stream, key: _Key, url: str, error: ProxyError, refresh: bool = False
    ) -> _Listing:
        """The media playlist at the rendition's `url`; a refused one heals its URL first."""
        cached = self._listings.get(key, count=False)
        if not refresh and cached is not None and cached.url == url:
            return cached
        try:
            return await self._fetch_listing(stream, key, url)
        except ProxyError as refused:
            if refused.status not in HEALABLE_STATUSES:
                raise
        fresh = await self._fresh_url(stream, key, url, error)
        return await self._fetch_listing(stream, key, fresh)

    async def _fetch_listing(self, stream: Stream, key: _Key, url: str) -> _Listing:
        """One fetch of the media playlist at `url` for every viewer asking meanwhile."""

        async def fetch() -> _Listing:
            final_url, body = await self._fetch(stream, url)
            return self._store_listing(key, url, final_url, body)

        return await self._fetching.run((key, url), fetch)

    def _store_listing(self, key: _Key, url: str, final_url: str, body: bytes) -> _Listing:
        info = playlist_info(body, final_url)
        # Tokens carried from the URL requested, as the rewrite does: for the entry's own
        # media playlist, the entry URL.
        requested = url if key[2] else key[1]
        tokens_from = requested if carries_tokens(key[0], requested) else None
        numbers = sequence_numbers(body, info) if info.is_live else {}
        segments = {n: child_upstream_url(tokens_from, u) for u, n in numbers.items()}
        listing = _Listing(url, info.is_live, segments)
        target_s = info.target_duration_s or 0.0
        # Reused for half a target duration, as the playlist cache does.
        self._listings.put(key, listing, 1, max(target_s / 2, 0.5))
        if target_s:
            self._intervals_s.put((key[0], key[1]), max(target_s, _MIN_INTERVAL_S), 1)
        return listing


def _key(stream: StreamSpec, lineage: Lineage) -> _Key:
    return (stream, lineage.entry_url, lineage.rendition)


def _pick(spec: StreamSpec, entry_url: str, resolution: _Resolution, rendition: str) -> str | None:
    """The rendition's URL in a fresh entry playlist (the entry itself for "")."""
    body, final_url = resolution.body, resolution.final_url
    is_master = playlist_info(body, final_url).is_master
    if not rendition:
        return None if is_master else final_url
    if not is_master:
        return None
    url = find_rendition(body, final_url, rendition)
    if url is None:
        return None
    return child_upstream_url(entry_url if carries_tokens(spec, entry_url) else None, url)
