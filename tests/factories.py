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
