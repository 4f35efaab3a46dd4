"""Pods vs EndpointSlices: latency from a readiness change to etcd, and memory per endpoint.

One run serves both sources at once: the pods are annotated (service
``bench-pods``, the pod source) and selected by a Service annotated
``bench-svc`` (the Service source). Each readiness flip is one change seen by
both paths, so the two latencies are measured on the same events, in the
same operator: the difference is kube-controller-manager's EndpointSlice
controller (its batching and its own watch) plus the operator's slice path.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from kubernetes import client

from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import wait_until
from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.kube.services import service_view, slice_view

NAMESPACE = "bench-sources"
PREFIX = "kitex/registry-etcd"
ANN = "kitex.cloudwego.io/"


def _ready(core: Any, name: str, ready: bool) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = "True" if ready else "False"
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": {"conditions": [
        {"type": t, "status": status, "lastTransitionTime": now}
        for t in ("Ready", "ContainersReady")]}})


def latency(kube: KubeCluster, etcd: EtcdCluster, operator_cls: Any, workdir: Path,
            pods: int = 50, flips: int = 30) -> dict[str, float]:
    """p50/p99 (ms) from a readiness patch going out to the key leaving or returning in
    etcd, through the pods and through the EndpointSlices, over ``flips`` changes."""
    import asyncio

    from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig

    api = kube.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    try:  # pods wait for it; the controller-manager may have made it already
        core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "default"}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    apps.create_namespaced_deployment(NAMESPACE, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "src"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "src"}},
                 "template": {"metadata": {"labels": {"app": "src"}, "annotations": {
                     ANN + "service": "bench-pods", ANN + "port": "8888"}},
                     "spec": {"containers": [{"name": "c", "image": "fake"}]}}}})
    core.create_namespaced_service(NAMESPACE, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "src", "annotations": {ANN + "service": "bench-svc"}},
        "spec": {"selector": {"app": "src"},
                 "ports": [{"name": "kitex", "port": 8888, "targetPort": 8888}]}})
    operator = operator_cls(kube, etcd, workdir)

    async def keys(service: str) -> set[str]:
        c = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
        try:
            return {kv.key for kv in (await c.get_prefix(f"{PREFIX}/{service}/"))[0]}
        finally:
            await c.close()

    try:
        wait_until(lambda: (operator.alive() and len(asyncio.run(keys("bench-pods"))) == pods
                            and len(asyncio.run(keys("bench-svc"))) == pods) or None,
                   timeout=300,
                   interval=0.5, what="both sources registered")
        names = [p.metadata.name for p in core.list_namespaced_pod(
            NAMESPACE, label_selector="app=src").items][:flips]
        ips = {p.metadata.name: p.status.pod_ip for p in core.list_namespaced_pod(
            NAMESPACE, label_selector="app=src").items}
        times: dict[str, list[float]] = {"pods": [], "endpointslices": []}
        for i, name in enumerate(names * 2):
            ready = i >= len(names)  # first every pod leaves, then every one comes back
            key = {s: f"{PREFIX}/{s}/{ips[name]}:8888" for s in ("bench-pods", "bench-svc")}
            sent = time.monotonic()
            _ready(core, name, ready)
            seen: dict[str, float] = {}
            deadline = sent + 30
            while len(seen) < 2 and time.monotonic() < deadline:
                for source, service in (("pods", "bench-pods"), ("endpointslices", "bench-svc")):
                    if source not in seen and (key[service] in asyncio.run(keys(service))) \
                            == ready:
                        seen[source] = time.monotonic()
                time.sleep(0.005)  # polling etcd: the watch-free probe of a bench loop
            for source, at in seen.items():
                times[source].append((at - sent) * 1000)
        figures: dict[str, float] = {"flips": float(len(names) * 2)}
        for source, values in times.items():
            q = statistics.quantiles(values, n=100)
            figures[f"{source}_p50_ms"] = q[49]
            figures[f"{source}_p99_ms"] = q[98]
        print(f"  readiness -> etcd over {len(names) * 2} flips: pods p50 "
              f"{figures['pods_p50_ms']:.0f} ms, p99 {figures['pods_p99_ms']:.0f} ms; "
              f"EndpointSlices p50 {figures['endpointslices_p50_ms']:.0f} ms, p99 "
              f"{figures['endpointslices_p99_ms']:.0f} ms", flush=True)
        return figures
    finally:
        operator.stop()
        core.delete_namespace(NAMESPACE)


def memory_per_endpoint(endpoints: int = 10_000, per_slice: int = 100) -> float:
    """Bytes the operator holds per ready endpoint: the slice views and the desired
    values they make, measured with tracemalloc on slices shaped as the controller
    writes them (100 endpoints each)."""
    bodies = [{"metadata": {"uid": f"s{i}", "namespace": "ns", "resourceVersion": "1",
                            "labels": {"kubernetes.io/service-name": "svc"}},
               "addressType": "IPv4", "ports": [{"name": "kitex", "port": 8888,
                                                 "protocol": "TCP"}],
               "endpoints": [{"addresses": [f"10.{i // 250}.{i % 250}.{j}"],
                              "conditions": {"ready": True, "serving": True,
                                             "terminating": False},
                              "nodeName": "node-1", "targetRef": {"kind": "Pod",
                                                                  "name": f"p{i}-{j}"}}
                             for j in range(per_slice)]}
              for i in range(endpoints // per_slice)]
    state = DesiredState()
    state.set_namespaces({"ns": {ANN + "auto-register": "enabled"}})
    state.upsert_service(service_view({"metadata": {"uid": "u", "name": "svc",
                                                    "namespace": "ns"},
                                       "spec": {"ports": [{"name": "kitex", "port": 80}]}}))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for body in bodies:
        state.upsert_slice(slice_view(body))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per = held / endpoints
    print(f"  memory per endpoint (EndpointSlice source, {endpoints} endpoints): "
          f"{per:.0f} bytes", flush=True)
    return per
