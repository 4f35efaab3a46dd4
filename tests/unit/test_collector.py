"""Garbage collections at quiet moments, on the real interpreter's collector: a due
collection waits while a change is in flight, runs once none is, runs anyway after
the patience, and collection goes back to the interpreter on stop or on an error."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kitex_etcd_operator import collector as collector_module
from kitex_etcd_operator import metrics
from kitex_etcd_operator.collector import HELD_THRESHOLD, QuietCollector


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the collections that ran, in order."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    before = gc.get_threshold()
    # A full collection zeroes every generation's count: which generations the next due
    # collections take no longer depends on what earlier tests allocated.
    gc.collect()
    gc.callbacks.append(callback)
    try:
        yield seen
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*before)


YOUNG = gc.get_threshold()[0]  # the interpreter's own, read before any test holds it


def make_due() -> list[list[object]]:
    """Enough tracked objects kept alive to make a young collection due."""
    return [[object()] for _ in range(YOUNG + 100)]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the collector has no event to wait on
            await asyncio.sleep(0.005)


def moments(moment: str) -> float:
    return metrics.gc_moments.labels(moment)._value.get()


async def test_a_due_collection_waits_for_the_quiet_moment(collections: list[int]) -> None:
    quiet = QuietCollector(patience=60)
    interpreter = gc.get_threshold()
    quiet.start()
    try:
        assert gc.get_threshold() == (HELD_THRESHOLD, *interpreter[1:])
        quiet.busy("worker")
        keep = make_due()  # held: the interpreter starts nothing itself
        ticks = 10
        for _ in range(ticks):  # ten looks at the count, all while busy
            await asyncio.sleep(collector_module.INTERVAL)
        assert collections == [] and gc.get_count()[0] > interpreter[0]
        before = moments("quiet")
        quiet.idle("worker")
        await until(lambda: bool(collections))
        assert collections[0] == 0 and moments("quiet") == before + 1
        assert gc.get_count()[0] <= interpreter[0]
        del keep
    finally:
        quiet.stop()
    assert gc.get_threshold() == interpreter


async def test_the_interpreter_keeps_choosing_the_generations(collections: list[int]) -> None:
    """Twelve young collections due one after the other: the interpreter's own rule
    (more than ten young ones since the last) makes the twelfth take the middle
    generation too."""
    interpreter = gc.get_threshold()
    quiet = QuietCollector(patience=60)
    quiet.start()
    keep = []
    try:
        for _ in range(interpreter[1] + 2):
            count = len(collections)
            keep.append(make_due())
            await until(lambda n=count: len(collections) > n)  # type: ignore[misc]
        assert 1 in collections
    finally:
        quiet.stop()


async def test_busy_for_longer_than_the_patience_collects_anyway(
        collections: list[int]) -> None:
    quiet = QuietCollector(patience=0.1)
    quiet.start()
    try:
        quiet.busy("worker")
        before = moments("busy")
        keep = make_due()
        await until(lambda: bool(collections))
        assert moments("busy") == before + 1
        del keep
    finally:
        quiet.stop()


async def test_no_patience_leaves_collection_to_the_interpreter() -> None:
    interpreter = gc.get_threshold()
    quiet = QuietCollector(patience=0)
    quiet.start()
    assert not quiet.holding and gc.get_threshold() == interpreter


async def test_an_error_gives_collection_back_to_the_interpreter(
        collections: list[int], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    interpreter = gc.get_threshold()
    quiet = QuietCollector(patience=60)
    quiet.start()

    def broken() -> tuple[int, int, int]:
        raise RuntimeError("count unavailable")

    monkeypatch.setattr(collector_module.gc, "get_count", broken)
    with caplog.at_level(logging.ERROR, logger="kitex_etcd_operator.collector"):
        await until(lambda: not quiet.holding)
    monkeypatch.undo()
    assert gc.get_threshold() == interpreter
    assert "the interpreter collects on its own again" in caplog.text
    keep = make_due()  # the interpreter's own threshold starts a collection again
    assert collections
    del keep


async def test_an_interpreter_that_does_not_collect_on_allocation_keeps_its_moments(
        collections: list[int], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Another interpreter might not start a collection on the probe's allocation: then
    rather its own moments than none."""
    interpreter = gc.get_threshold()
    quiet = QuietCollector(patience=60)
    quiet.start()
    monkeypatch.setattr(collector_module, "_collections", lambda: 0)  # none seen to run
    keep = make_due()
    with caplog.at_level(logging.WARNING, logger="kitex_etcd_operator.collector"):
        await until(lambda: not quiet.holding)
    assert gc.get_threshold() == interpreter
    assert "garbage collection is left to it" in caplog.text
    del keep
