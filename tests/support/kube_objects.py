"""Kubernetes objects and queries shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.support.helpers import pod_is_ready

PREFIX = "kitex/registry-etcd"
ANN = "kitex.cloudwego.io/"


def value(ip: str, port: int, weight: int = 10, tags: str = "null") -> bytes:
    return (f'{{"network":"tcp","address":"{ip}:{port}","weight":{weight},"tags":{tags}}}'
            ).encode()


def deployment(name: str, replicas: int, *, annotations: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None,
               ) -> dict[str, Any]:
    labels = {"app": name, **(labels or {})}
    container: dict[str, Any] = {"name": "app", "image": "fake/kitex-server"}
    if ports:
        container["ports"] = ports
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels,
                                               "annotations": annotations or {}},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 30}}}}


def ready_pods(core: Any, namespace: str, app: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if pod_is_ready(p) and p.status.pod_ip
            and not p.metadata.deletion_timestamp]


def expected(core: Any, namespace: str, app: str, service: str, port: int,
             prefix: str = PREFIX, **kw: Any) -> dict[str, bytes]:
    return {f"{prefix}/{service}/{p.status.pod_ip}:{port}": value(p.status.pod_ip, port, **kw)
            for p in ready_pods(core, namespace, app)}


def kitexservice(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": {"name": name}, "spec": spec}


def custom(k8s: Any) -> Any:
    return client.CustomObjectsApi(k8s)


def cr_status(k8s: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = custom(k8s).get_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                   "kitexservices", name)
    return dict(obj.get("status") or {})


def condition(k8s: Any, namespace: str, name: str, kind: str) -> dict[str, Any]:
    for cond in cr_status(k8s, namespace, name).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


