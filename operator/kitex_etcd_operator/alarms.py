"""One timer for the many workers that sleep until a deadline or a change.

Each service's worker sleeps until a change wakes it or its periodic check
falls due. With ``asyncio.timeout`` around ``Event.wait()`` each sleep made a
Timeout, a timer handle, a copy of the context and a coroutine: objects that
live for seconds (until the change or the check), outlive the garbage
collector's young generations and are walked by every young collection on the
way. With 1,000 services under churn, such objects were most of the young
generations, and young collections took 10 to 17 ms every 10 s, the event loop
stopped meanwhile. Here a sleep is one heap entry; one loop timer, for the
earliest deadline, sets the events that are due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time


class Alarms:
    """Sets each event at its deadline (``time.monotonic()``), unless taken back.

    An event has one alarm at a time: setting another replaces it. Entries
    replaced or taken back stay in the heap until their time and are skipped
    then, so that neither costs a search.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.Event]] = []
        self._due: dict[asyncio.Event, float] = {}
        self._order = itertools.count()  # ties by arrival; events do not compare
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        """Alarms pending (replaced or taken back ones not counted)."""
        return len(self._due)

    def set(self, event: asyncio.Event, deadline: float) -> None:
        """Set ``event`` at ``deadline``; from within the running event loop."""
        self._due[event] = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), event))
        if deadline < self._timer_at:
            self._arm(deadline)

    def cancel(self, event: asyncio.Event) -> None:
        """No alarm for ``event`` any more (none set is fine)."""
        self._due.pop(event, None)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + (deadline - time.monotonic()), self._ring)
        self._timer_at = deadline

    def _ring(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = time.monotonic()
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            deadline, _, event = heapq.heappop(heap)
            if due.get(event) == deadline:
                del due[event]
                event.set()
        while heap and due.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # replaced or taken back: no timer for it
        if heap:
            self._arm(heap[0][0])
