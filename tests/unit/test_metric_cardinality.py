"""Per-service metrics are bounded: tenants choose service names, and one
creating services in a loop must not grow Prometheus's series without end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from kitex_etcd_operator import metrics


@pytest.fixture
def limit() -> Iterator[int]:
    for key in list(metrics._services.admitted | metrics._services.folded):
        metrics.forget_service(*key)
    metrics.set_max_services(3)
    yield 3
    for key in list(metrics._services.admitted | metrics._services.folded):
        metrics.forget_service(*key)
    metrics.set_max_services(metrics.MAX_SERVICES)


def series(name: str) -> dict[tuple[str, str], float]:
    return {(s.labels["prefix"], s.labels["service"]): s.value
            for metric in REGISTRY.collect() for s in metric.samples
            if s.name == name and "service" in s.labels and s.labels["prefix"].startswith(
                ("card", metrics.OTHER))}


def test_past_the_limit_services_fold_into_other(limit: int) -> None:
    for n in range(10):
        metrics.desired_instances.labels("card", f"s{n}").set(n)
        metrics.deletes_withheld.labels("card", f"s{n}").inc(1)
    gauges = series("kitex_etcd_operator_desired_instances")
    assert len(gauges) == limit + 1  # three services of their own, and _other
    assert gauges[(metrics.OTHER, metrics.OTHER)] == sum(range(limit, 10))
    assert series("kitex_etcd_operator_deletes_withheld_total")[
        (metrics.OTHER, metrics.OTHER)] == 10 - limit
    # A folded service's gauge moves the sum, it does not overwrite it.
    metrics.desired_instances.labels("card", "s9").set(0)
    assert series("kitex_etcd_operator_desired_instances")[
        (metrics.OTHER, metrics.OTHER)] == sum(range(limit, 9))


def test_a_removed_service_frees_its_slot_and_its_share_of_other(limit: int) -> None:
    for n in range(5):
        metrics.instances.labels("card", f"s{n}").set(1)
    metrics.forget_service("card", "s4")  # folded: leaves the sum
    assert series("kitex_etcd_operator_instances")[(metrics.OTHER, metrics.OTHER)] == 1
    metrics.forget_service("card", "s0")  # admitted: its slot is free again
    metrics.instances.labels("card", "new").set(2)
    assert series("kitex_etcd_operator_instances")[("card", "new")] == 2
    assert ("card", "s0") not in series("kitex_etcd_operator_instances")
