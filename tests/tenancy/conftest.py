"""A victim and an attacker on the real cluster: two team namespaces and team-a's service.

Every attack test starts from the same picture: team-a runs ``payment`` (three
ready pods, annotated), the operator has registered it, and an etcd watch on
its range is recording. The test lets team-b attack, waits until the operator
has visibly refused (an Event or a condition), and then proves that team-a's
keys are byte-identical, on the same lease, with no watch event, and that a
real Kitex resolver still returns exactly team-a's instances.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.etcd_probe import EtcdProbe, WatchRecorder, wait_keys
from tests.support.helpers import create_namespace
from tests.support.kube_objects import ANN, deployment, expected
from tests.tenancy.teams import GROUP, VERSION, Teams


@pytest.fixture
def teams(k8s: Any, etcd_probe: EtcdProbe, start_operator: Callable[..., Any],
          policy_crds: None) -> Iterator[Callable[..., Teams]]:
    """``teams(*operator_args)``: team-a and team-b namespaces, the operator watching both,
    team-a's ``payment`` registered and settled. Namespaces deleted afterwards."""
    core = client.CoreV1Api(k8s)
    made: list[str] = []
    recorders: list[WatchRecorder] = []

    def setup(*args: str, labels_a: dict[str, str] | None = None,
              labels_b: dict[str, str] | None = None, settle: bool = True) -> Teams:
        run = uuid.uuid4().hex[:6]
        a, b = f"team-a-{run}", f"team-b-{run}"
        create_namespace(core, a, labels_a or {"tenant": "a"})
        create_namespace(core, b, labels_b or {"tenant": "b"})
        made.extend([a, b])
        t = Teams(a, b, f"payment-{run}", core, client.CustomObjectsApi(k8s), etcd_probe)
        t.operator = start_operator("--namespace", a, "--namespace", b, *args)
        apps = client.AppsV1Api(k8s)
        apps.create_namespaced_deployment(a, deployment("payment", 3, annotations={
            ANN + "service": t.service, ANN + "port": "8888"}))
        if settle:
            wait_keys(etcd_probe, t.range,
                      lambda: len(exp := expected(core, a, "payment", t.service, 8888)) == 3
                      and etcd_probe.values(t.range) == exp, timeout=90,
                      what="team-a's 3 instances")
            t.settle()
            assert t.watch is not None
            recorders.append(t.watch)
        return t

    yield setup
    for recorder in recorders:
        recorder.stop()
    for name in made:
        core.delete_namespace(name)


@pytest.fixture
def policy_crds(kube: Any, crds: None) -> None:
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 "crd/kitexregistrationpolicies.kitex.cloudwego.io",
                 "crd/kitexetcdregistries.kitex.cloudwego.io")


@pytest.fixture
def cluster_objects(k8s: Any) -> Iterator[Callable[[str, str, dict[str, Any]], None]]:
    """``create(plural, name, spec)`` of a cluster-scoped policy or registry, deleted
    at teardown: a policy left behind would change what every later test may do."""
    custom = client.CustomObjectsApi(k8s)
    made: list[tuple[str, str]] = []

    def create(plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"kitexregistrationpolicies": "KitexRegistrationPolicy",
                "kitexetcdregistries": "KitexEtcdRegistry"}[plural]
        custom.create_cluster_custom_object(GROUP, VERSION, plural, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name},
            "spec": spec})
        made.append((plural, name))

    yield create
    for plural, name in made:
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
