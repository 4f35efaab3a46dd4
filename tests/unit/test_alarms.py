"""The workers' shared alarm clock, on a real event loop: each event is set at its
deadline, once, unless its alarm was replaced or taken back."""

from __future__ import annotations

import asyncio
import time

from kitex_etcd_operator.alarms import Alarms


async def test_events_are_set_when_due_in_deadline_order() -> None:
    alarms, order = Alarms(), []
    events = [asyncio.Event() for _ in range(5)]
    now = time.monotonic()
    for i, event in reversed(list(enumerate(events))):  # set out of order
        alarms.set(event, now + 0.02 * (i + 1))

    async def seen(i: int) -> None:
        await events[i].wait()
        order.append(i)

    await asyncio.wait_for(asyncio.gather(*(seen(i) for i in range(5))), 5)
    assert order == [0, 1, 2, 3, 4]
    assert len(alarms) == 0


async def test_a_replaced_alarm_rings_once_at_its_new_time() -> None:
    alarms, event, far = Alarms(), asyncio.Event(), asyncio.Event()
    alarms.set(far, time.monotonic() + 60)
    alarms.set(event, time.monotonic() + 60)
    alarms.set(event, time.monotonic() + 0.01)  # sooner: the timer moves up
    await asyncio.wait_for(event.wait(), 5)
    assert not far.is_set() and len(alarms) == 1

    event.clear()
    alarms.set(event, time.monotonic() + 0.01)
    alarms.set(event, time.monotonic() + 60)  # later: the sooner entry is skipped
    marker = asyncio.Event()
    alarms.set(marker, time.monotonic() + 0.05)
    await asyncio.wait_for(marker.wait(), 5)
    assert not event.is_set()
    assert len(alarms) == 2  # far and event, both an hour away


async def test_an_alarm_taken_back_never_rings() -> None:
    alarms, event, marker = Alarms(), asyncio.Event(), asyncio.Event()
    alarms.set(event, time.monotonic() + 0.01)
    alarms.cancel(event)
    alarms.cancel(asyncio.Event())  # none set: nothing to do
    alarms.set(marker, time.monotonic() + 0.05)
    await asyncio.wait_for(marker.wait(), 5)
    assert not event.is_set() and len(alarms) == 0


async def test_a_deadline_already_past_rings_on_the_next_turn() -> None:
    alarms, event = Alarms(), asyncio.Event()
    alarms.set(event, time.monotonic() - 1)
    await asyncio.wait_for(event.wait(), 5)


async def test_a_thousand_sleepers_share_one_loop_timer() -> None:
    """The point of it: one timer handle in the loop, however many workers sleep."""
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    alarms = Alarms()
    events = [asyncio.Event() for _ in range(1000)]
    now = time.monotonic()
    for i, event in enumerate(events):
        alarms.set(event, now + 60 + i)
    assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]
    ending = [asyncio.Event() for _ in range(3)]
    for event in ending:
        alarms.set(event, time.monotonic() + 0.01)
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ending)), 5)
    assert len(alarms) == 1000 and not any(e.is_set() for e in events)
