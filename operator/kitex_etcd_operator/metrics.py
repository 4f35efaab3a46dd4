"""Prometheus metrics: what an on-call engineer needs to see the operator is syncing.

The metric names are part of the operator's interface (dashboards and
alerts use them): rename with care. Labels are bounded: etcd operations and
task kinds are fixed in code; (prefix, service) pairs are chosen by tenants, so
at most ``max_services`` of them get series of their own (the first seen, until
removed), and the rest are folded into one ``prefix="_other",
service="_other"`` series holding their sum (gauges) or total (counters). A
tenant creating services in a loop cannot exhaust Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

NS = "kitex_etcd_operator"
OTHER = "_other"
MAX_SERVICES = 500
max_services = MAX_SERVICES


class _Services:
    """Which (prefix, service) pairs have series of their own; the rest are folded."""

    def __init__(self) -> None:
        self.admitted: set[tuple[str, str]] = set()
        self.folded: set[tuple[str, str]] = set()

    def admit(self, key: tuple[str, str]) -> bool:
        if key in self.admitted:
            return True
        if key not in self.folded and len(self.admitted) < max_services:
            self.admitted.add(key)
            return True
        self.folded.add(key)
        return False

    def release(self, key: tuple[str, str]) -> None:
        self.admitted.discard(key)
        self.folded.discard(key)


_services = _Services()


def set_max_services(limit: int) -> None:
    global max_services
    max_services = limit


class _FoldedGauge:
    """A folded service's view of a gauge: ``_other`` carries the sum of them all."""

    def __init__(self, owner: ServiceGauge, key: tuple[str, str]) -> None:
        self.owner, self.key = owner, key

    def set(self, value: float) -> None:
        old = self.owner.folded.get(self.key, 0.0)
        self.owner.folded[self.key] = value
        self.owner.gauge.labels(OTHER, OTHER).inc(value - old)

    def inc(self, amount: float = 1) -> None:
        self.set(self.owner.folded.get(self.key, 0.0) + amount)


class ServiceGauge:
    """A gauge per (prefix, service), bounded as the module docstring says."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.folded: dict[tuple[str, str], float] = {}

    def labels(self, prefix: str, service: str) -> Gauge | _FoldedGauge:
        key = (prefix, service)
        return self.gauge.labels(prefix, service) if _services.admit(key) \
            else _FoldedGauge(self, key)

    def remove(self, prefix: str, service: str) -> None:
        key = (prefix, service)
        if key in self.folded:
            self.gauge.labels(OTHER, OTHER).dec(self.folded.pop(key))
        with contextlib.suppress(KeyError):
            self.gauge.remove(prefix, service)


class ServiceCounter:
    """A counter per (prefix, service); folded services all count into ``_other``."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def labels(self, prefix: str, service: str) -> Counter:
        if _services.admit((prefix, service)):
            return self.counter.labels(prefix, service)
        return self.counter.labels(OTHER, OTHER)

    def remove(self, prefix: str, service: str) -> None:
        if (prefix, service) in _services.admitted:
            with contextlib.suppress(KeyError):
                self.counter.remove(prefix, service)


_instances = Gauge(f"{NS}_instances", "Instances registered in etcd, per service",
                   ["prefix", "service"])
_desired_instances = Gauge(f"{NS}_desired_instances",
                           "Instances Kubernetes wants registered, per service",
                           ["prefix", "service"])
_conflicts = Gauge(f"{NS}_conflicts", "Keys held by another writer, left alone",
                   ["prefix", "service"])
_consecutive_failures = Gauge(f"{NS}_consecutive_failures",
                              "Consecutive failed syncs per service (retry.maxAttemptTimes "
                              "applies to it)", ["prefix", "service"])
_degraded = Gauge(f"{NS}_degraded", "1 while a service is past maxAttemptTimes failures",
                  ["prefix", "service"])
instances = ServiceGauge(_instances)
desired_instances = ServiceGauge(_desired_instances)
conflicts = ServiceGauge(_conflicts)
consecutive_failures = ServiceGauge(_consecutive_failures)
degraded = ServiceGauge(_degraded)
sync_seconds = Histogram(f"{NS}_sync_duration_seconds", "Duration of one sync of one service",
                         ["kind"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                            2.5, 5, 10, 30))
change_seconds = Histogram(
    f"{NS}_change_to_etcd_seconds",
    "From the first pod or spec change of a batch reaching the operator to etcd "
    "acknowledging its write: the operator's own share of the registration latency",
    # Fine below 50 ms, where a healthy operator is: a p99 target of 20 ms needs
    # buckets that can tell 12 from 20 ms (one label-less series: cheap).
    buckets=(.001, .002, .003, .004, .005, .006, .008, .01, .012, .014, .016, .018, .02,
             .025, .03, .04, .05, .075, .1, .25, .5, 1, 2.5, 5, 10))
_FINE = (.0005, .001, .002, .003, .004, .005, .006, .008, .01, .012, .014, .016, .018, .02,
         .025, .03, .04, .05, .075, .1, .25, .5, 1, 2.5)
change_phase_seconds = Histogram(
    f"{NS}_change_phase_seconds",
    "The operator's share of a change, by phase: queued (the first change to the "
    "start of its write cycle, a write already in flight included), gathered (the "
    "debounce), view (waiting for the watches to be current), written (deciding the "
    "owner, the diff, building the transaction) and etcd (waiting for etcd's answers)",
    ["phase"], buckets=_FINE)
change_own_seconds = Histogram(
    f"{NS}_change_own_seconds",
    "The operator's share of a change less what its write cycle waited for etcd's "
    "answers: the part that is the operator's own (a write of the service already in "
    "flight when the change came still counts, etcd's time in it included)",
    buckets=_FINE)
etcd_ops = Counter(f"{NS}_etcd_operations_total", "etcd operations sent, by kind",
                   ["op"])
etcd_seconds = Histogram(
    f"{NS}_etcd_request_duration_seconds",
    "etcd's answer time to the operator's reads and writes, by kind: what of a change's "
    "written phase is etcd's (consensus, the disk) rather than the operator's",
    ["op"], buckets=(*_FINE, 5))
etcd_shared_txns = Counter(
    f"{NS}_etcd_shared_transactions_total",
    "Transactions that went to etcd in one request with others (changes to many "
    "services at once)")
etcd_shared_txn_retries = Counter(
    f"{NS}_etcd_shared_transaction_retries_total",
    "Shared requests that failed as a whole (a member's compare or lease) and whose "
    "members were sent again one by one")
etcd_errors = Counter(f"{NS}_etcd_errors_total", "etcd operations that failed, by kind",
                      ["op"])
keepalive_failures = Counter(f"{NS}_lease_keepalive_failures_total",
                             "Lease keepalives that failed or found the lease gone")
_deletes_withheld = Counter(f"{NS}_deletes_withheld_total",
                            "Deletions held back by --max-deletes (they follow in later cycles)",
                            ["prefix", "service"])
deletes_withheld = ServiceCounter(_deletes_withheld)
pods_seen = Gauge(f"{NS}_pods_seen", "Pods in the operator's view (watched namespaces)")
pod_relists = Counter(f"{NS}_pod_relists_total",
                      "Complete lists of pods, by reason (initial, resync, gone: a 410 answer)",
                      ["reason"])
pod_watch_errors = Counter(f"{NS}_pod_watch_errors_total",
                           "Pod watch streams that failed and were resumed")
_source_relists = Counter(f"{NS}_source_relists_total",
                          "Complete lists of Services and EndpointSlices, by resource and reason",
                          ["resource", "reason"])
_source_watch_errors = Counter(f"{NS}_source_watch_errors_total",
                               "Service and EndpointSlice watch streams that failed and were "
                               "resumed", ["resource"])
services_seen = Gauge(f"{NS}_services_seen", "Services in the operator's view")
endpoints_seen = Gauge(f"{NS}_endpoints_seen", "EndpointSlice endpoints in the operator's view")


def relists(resource: str, reason: str) -> Any:
    """The relist counter of one watched resource (pods keep their series of old)."""
    if resource == "pods":
        return pod_relists.labels(reason)
    return _source_relists.labels(resource, reason)


def watch_errors(resource: str) -> Any:
    if resource == "pods":
        return pod_watch_errors
    return _source_watch_errors.labels(resource)

writes = Counter(f"{NS}_entries_written_total", "Entries put or deleted, by kind", ["kind"])
initial_sync_done = Gauge(f"{NS}_initial_sync_done", "1 once the initial lists were applied")
loop_lag = Histogram(f"{NS}_event_loop_lag_seconds",
                     "How late the event loop ran a 100 ms timer: the wait any event "
                     "arriving then had on top of its own handling",
                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
gc_pause = Histogram(f"{NS}_gc_pause_seconds",
                     "How long each cyclic garbage collection held the event loop, by "
                     "generation: a pause every event arriving then waited for",
                     ["generation"],
                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))
gc_pause_cpu = Histogram(f"{NS}_gc_pause_cpu_seconds",
                         "The operator's own CPU time in each cyclic garbage collection, by "
                         "generation: a pause much longer than this was spent waiting for a "
                         "core or for memory, not collecting",
                         ["generation"],
                         buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))
gc_moments = Counter(f"{NS}_gc_moments_total",
                     "Garbage collections started by the operator once due, by moment: "
                     "quiet (no change on its way to etcd) or busy (none came within "
                     "--gc-patience)", ["moment"])
leader = Gauge(f"{NS}_leader", "1 while this replica is the writer")
task_crashes = Counter(f"{NS}_task_crashes_total",
                       "Unexpected exceptions that ended a supervised task (it is restarted "
                       "after a backoff), by kind of task", ["kind"])
tasks_failing = Gauge(f"{NS}_tasks_failing",
                      "Tasks past the crash limit within the window (/healthz is false "
                      "while above 0)")
status_errors = Counter(f"{NS}_status_write_errors_total",
                        "KitexService status patches and Events that could not be written, "
                        "by kind (status, event)", ["kind"])


def forget_service(prefix: str, service: str) -> None:
    """A removed service must not linger on dashboards with its last values; its
    series slot goes to the next service seen."""
    for metric in (instances, desired_instances, conflicts, consecutive_failures, degraded,
                   deletes_withheld):
        metric.remove(prefix, service)
    _services.release((prefix, service))


# perf_counter() and thread_time() at the running collection's start
_collection_started: tuple[float, float] | None = None


def _timed_collection(phase: str, info: dict[str, Any]) -> None:
    global _collection_started
    if phase == "start":
        _collection_started = (time.perf_counter(), time.thread_time())
    elif _collection_started is not None:
        wall, cpu = _collection_started
        generation = str(info["generation"])
        gc_pause.labels(generation).observe(time.perf_counter() - wall)
        gc_pause_cpu.labels(generation).observe(time.thread_time() - cpu)
        _collection_started = None


def measure_collections() -> None:
    """Feed ``gc_pause`` from now on. The loop's lag shows a pause only when its
    100 ms timer falls in it; a collection of 15 ms every few seconds hid there, and
    was half of the slowest etcd requests of a churn."""
    if _timed_collection not in gc.callbacks:
        gc.callbacks.append(_timed_collection)


async def measure_loop_lag(interval: float = 0.1) -> None:
    """Feed ``loop_lag`` for good. Every event the operator handles waits for the one
    thread: a long step anywhere (a big list page, a collection, a slow callback)
    shows here before it shows as a latency somewhere else."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        loop_lag.observe(max(0.0, loop.time() - due))
