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

from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

__all__ = ["ByteLru", "Coalescer"]

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

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "bytes": self.used_bytes,
        }

    def _drop(self, key: K) -> None:
        slot = self._slots.pop(key)
        self.used_bytes -= slot.size


class Coalescer(Generic[K, V]):
    """At most one running fetch per key; each caller gets a fresh Deferred for its result."""

    def __init__(self, for_later: Callable[[V], V] | None = None) -> None:
        # A result only one waiter can use (an unread body) is given to the first;
        # `for_later` says what the others get instead.
        self._for_later = for_later
        self._running: dict[K, _Running[V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def run(self, key: K, fetch: Callable[[], Coroutine[Any, Any, V]]) -> Deferred[V]:
        running = self._running.get(key)
        if running is not None:
            return running.wait()
        new: _Running[V] = _Running(lambda: self._forget(key, new), self._for_later)
        self._running[key] = new
        waiter = new.wait()  # before starting: a fetch may finish at once
        new.start(Deferred.fromCoroutine(fetch()))
        return waiter

    def _forget(self, key: K, running: _Running[V]) -> None:
        if self._running.get(key) is running:
            del self._running[key]


class _Running(Generic[V]):
    def __init__(self, forget: Callable[[], object], for_later: Callable[[V], V] | None) -> None:
        self._forget = forget
        self._for_later = for_later
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
        for index, waiter in enumerate(waiters):
            if isinstance(result, Failure):
                waiter.errback(result)
            elif index > 0 and self._for_later is not None:
                waiter.callback(self._for_later(result))
            else:
                waiter.callback(result)
        return None
