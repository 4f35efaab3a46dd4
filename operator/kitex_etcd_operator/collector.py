"""Garbage collections moved to moments when no change is on its way to etcd.

A cyclic collection stops the event loop. Every change being written then
waits for it: at 100,000 pods, with the operator on a core of its own,
collections of up to 50 ms came five times in a 20 s churn window, and the
changes in flight during each made the tail of the operator's share. Most
moments have no change in flight (a write takes a few ms, a few tens come a
second), so a collection that waits for such a moment, typically a few ms,
holds no change at all.

The interpreter still decides whether a collection is due and which
generations it takes (its thresholds, and its rule that spares a large old
generation until a quarter of it is new): only the moment moves. The young
generation's threshold is held out of reach, so that no allocation starts a
collection; every ``INTERVAL`` the threshold is put back for the allocation of
one object, which starts the collection the interpreter would have made
earlier, by its own rules. A due collection waits at most ``patience``
seconds: under load without a quiet moment it runs anyway.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from . import metrics

log = logging.getLogger(__name__)

INTERVAL = 0.02  # seconds between looks at the young generation's count
HELD_THRESHOLD = 2**30  # allocations: out of reach of any young generation


class _Probe:
    """An object the interpreter counts as an allocation (no free list serves it)."""


def _collections() -> int:
    """Collections of any generation the interpreter has made so far."""
    return sum(generation["collections"] for generation in gc.get_stats())


class QuietCollector:
    """Starts the interpreter's due collections while nothing is ``busy``.

    ``busy(holder)`` from a change reaching a worker to the end of the write
    that carries it, ``idle(holder)`` after; ``start()`` once the heap is
    frozen, from within the event loop; ``stop()`` gives collections back to
    the interpreter.
    """

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._busy: set[object] = set()
        self._due_since: float | None = None
        self._threshold: tuple[int, int, int] | None = None  # the interpreter's, while held
        self._timer: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        """Whether collections wait for quiet moments (false before start, after stop)."""
        return self._threshold is not None

    def busy(self, holder: object) -> None:
        self._busy.add(holder)

    def idle(self, holder: object) -> None:
        self._busy.discard(holder)

    def start(self) -> None:
        """Hold the interpreter's own collections (no-op with a patience of 0, when
        collection is off by threshold, or when already started)."""
        threshold = gc.get_threshold()
        if self.patience <= 0 or threshold[0] == 0 or self._threshold is not None:
            return
        self._threshold = threshold
        gc.set_threshold(HELD_THRESHOLD, threshold[1], threshold[2])
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def _tick(self) -> None:
        """Never dies silently: on any error, collections go back to the interpreter."""
        self._timer = None
        try:
            self._look()
        except Exception:
            log.exception("Garbage collection at quiet moments failed; the interpreter "
                          "collects on its own again")
            self.stop()
            return
        if self._threshold is not None:
            self._schedule()

    def _look(self) -> None:
        threshold = self._threshold
        assert threshold is not None
        young = threshold[0]
        if not gc.isenabled() or gc.get_count()[0] <= young:
            return
        now = time.monotonic()
        if self._due_since is None:
            self._due_since = now
        if self._busy and now - self._due_since < self.patience:
            return
        moment = "busy" if self._busy else "quiet"
        self._due_since = None
        before = _collections()
        gc.set_threshold(*threshold)
        try:
            _Probe()
        finally:
            gc.set_threshold(HELD_THRESHOLD, threshold[1], threshold[2])
        if _collections() == before:
            # An interpreter that does not start a collection on an allocation: rather
            # its own moments than none.
            log.warning("This interpreter does not collect on an allocation; garbage "
                        "collection is left to it")
            self.stop()
            return
        metrics.gc_moments.labels(moment).inc()
