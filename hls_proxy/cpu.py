"""Where CPU-heavy pure work runs: off the reactor thread when the reactor has threads.

A 50,000-segment playlist takes a few hundred milliseconds to rewrite; on the reactor
thread every other viewer (and `/health`) would wait for it. In a thread, the GIL is
handed back to the reactor every few milliseconds. Memory reactors in unit tests have
no threads: the work then runs inline, which keeps those tests deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool

__all__ = ["RunCpu", "run_inline", "runner_for"]

T = TypeVar("T")
RunCpu = Callable[[Callable[[], Any]], "Deferred[Any]"]


def run_inline(work: Callable[[], T]) -> Deferred[T]:
    return maybeDeferred(work)


def runner_for(reactor: object) -> RunCpu:
    """Run work in `reactor`'s thread pool if it has one, else inline."""
    if not IReactorThreads.providedBy(reactor):
        return run_inline
    threads: Any = reactor
    # One at a time: each worker holding the GIL slows every reactor wake-up, and two
    # rewrites at once finish no sooner than one after the other on the GIL.
    one_at_a_time = DeferredSemaphore(1)

    def in_thread(work: Callable[[], T]) -> Deferred[T]:
        return one_at_a_time.run(deferToThreadPool, threads, threads.getThreadPool(), work)

    return in_thread
