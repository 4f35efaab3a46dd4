"""Raw Kubernetes objects as the API server sends them, for tests without a cluster."""

from __future__ import annotations

from typing import Any

ANNOTATED = {"kitex.cloudwego.io/service": "echo", "kitex.cloudwego.io/port": "8888"}


def pod(uid: str, ip: str = "10.0.0.1", *, ready: bool = True,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        ns: str = "default", deleting: bool = False, version: int = 1,
        created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": f"pod-{uid}", "namespace": ns,
                            "labels": labels or {}, "annotations": annotations or {},
                            "resourceVersion": str(version), "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "ports": [{"name": "rpc",
                                                             "containerPort": 8888}]}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.1",
                       "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def kitexservice(name: str, *, ns: str = "default", created: str = "2026-01-01T00:00:00Z",
                 **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}",
                         "generation": 1, "creationTimestamp": created},
            "spec": {"selector": {"matchLabels": {"app": "echo"}}, **spec}}


def service(name: str, *, ns: str = "default", ports: list[dict[str, Any]] | None = None,
            annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
            created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"svc-{ns}-{name}",
                         "annotations": annotations or {}, "labels": labels or {},
                         "resourceVersion": "1", "creationTimestamp": created},
            "spec": {"ports": ports if ports is not None else
                     [{"name": "kitex", "port": 80, "targetPort": 8888, "protocol": "TCP"}]}}


def endpoint_slice(uid: str, svc: str, endpoints: list[tuple[str, bool]], *,
                   ns: str = "default", ports: list[dict[str, Any]] | None = None,
                   address_type: str = "IPv4", serving: bool | None = None,
                   terminating: bool = False,
                   managed_by: str = "endpointslice-controller.k8s.io") -> dict[str, Any]:
    """``endpoints``: (address, ready) pairs."""
    def conditions(ready: bool) -> dict[str, Any]:
        found: dict[str, Any] = {"ready": ready, "terminating": terminating}
        if serving is not None:
            found["serving"] = serving
        return found

    return {"metadata": {"name": f"{svc}-{uid}", "namespace": ns, "uid": uid,
                         "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": svc,
                                    "endpointslice.kubernetes.io/managed-by": managed_by}},
            "addressType": address_type,
            "ports": ports if ports is not None else
            [{"name": "kitex", "port": 8888, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": conditions(ready)}
                          for ip, ready in endpoints]}
