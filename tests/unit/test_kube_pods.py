"""Which pods count: the registration rule of issue 4, read from raw pod bodies."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.kube.pods import PodView, is_eligible, pod_view


def pod_body(*, ready: bool = True, ip: str | None = "10.0.0.7", ips: list[str] | None = None,
             deleting: bool = False, gates: dict[str, str] | None = None,
             phase: str = "Running", **meta: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    conditions += [{"type": t, "status": s} for t, s in (gates or {}).items()]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "hostIP": "192.168.1.5"}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": i} for i in (ips or [ip])]
    metadata: dict[str, Any] = {"uid": "uid-1", "namespace": "ns", "name": "echo-1",
                                "labels": {"app": "echo"}}
    metadata.update(meta)
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": metadata, "status": status, "spec": {
        "readinessGates": [{"conditionType": t} for t in (gates or {})],
        "containers": [
            {"name": "app", "ports": [{"name": "rpc", "containerPort": 8888},
                                      {"name": "metrics", "containerPort": 9090,
                                       "protocol": "TCP"}]},
            {"name": "side", "ports": [{"containerPort": 53, "protocol": "UDP"}]},
        ]}}


def test_view_keeps_what_registration_needs() -> None:
    body = pod_body(annotations={"kitex.cloudwego.io/service": "echo",
                                 "kubectl.kubernetes.io/last-applied-configuration": "{...}"})
    view = pod_view(body)
    assert view == PodView(
        uid="uid-1", namespace="ns", name="echo-1", labels={"app": "echo"},
        annotations={"kitex.cloudwego.io/service": "echo"}, pod_ips=("10.0.0.7",),
        host_ip="192.168.1.5", ready=True, terminating=False,
        container_ports=(("rpc", 8888, "TCP"), ("metrics", 9090, "TCP"), ("", 53, "UDP")),
        host_network=False)
    assert is_eligible(view)


def test_other_annotations_are_dropped() -> None:
    view = pod_view(pod_body(annotations={"a": "b", "kitex.cloudwego.io/port": "1"}))
    assert dict(view.annotations) == {"kitex.cloudwego.io/port": "1"}


def test_not_ready_is_not_eligible_unless_published_not_ready() -> None:
    view = pod_view(pod_body(ready=False))
    assert not view.ready
    assert not is_eligible(view)
    assert is_eligible(view, publish_not_ready=True)


def test_terminating_is_never_eligible() -> None:
    view = pod_view(pod_body(deleting=True))
    assert view.terminating
    assert not is_eligible(view)
    assert not is_eligible(view, publish_not_ready=True)


def test_no_ip_is_never_eligible() -> None:
    view = pod_view(pod_body(ip=None))
    assert view.pod_ips == ()
    assert not is_eligible(view, publish_not_ready=True)


def test_finished_pods_are_never_eligible() -> None:
    for phase in ("Succeeded", "Failed"):
        view = pod_view(pod_body(phase=phase, ready=False))
        assert view.finished and not is_eligible(view, publish_not_ready=True)


def test_readiness_gates_must_all_be_true() -> None:
    assert pod_view(pod_body(gates={"example.com/lb": "True"})).ready
    assert not pod_view(pod_body(gates={"example.com/lb": "False"})).ready
    body = pod_body()
    body["spec"]["readinessGates"] = [{"conditionType": "example.com/missing"}]
    assert not pod_view(body).ready


def test_dual_stack_keeps_order_and_primary_first() -> None:
    view = pod_view(pod_body(ip="fd00::7", ips=["fd00::7", "10.0.0.7"]))
    assert view.pod_ips == ("fd00::7", "10.0.0.7")
    body = pod_body()
    del body["status"]["podIPs"]
    assert pod_view(body).pod_ips == ("10.0.0.7",)


def test_host_network() -> None:
    body = pod_body()
    body["spec"]["hostNetwork"] = True
    assert pod_view(body).host_network


def test_empty_and_partial_bodies() -> None:
    view = pod_view({})
    assert view.uid == "" and not view.ready and not is_eligible(view, True)
    deleted = pod_view({"metadata": {"uid": "x", "namespace": "n", "name": "p"}})
    assert deleted.uid == "x" and deleted.pod_ips == ()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["metadata", "spec", "status", "labels", "annotations",
                                       "podIP", "podIPs", "ip", "conditions", "type", "status",
                                       "containers", "ports", "containerPort", "name",
                                       "readinessGates", "conditionType", "hostNetwork",
                                       "deletionTimestamp", "uid", "phase"]),
                      children, max_size=5),
    max_leaves=20)


@given(_json)
def test_pod_view_never_raises(body: Any) -> None:
    if isinstance(body, dict):
        view = pod_view(body)
        is_eligible(view)
        assert all(isinstance(ip, str) and ip for ip in view.pod_ips)
