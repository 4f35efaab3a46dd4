"""What the etcd fault tests share: the short retry rhythm, a KitexService on an
etcd of the test's own, and the measures (time to Degraded, entries lost).

"Entries lost" is measured with etcd's own bookkeeping: a key that was never
deleted keeps its ``create_revision``, so a key present before the fault that
is still desired afterwards but has a different ``create_revision`` (or none)
was lost at some point, even if the operator wrote it again since.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import (
    PREFIX,
    condition,
    custom,
    deployment,
    expected,
    kitexservice,
    ready_pods,
)

# The brief's short retry rhythm: retryDelay 1 s, observeDelay 3 s, 3 attempts.
OBSERVE_DELAY = 3.0
RETRY_FLAGS = ("--retry-delay", "1s", "--observe-delay", "3s", "--max-attempt-times", "3")
RETRY_SPEC = {"retryDelay": "1s", "observeDelay": "3s", "maxAttemptTimes": 3}
PORT = 8888


@dataclass
class Service:
    """A Deployment and the KitexService selecting it, in the test's namespace."""

    k8s: Any
    namespace: str
    name: str
    probe: EtcdProbe

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.k8s)

    @property
    def range(self) -> str:
        return f"{PREFIX}/{self.name}/"

    def desired(self) -> dict[str, bytes]:
        return expected(self.core, self.namespace, self.name, self.name, PORT)

    def ready(self) -> list[Any]:
        return ready_pods(self.core, self.namespace, self.name)

    def scale(self, replicas: int) -> None:
        client.AppsV1Api(self.k8s).patch_namespaced_deployment_scale(
            self.name, self.namespace, {"spec": {"replicas": replicas}})

    def converged(self, replicas: int | None = None) -> bool:
        """etcd holds exactly the entries of the ready pods (and there are ``replicas``)."""
        want = self.desired()
        return (replicas is None or len(want) == replicas) and self.probe.values(self.range) == want

    def wait_converged(self, replicas: int | None = None, timeout: float = 60,
                       what: str = "etcd to hold exactly the desired entries") -> None:
        wait_for(lambda: self.converged(replicas), timeout=timeout, what=what, interval=0.05)

    def condition(self, kind: str) -> dict[str, Any]:
        return condition(self.k8s, self.namespace, self.name, kind)

    def wait_condition(self, kind: str, status: str, timeout: float = 60,
                       interval: float = 0.1) -> dict[str, Any]:
        return wait_for(lambda: (c := self.condition(kind)) and c.get("status") == status and c,
                        timeout=timeout, what=f"{kind}={status} on KitexService {self.name}",
                        interval=interval)

    def events(self, *reasons: str) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if e.involved_object.name == self.name
                and (not reasons or e.reason in reasons)]


def create_service(k8s: Any, namespace: str, name: str, replicas: int, probe: EtcdProbe,
                   etcd: dict[str, Any] | None = None) -> Service:
    """A Deployment of ``replicas`` and its KitexService; returns once etcd holds them."""
    client.AppsV1Api(k8s).create_namespaced_deployment(namespace, deployment(name, replicas))
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "port": PORT,
                            "retry": RETRY_SPEC}
    if etcd:
        spec["etcd"] = etcd
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice(name, spec))
    service = Service(k8s, namespace, name, probe)
    service.wait_converged(replicas, what=f"{replicas} entries of {name}")
    service.wait_condition("Ready", "True")
    return service


def create_revisions(probe: EtcdProbe, prefix: str) -> dict[str, int]:
    """Each key under ``prefix`` and the revision it was created at."""
    data = json.loads(probe.run("get", "--prefix", prefix, "-w", "json"))
    return {base64.b64decode(kv["key"]).decode(): int(kv["create_revision"])
            for kv in data.get("kvs") or []}


def entries_lost(before: dict[str, int], after: dict[str, int], desired: set[str]) -> list[str]:
    """Keys there before the fault and still desired, that etcd deleted meanwhile."""
    return sorted(k for k, rev in before.items() if k in desired and after.get(k) != rev)


def operator_starts(operator: Any) -> int:
    """How many times the operator started (one: it never crashed or restarted)."""
    return int(operator.log().count("Operator starting"))


def since(start: float) -> float:
    return round(time.monotonic() - start, 2)
