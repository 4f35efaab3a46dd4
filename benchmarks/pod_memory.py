"""What one pod costs the operator, without a cluster: ``python -m benchmarks.pod_memory``.

Synthetic pods shaped like the large benchmark's (``kitex-pods``: one
namespace, 1,000 services by annotation, kwok's status, managedFields) are
encoded a page of 500 at a time as the API server sends them, decoded by
``kube.podwire`` and fed through the pod ``Feed`` into ``DesiredState``, as
the controller does; then each binding's values are copied into what a
synced registry holds (``Observed`` per key). The figure is the Python heap
(tracemalloc) and the resident memory held at the end, per pod.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
import tracemalloc
import uuid
from typing import Any

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.feeds import Feed
from kitex_etcd_operator.kube import podwire
from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.plan import Observed

NAMESPACE = "bench-large"
STAMP = "2026-12-01T20:00:00Z"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def body(i: int, services: int) -> dict[str, Any]:
    """One kwok pod as the API server returns it (the fields around the read ones too)."""
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    node = f"kwok-node-{i % 10}"
    return {
        "metadata": {
            "name": f"p{i}", "namespace": NAMESPACE, "uid": str(uuid.UUID(int=i + 1)),
            "resourceVersion": str(100_000 + i), "creationTimestamp": STAMP,
            "labels": {"app": "bench-large"},
            "annotations": {"kitex.cloudwego.io/service": f"svc-{i % services:04d}",
                            "kitex.cloudwego.io/port": "8888"},
            "managedFields": [
                {"manager": "kitex-pods", "operation": "Update", "apiVersion": "v1",
                 "time": STAMP, "fieldsType": "FieldsV1", "fieldsV1": {
                     "f:metadata": {"f:annotations": {".": {},
                                                      "f:kitex.cloudwego.io/port": {},
                                                      "f:kitex.cloudwego.io/service": {}},
                                    "f:labels": {".": {}, "f:app": {}}},
                     "f:spec": {"f:containers": {'k:{"name":"c"}': {
                         ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                         "f:resources": {}, "f:terminationMessagePath": {},
                         "f:terminationMessagePolicy": {}}},
                         "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:nodeName": {},
                         "f:restartPolicy": {}, "f:schedulerName": {},
                         "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kwok", "operation": "Update", "apiVersion": "v1", "time": STAMP,
                 "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {
                     "f:status": {"f:conditions": {}, "f:containerStatuses": {},
                                  "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {},
                                  "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}}}]},
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
            "containers": [{"name": "c", "image": "bench/kitex", "resources": {},
                            "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/"
                                                           "serviceaccount"}],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "Always"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "nodeName": node,
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": STAMP}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "hostIP": f"192.168.0.{i % 10}", "hostIPs": [{"ip": f"192.168.0.{i % 10}"}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": STAMP,
            "containerStatuses": [{"name": "c", "state": {"running": {"startedAt": STAMP}},
                                   "lastState": {}, "ready": True, "restartCount": 0,
                                   "image": "bench/kitex", "imageID": "", "started": True}]},
    }


_TEMPLATE: list[str] = []


def _pod_json(i: int, services: int) -> str:
    """``body(i)`` as JSON, from a template: making the pages must not leave the
    heap fragmented by its own garbage, which would be counted as the operator's."""
    if not _TEMPLATE:
        text = json.dumps(body(16_777_215, services), separators=(",", ":"))
        for old, new in (("10.255.255.255", "{ip}"), ("p16777215", "{name}"),
                         ("00000000-0000-0000-0000-000001000000", "{uid}"),
                         ("16877215", "{version}"), ("192.168.0.5", "{host}"),
                         ("kwok-node-5", "{node}"), ('"svc-0215"', '"{service}"')):
            text = text.replace(old, new)
        _TEMPLATE.append(text.replace("{", "{{").replace("}", "}}")
                         .replace("{{ip}}", "{ip}").replace("{{name}}", "{name}")
                         .replace("{{uid}}", "{uid}").replace("{{version}}", "{version}")
                         .replace("{{host}}", "{host}").replace("{{node}}", "{node}")
                         .replace("{{service}}", "{service}"))
    return _TEMPLATE[0].format(
        ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", name=f"p{i}",
        uid=str(uuid.UUID(int=i + 1)), version=100_000 + i, host=f"192.168.0.{i % 10}",
        node=f"kwok-node-{i % 10}", service=f"svc-{i % services:04d}")


def page(first: int, count: int, services: int, last: bool) -> bytes:
    items = ",".join(_pod_json(i, services) for i in range(first, first + count))
    token = "" if last else str(first + count)
    return (f'{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"200000",'
            f'"continue":"{token}"}},"items":[{items}]}}').encode()


def measure(pods: int, services: int = 1000, trace: bool = False,
            top: int = 0) -> dict[str, Any]:
    """Feed ``pods`` pods in; the memory held per pod, with the state alive."""
    state = DesiredState()
    feed = Feed("Pod", upsert=state.upsert_pod, read=pod_view, remove=state.remove_pod,
                held=lambda: ((u, p.namespace, p.name) for u, p in state.pods.items()),
                changed=lambda: None, resync_period=300)
    gc.collect()
    if trace:
        tracemalloc.start()
    heap0, rss0, seconds = tracemalloc.get_traced_memory()[0], _rss(), 0.0
    for first in range(0, pods, 500):
        data = page(first, min(500, pods - first), services, first + 500 >= pods)
        t0 = time.process_time()  # the reading only, not the making of the page
        items, _, _ = podwire.decode_page(data)
        for item in items:
            feed.on_item(None, item)
        state.take_dirty()
        seconds += time.process_time() - t0
    observed = {binding: {key: Observed(value, 1) for key, value in
                          state.values(binding, {NAMESPACE}).items()}
                for binding in state.bindings()}
    data = b""
    gc.collect()
    heap, rss = tracemalloc.get_traced_memory()[0] - heap0, _rss() - rss0
    sites = []
    if trace and top:
        snapshot = tracemalloc.take_snapshot()
        sites = [(str(s.traceback), s.size / pods)
                 for s in snapshot.statistics("lineno")[:top]]
    tracemalloc.stop()
    assert len(state.pods) == pods and sum(len(v) for v in observed.values()) == pods
    return {"pods": pods, "cpu_s": seconds, "heap_bytes_per_pod": heap / pods if trace else None,
            "rss_bytes_per_pod": rss / pods, "sites": sites}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pod_memory")
    parser.add_argument("pods", type=int, nargs="*", default=[10_000])
    parser.add_argument("--trace", action="store_true",
                        help="the Python heap with tracemalloc (slower), not only RSS")
    parser.add_argument("--top", type=int, default=0, help="the N largest allocation sites")
    args = parser.parse_args()
    for n in args.pods:
        result = measure(n, trace=args.trace, top=args.top)
        heap = result["heap_bytes_per_pod"]
        print(f"{n} pods: {result['cpu_s']:.1f} s CPU, RSS {result['rss_bytes_per_pod']:.0f} "
              f"B/pod" + (f", heap {heap:.0f} B/pod" if heap is not None else ""), flush=True)
        for site, size in result["sites"]:
            print(f"  {size:7.1f} B/pod  {site}")


if __name__ == "__main__":
    main()
