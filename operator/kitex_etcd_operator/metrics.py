"""Prometheus metrics: what an on-call engineer needs to see the operator is syncing.

The metric names are part of the operator's interface (dashboards and
alerts use them): rename with care. Labels are bounded: services and etcd
operations, never pods or keys.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

NS = "kitex_etcd_operator"

instances = Gauge(f"{NS}_instances", "Instances registered in etcd, per service",
                  ["prefix", "service"])
desired_instances = Gauge(f"{NS}_desired_instances",
                          "Instances Kubernetes wants registered, per service",
                          ["prefix", "service"])
conflicts = Gauge(f"{NS}_conflicts", "Keys held by another writer, left alone",
                  ["prefix", "service"])
consecutive_failures = Gauge(f"{NS}_consecutive_failures",
                             "Consecutive failed syncs per service (retry.maxAttemptTimes "
                             "applies to it)", ["prefix", "service"])
degraded = Gauge(f"{NS}_degraded", "1 while a service is past maxAttemptTimes failures",
                 ["prefix", "service"])
sync_seconds = Histogram(f"{NS}_sync_duration_seconds", "Duration of one sync of one service",
                         ["kind"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                            2.5, 5, 10, 30))
change_seconds = Histogram(
    f"{NS}_change_to_etcd_seconds",
    "From the first pod or spec change of a batch reaching the operator to etcd "
    "acknowledging its write: the operator's own share of the registration latency",
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
etcd_ops = Counter(f"{NS}_etcd_operations_total", "etcd operations sent, by kind",
                   ["op"])
etcd_errors = Counter(f"{NS}_etcd_errors_total", "etcd operations that failed, by kind",
                      ["op"])
keepalive_failures = Counter(f"{NS}_lease_keepalive_failures_total",
                             "Lease keepalives that failed or found the lease gone")
deletes_withheld = Counter(f"{NS}_deletes_withheld_total",
                           "Deletions held back by --max-deletes (they follow in later cycles)",
                           ["prefix", "service"])
leases = Gauge(f"{NS}_leases", "Leases held, over all etcd targets")
pods_seen = Gauge(f"{NS}_pods_seen", "Pods in the operator's view (watched namespaces)")
pod_relists = Counter(f"{NS}_pod_relists_total",
                      "Complete lists of pods, by reason (initial, resync, gone: a 410 answer)",
                      ["reason"])
pod_watch_errors = Counter(f"{NS}_pod_watch_errors_total",
                           "Pod watch streams that failed and were resumed")
pods_registered = Gauge(f"{NS}_pods_registered", "Pods that are an instance of some service")
writes = Counter(f"{NS}_entries_written_total", "Entries put or deleted, by kind", ["kind"])
initial_sync_done = Gauge(f"{NS}_initial_sync_done", "1 once the initial lists were applied")
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
    """A removed service must not linger on dashboards with its last values."""
    for gauge in (instances, desired_instances, conflicts, consecutive_failures, degraded,
                  deletes_withheld):
        with contextlib.suppress(KeyError):
            gauge.remove(prefix, service)
