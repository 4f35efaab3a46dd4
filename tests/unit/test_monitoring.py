"""The dashboard and the alerts name metrics the operator exports.

Metric names are part of the operator's interface; a rename that forgets the
dashboard or an alert would leave a panel empty and an alert silent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import prometheus_client

from kitex_etcd_operator import metrics

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported() -> set[str]:
    names = set()
    for collector in prometheus_client.REGISTRY.collect():
        for sample in collector.samples:
            names.add(sample.name)
        names.add(collector.name)
    return {n for n in names if n.startswith(metrics.NS)}


def referenced(text: str) -> set[str]:
    return set(re.findall(rf"{metrics.NS}_[a-z_]+", text))


def test_every_metric_the_dashboard_and_alerts_use_is_exported() -> None:
    # Labelled series appear once used: touch one of each so that every name is listed.
    for metric in vars(metrics).values():
        if isinstance(metric, prometheus_client.Counter | prometheus_client.Gauge
                      | prometheus_client.Histogram) and metric._labelnames:
            metric.labels(*["x"] * len(metric._labelnames))
    names = exported()
    for path in (MONITORING / "grafana-dashboard.json", MONITORING / "prometheusrule.yaml"):
        used = referenced(path.read_text())
        assert used, path
        missing = {n for n in used if n not in names and not any(
            n.endswith(s) and n[: -len(s)] in names for s in SUFFIXES)}
        assert not missing, f"{path.name} uses metrics the operator does not export: {missing}"


async def test_a_blocked_event_loop_shows_in_the_loop_lag_histogram() -> None:
    """A step that holds the loop (here 300 ms of blocking) must be seen as lag, the
    sign of a stall that every event waiting meanwhile paid for."""
    import asyncio
    import contextlib
    import time

    from kitex_etcd_operator import metrics

    def over(bound: float) -> float:
        return sum(s.value for s in next(iter(metrics.loop_lag.collect())).samples
                   if s.name.endswith("_count")) - sum(
            s.value for s in next(iter(metrics.loop_lag.collect())).samples
            if s.name.endswith("_bucket") and s.labels["le"] == str(bound))

    before = over(0.25)
    task = asyncio.create_task(metrics.measure_loop_lag(interval=0.05))
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 - the stall is what is measured
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert over(0.25) > before


def test_each_garbage_collection_is_timed_by_generation() -> None:
    """A collection holds the loop like any long step; the histogram must see each one,
    under its generation, and installing the hook twice must not count it twice."""
    import gc

    from kitex_etcd_operator import metrics

    def count(generation: str, histogram: Any = metrics.gc_pause) -> float:
        return sum(s.value for s in next(iter(histogram.collect())).samples
                   if s.name.endswith("_count") and s.labels["generation"] == generation)

    metrics.measure_collections()
    metrics.measure_collections()
    try:
        before, cpu_before = count("2"), count("2", metrics.gc_pause_cpu)
        gc.collect()
        assert count("2") == before + 1
        # the CPU it took beside the wall time: which pauses were waits, not work
        assert count("2", metrics.gc_pause_cpu) == cpu_before + 1
    finally:
        gc.callbacks.remove(metrics._timed_collection)
    assert metrics._timed_collection not in gc.callbacks
