"""One tenant's malformed pods and Services against every other tenant's work.

After each write cycle the status writer asks what is wrong with pods (new
errors become Events on the pods, a KitexService's ``InvalidPods`` condition
lists its own); after each pod event it asks the same of Services. Before
the tenth round each of those walked every such error of the cluster: a
tenant could slow all registrations by creating pods or Services with a bad
annotation. In process, no cluster: the state and the status writer as the
operator builds them, each step timed many times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.kube import parse_kitexservice, pod_view
from kitex_etcd_operator.kube.services import service_view
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.report import SyncReport
from kitex_etcd_operator.retry import RetryConfig, RetryState
from kitex_etcd_operator.status import StatusReporter

SIZES = (0, 1_000, 10_000)
CYCLES = 2_000
BAD = {"kitex.cloudwego.io/weight": "heavy"}  # not a whole number


def _pod(name: str, namespace: str, ip: str, labels: dict[str, str],
         annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"uid": f"{namespace}-{name}", "name": name, "namespace": namespace,
                         "labels": labels, "annotations": annotations,
                         "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "rpc",
                                                             "containerPort": 8888}]}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


async def _cycle_cost(malformed: int) -> float:
    """Microseconds of one cycle's status step for a well-formed KitexService."""
    state = DesiredState()
    bad = {"kitex.cloudwego.io/service": "noise", "kitex.cloudwego.io/port": "8888", **BAD}
    for i in range(malformed):
        state.upsert_pod(pod_view(_pod(f"bad-{i}", "noisy", f"10.1.{i // 250}.{i % 250}",
                                       {}, bad)))
    body = {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": {"name": "echo", "namespace": "quiet", "uid": "u-echo",
                         "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"app": "echo"}}, "port": "rpc"}}
    state.upsert_spec(("quiet", "echo"), parse_kitexservice(body), body["spec"]["selector"])
    state.upsert_pod(pod_view(_pod("echo-0", "quiet", "10.0.0.1", {"app": "echo"}, {})))
    status = StatusReporter(None, state)
    status.spec_valid(("quiet", "echo"), body)
    binding = Binding("quiet", "kitex/registry-etcd", "echo")
    report = SyncReport(retry=RetryState(), retry_config=RetryConfig())
    status.binding_synced(binding, report)  # the first reports every error: news
    started = time.perf_counter()
    for _ in range(CYCLES):
        status.binding_synced(binding, report)
    return (time.perf_counter() - started) / CYCLES * 1e6


async def _pod_event_cost(malformed: int) -> float:
    """Microseconds of the Service check that follows every pod event."""
    state = DesiredState()
    state.set_namespaces({"noisy": {"kitex.cloudwego.io/auto-register": "enabled"}})
    for i in range(malformed):
        state.upsert_service(service_view({
            "metadata": {"name": f"svc-{i}", "namespace": "noisy", "uid": f"svc-{i}",
                         "annotations": BAD, "labels": {}, "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ports": [{"name": "kitex", "port": 80, "targetPort": 8888,
                                "protocol": "TCP"}]}}))
    status = StatusReporter(None, state)
    status.report_service_errors()  # the first reports every error: news
    started = time.perf_counter()
    for _ in range(CYCLES):
        status.report_service_errors()
    return (time.perf_counter() - started) / CYCLES * 1e6


def measure() -> dict[str, dict[str, float]]:
    """Microseconds a step, by the count of another tenant's malformed objects."""
    logging.getLogger("kitex_etcd_operator").setLevel(logging.ERROR)  # a warning each
    figures = {"cycle_us": {str(n): asyncio.run(_cycle_cost(n)) for n in SIZES},
               "pod_event_us": {str(n): asyncio.run(_pod_event_cost(n)) for n in SIZES}}
    for name, what in (("cycle_us", "a write cycle's status step, by another tenant's "
                                    "malformed pods"),
                       ("pod_event_us", "a pod event's Service check, by another "
                                        "tenant's malformed Services")):
        print(f"  {what}: " + ", ".join(f"{int(n):,}: {us:.0f} us"
                                        for n, us in figures[name].items()), flush=True)
    return figures
