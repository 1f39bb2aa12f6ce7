"""Byte-budgeted caches and coalescing: one fetch, one fresh Deferred per waiter.

`ByteLru` holds values whose sizes add up to at most its budget, whatever is put in
it: a value larger than the per-object cap is refused, and the least recently used
values are dropped until a new one fits. Entries can carry an expiry time, read from
the injected clock.

`Coalescer` runs at most one fetch per key at a time. Everyone who asks while it runs
gets their own Deferred for the same result (never one Deferred handed to two waiters);
when every waiter has cancelled, the fetch itself is cancelled.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from .playlist import PlaylistInfo

__all__ = [
    "LL_HLS_PARAMS",
    "ByteLru",
    "CachedBody",
    "Coalescer",
    "PlaylistEntry",
    "cache_directives",
    "etag_for",
    "etag_matches",
    "playlist_ttl_s",
    "with_ll_hls",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@attrs.frozen
class _Slot(Generic[V]):
    value: V
    size: int
    expires_s: float | None


class ByteLru(Generic[K, V]):
    """An LRU map whose values' sizes never add up to more than `budget_bytes`."""

    def __init__(self, clock: IReactorTime, budget_bytes: int, max_object_bytes: int) -> None:
        self._clock = clock
        self.budget_bytes = max(0, budget_bytes)
        self.max_object_bytes = min(max_object_bytes, self.budget_bytes)
        self._slots: OrderedDict[K, _Slot[V]] = OrderedDict()
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: K) -> bool:
        return self.get(key, count=False) is not None

    def get(self, key: K, count: bool = True) -> V | None:
        slot = self._slots.get(key)
        if (
            slot is not None
            and slot.expires_s is not None
            and self._clock.seconds() >= slot.expires_s
        ):
            self._drop(key)
            slot = None
        if slot is None:
            self.misses += count
            return None
        self._slots.move_to_end(key)
        self.hits += count
        return slot.value

    def put(self, key: K, value: V, size: int, ttl_s: float | None = None) -> bool:
        """Store `value`; False (and nothing stored) if it can never fit."""
        if key in self._slots:
            self._drop(key)
        if size > self.max_object_bytes or (ttl_s is not None and ttl_s <= 0):
            return False
        while self.used_bytes + size > self.budget_bytes:
            self._drop(next(iter(self._slots)))
            self.evictions += 1
        expires_s = None if ttl_s is None else self._clock.seconds() + ttl_s
        self._slots[key] = _Slot(value, size, expires_s)
        self.used_bytes += size
        return True

    def _drop(self, key: K) -> None:
        slot = self._slots.pop(key)
        self.used_bytes -= slot.size


@attrs.frozen
class CachedBody:
    """A complete upstream 200 response: its head and its body as the chunks it came in."""

    headers: tuple[tuple[bytes, tuple[bytes, ...]], ...]
    chunks: tuple[bytes, ...]
    length: int

    def header(self, name: bytes) -> bytes | None:
        for key, values in self.headers:
            if key == name:
                return values[0]
        return None

    def slice(self, start: int, end: int) -> tuple[bytes, ...]:
        """The body bytes [start, end) as chunks, without joining the whole body."""
        out: list[bytes] = []
        offset = 0
        for chunk in self.chunks:
            chunk_end = offset + len(chunk)
            if chunk_end > start and offset < end:
                out.append(chunk[max(0, start - offset) : min(len(chunk), end - offset)])
            offset = chunk_end
            if offset >= end:
                break
        return tuple(out)


@attrs.frozen
class PlaylistEntry:
    """A rewritten playlist as served, with what its answer headers need."""

    body: bytes
    etag: bytes
    max_age_s: float


def cache_directives(value: str) -> dict[str, str]:
    """`Cache-Control` directives, lower-cased: `{"max-age": "4", "no-store": ""}`."""
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip().strip('"')
    return directives


class Coalescer(Generic[K, V]):
    """At most one running fetch per key; each caller gets a fresh Deferred for its result."""

    def __init__(self) -> None:
        self._running: dict[K, _Running[V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def run(self, key: K, fetch: Callable[[], Coroutine[Any, Any, V]]) -> Deferred[V]:
        running = self._running.get(key)
        if running is not None:
            return running.wait()
        new: _Running[V] = _Running(lambda: self._forget(key, new))
        self._running[key] = new
        waiter = new.wait()  # before starting: a fetch may finish at once
        new.start(Deferred.fromCoroutine(fetch()))
        return waiter

    def _forget(self, key: K, running: _Running[V]) -> None:
        if self._running.get(key) is running:
            del self._running[key]


class _Running(Generic[V]):
    def __init__(self, forget: Callable[[], object]) -> None:
        self._forget = forget
        self._waiters: list[Deferred[V]] = []
        self._fetch: Deferred[V] | None = None

    def start(self, fetch: Deferred[V]) -> None:
        self._fetch = fetch
        fetch.addBoth(self._settle)

    def wait(self) -> Deferred[V]:
        waiter: Deferred[V] = Deferred(canceller=self._leave)
        self._waiters.append(waiter)
        return waiter

    def _leave(self, waiter: Deferred[V]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if not self._waiters and self._fetch is not None and not self._fetch.called:
            self._fetch.cancel()

    def _settle(self, result: V | Failure) -> None:
        self._forget()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None


# LL-HLS delivery directives forwarded to the upstream, in the order the spec lists them.
LL_HLS_PARAMS = ("_HLS_msn", "_HLS_part", "_HLS_skip")
_LL_HLS_VALUE = re.compile(r"^(?:[0-9]{1,12}|YES|v2)$")


def with_ll_hls(url: str, args: dict[bytes, list[bytes]]) -> str:
    """`url` with the request's valid `_HLS_*` directives added (unless already there)."""
    query = urlsplit(url).query
    present = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    extra: list[str] = []
    for name in LL_HLS_PARAMS:
        values = args.get(name.encode("ascii"))
        if name in present or not values:
            continue
        value = values[0].decode("latin-1")
        if _LL_HLS_VALUE.match(value):
            extra.append(f"{name}={value}")
    if not extra:
        return url
    base, _, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    return base + separator + "&".join(extra) + (f"#{fragment}" if fragment else "")


def playlist_ttl_s(info: PlaylistInfo, cache_control: str, default_ttl_s: float) -> float:
    """How long a playlist may be reused: ½ target duration if live, else the default;
    never longer than the upstream's max-age, and 0 if the upstream forbids storing it."""
    directives = cache_directives(cache_control)
    if {"no-store", "no-cache", "private"} & directives.keys():
        return 0.0
    if info.is_live:
        target = info.part_target_s if info.part_target_s else info.target_duration_s
        ttl = (target or 0.0) / 2
    else:
        ttl = default_ttl_s
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                ttl = min(ttl, max(0.0, float(directives[name])))
            except ValueError:
                pass
            break
    return ttl


def etag_for(body: bytes) -> bytes:
    return b'"' + hashlib.sha256(body).hexdigest()[:24].encode("ascii") + b'"'


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """`If-None-Match` matches `etag` (weak comparison, `*` matches anything)."""
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip().removeprefix(b"W/")
        if candidate == b"*" or candidate == etag:
            return True
    return False
