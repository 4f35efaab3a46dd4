"""When a binding writes: a lone change at once, a burst gathered into one write.

The controller runs in this process with no Kubernetes, against an etcd of
its own; ``debounce`` is stretched to seconds so that what is gathered and
what is not can be told apart by etcd's revisions, not by a stopwatch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kitex_etcd_operator.controller import Controller
from kitex_etcd_operator.retry import RetryConfig
from kitex_etcd_operator.settings import DefaultEtcd, Settings
from tests.support.etcd_probe import EtcdProbe
from tests.support.factories import pod
from tests.support.helpers import async_wait_for

DEBOUNCE = 4.0
PREFIX = "kitex/registry-etcd/burst/"
ANNOTATIONS = {"kitex.cloudwego.io/service": "burst", "kitex.cloudwego.io/port": "8888"}


@pytest.fixture
async def controller(etcd: Any) -> AsyncIterator[Controller]:
    settings = Settings(
        etcd=DefaultEtcd(endpoints=tuple(etcd.endpoints)), debounce=DEBOUNCE,
        retry=RetryConfig(observe_delay=300.0), cluster_id=f"c-{uuid.uuid4().hex[:6]}")
    c = Controller(settings, kube=None)
    await c.start()
    yield c
    await c.stop()


async def test_a_lone_change_goes_out_at_once_and_a_burst_in_one_write(
        controller: Controller, etcd: Any, tools: Any) -> None:
    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    watch = probe.watch(PREFIX)
    try:
        # The binding's first write (its full sync) opens a window of DEBOUNCE seconds;
        # once it has passed, a lone change must not wait for anything.
        controller.on_pod(None, pod("burst-0", "10.3.0.1", annotations=ANNOTATIONS))
        await async_wait_for(_count(probe, 1), timeout=DEBOUNCE * 3, what="the first pod")
        worker = next(iter(controller.workers.values()))
        await async_wait_for(_window_over(worker, DEBOUNCE), timeout=DEBOUNCE * 3,
                             what="the debounce window after the first write")

        controller.on_pod(None, pod("burst-1", "10.3.0.2", annotations=ANNOTATIONS))
        # Well inside the window its own write opens: written without waiting it out.
        await async_wait_for(_count(probe, 2), timeout=DEBOUNCE / 2, interval=0.05,
                             what="a lone change, before a debounce could have passed")

        # Three more at once, inside that window: gathered, all in one transaction.
        for i in range(2, 5):
            controller.on_pod(None, pod(f"burst-{i}", f"10.3.0.{i + 1}",
                                        annotations=ANNOTATIONS))
        await async_wait_for(_count(probe, 5), timeout=DEBOUNCE * 3, what="the burst")
        await async_wait_for(_seen(watch, 5), timeout=10, what="the watch to see 5 puts")
    finally:
        watch.stop()
    puts = {e.key: e.revision for e in watch.snapshot() if e.kind == "PUT"}
    burst = {puts[f"{PREFIX}10.3.0.{i + 1}:8888"] for i in range(2, 5)}
    assert len(burst) == 1, f"the burst took {len(burst)} writes: {sorted(burst)}"
    assert puts[f"{PREFIX}10.3.0.2:8888"] < burst.pop()


def _count(probe: EtcdProbe, count: int) -> Any:
    async def check() -> bool:
        return len(probe.values(PREFIX)) >= count
    return check


def _window_over(worker: Any, debounce: float) -> Any:
    async def check() -> bool:
        import time
        return bool(time.monotonic() - worker._last_cycle > debounce)
    return check


def _seen(watch: Any, count: int) -> Any:
    async def check() -> bool:
        return len({e.key for e in watch.snapshot() if e.kind == "PUT"}) >= count
    return check
