"""The Service source, end to end: kube-controller-manager's EndpointSlice controller makes
the slices from kwok pods, the operator registers them; hand-written slices of a custom
controller cover what the cluster cannot (IPv6: its Service CIDR is single stack)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.helpers import sampled, set_pod_ready, wait_for
from tests.support.kube_objects import (
    ANN,
    PREFIX,
    custom,
    deployment,
    expected,
    kitexservice,
    ready_pods,
)
from tests.support.operator_process import OperatorProcess

AUTO = {"kitex.cloudwego.io/auto-register": "enabled"}
# Two ports: the one named kitex is registered, with its target port.
TWO_PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
             {"name": "kitex", "port": 9000, "targetPort": 8888, "protocol": "TCP"}]


def service_body(name: str, *, selector: dict[str, str] | None = None,
                 ports: list[dict[str, Any]] | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports or TWO_PORTS}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


def events(core: Any, namespace: str, reason: str, kind: str = "Service") -> list[Any]:
    return [e for e in core.list_namespaced_event(namespace).items
            if e.reason == reason and e.involved_object.kind == kind]


def test_a_labelled_namespace_registers_its_services_as_they_scale_roll_and_leave(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.patch_namespace(namespace, {"metadata": {"labels": AUTO}})
    start_operator("--namespace", namespace)
    apps.create_namespaced_deployment(namespace, deployment("echo", 3))
    core.create_namespaced_service(namespace, service_body("echo", selector={"app": "echo"}))
    rng = f"{PREFIX}/echo/"

    def exact() -> bool:
        return etcd_probe.values(rng) == expected(core, namespace, "echo", "echo", 8888)

    for replicas in (3, 10, 2):
        apps.patch_namespaced_deployment_scale("echo", namespace,
                                               {"spec": {"replicas": replicas}})
        wait_for(lambda r=replicas: len(ready_pods(core, namespace, "echo")) == r and exact()
                 and len(etcd_probe.values(rng)) == r, timeout=90,
                 what=f"{replicas} keys with the exact value, the target port of 'kitex'")

    # A pod turning not ready leaves through its slice's conditions, and comes back.
    victim = ready_pods(core, namespace, "echo")[0]
    key = f"{rng}{victim.status.pod_ip}:8888"
    set_pod_ready(core, victim.metadata.name, namespace, False)
    wait_for(lambda: set(etcd_probe.values(rng)) == set(expected(
        core, namespace, "echo", "echo", 8888)) and key not in etcd_probe.values(rng),
        timeout=60, what="the not-ready pod's key removed, the other kept")
    set_pod_ready(core, victim.metadata.name, namespace, True)
    wait_for(lambda: key in etcd_probe.values(rng) and exact(), timeout=60,
             what="the key back once ready")

    # A rolling update: never zero instances while it runs.
    old = {p.metadata.name for p in ready_pods(core, namespace, "echo")}
    with sampled(lambda: len(etcd_probe.values(rng))) as counts:
        apps.patch_namespaced_deployment(namespace=namespace, name="echo", body={
            "spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}})
        wait_for(lambda: (names := {p.metadata.name for p in ready_pods(core, namespace, "echo")})
                 and not (names & old) and len(names) == 2 and exact(), timeout=120,
                 what="the rolled-out pods, and only them, registered")
    assert counts and min(counts) > 0, f"the service had zero instances during the roll: {counts}"

    # The Service opts out: its entries leave; opting in again brings them back.
    core.patch_namespaced_service("echo", namespace, {"metadata": {"annotations": {
        ANN + "auto-register": "disabled"}}})
    wait_keys(etcd_probe, rng, {}, timeout=60, what="the opted-out Service's entries gone")
    core.patch_namespaced_service("echo", namespace, {"metadata": {"annotations": {
        ANN + "auto-register": None}}})
    wait_for(exact, timeout=60, what="the entries back once opted in again")

    # The namespace label removed: every entry leaves.
    core.patch_namespace(namespace, {"metadata": {"labels": {
        "kitex.cloudwego.io/auto-register": None}}})
    wait_keys(etcd_probe, rng, {}, timeout=60, what="the entries gone with the label")


def test_hand_written_dual_stack_slices_of_a_custom_controller(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    """A Service without a selector, its slices written by 'our-controller': IPv4 and IPv6,
    a second slice as it scales, a not-ready and a terminating endpoint, slices removed."""
    core, discovery = client.CoreV1Api(k8s), client.DiscoveryV1Api(k8s)
    start_operator("--namespace", namespace)
    core.create_namespaced_service(namespace, service_body(
        "dual", annotations={ANN + "service": "dual-rpc", ANN + "weight": "4"}))
    rng = f"{PREFIX}/dual-rpc/"

    def piece(name: str, family: str, endpoints: list[tuple[str, dict[str, bool]]]) -> None:
        discovery.create_namespaced_endpoint_slice(namespace, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/service-name": "dual",
                "endpointslice.kubernetes.io/managed-by": "our-controller.example.com"}},
            "addressType": family,
            "ports": [{"name": "kitex", "port": 7000, "protocol": "TCP"},
                      {"name": "http", "port": 7080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": c} for ip, c in endpoints]})

    def value(address: str) -> bytes:
        return (f'{{"network":"tcp","address":"{address}","weight":4,"tags":null}}').encode()

    ready = {"ready": True, "serving": True, "terminating": False}
    piece("dual-v4", "IPv4", [("10.250.0.1", ready),
                              ("10.250.0.2", {"ready": False, "serving": False}),
                              ("10.250.0.3", {"ready": False, "serving": True,
                                              "terminating": True})])
    piece("dual-v6", "IPv6", [("fd00:10::1", ready)])
    wait_keys(etcd_probe, rng, {f"{rng}10.250.0.1:7000": value("10.250.0.1:7000"),
                                f"{rng}[fd00:10::1]:7000": value("[fd00:10::1]:7000")},
              timeout=60, what="the ready endpoints of both families, IPv6 bracketed")
    piece("dual-v4-b", "IPv4", [("10.250.0.4", ready)])
    wait_for(lambda: f"{rng}10.250.0.4:7000" in etcd_probe.values(rng), timeout=60,
             what="a second slice's endpoint")
    discovery.delete_namespaced_endpoint_slice("dual-v6", namespace)
    discovery.delete_namespaced_endpoint_slice("dual-v4", namespace)
    wait_keys(etcd_probe, rng, {f"{rng}10.250.0.4:7000": value("10.250.0.4:7000")},
              timeout=60, what="the removed slices' entries gone")


def test_service_ref_conflicts_and_bad_input(
        k8s: Any, kube: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.patch_namespace(namespace, {"metadata": {"labels": AUTO}})
    operator = start_operator("--namespace", namespace)
    apps.create_namespaced_deployment(namespace, deployment("api", 2))
    core.create_namespaced_service(namespace, service_body("api", selector={"app": "api"}))
    wait_for(lambda: len(ready_pods(core, namespace, "api")) == 2
             and etcd_probe.values(f"{PREFIX}/api/") == expected(core, namespace, "api", "api",
                                                                 8888),
             timeout=90, what="the Service registered")

    # A KitexService naming the Service takes it over: its name and weight, the
    # Service's own registration yields.
    spec = {"serviceName": "api-ref", "serviceRef": {"name": "api", "port": "kitex"},
            "weight": 6}
    custom(k8s).create_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", kitexservice("ref", spec))
    wait_for(lambda: etcd_probe.values(f"{PREFIX}/api-ref/") == expected(
        core, namespace, "api", "api-ref", 8888, weight=6)
        and etcd_probe.values(f"{PREFIX}/api/") == {}, timeout=60,
        what="the KitexService's entries instead of the Service's")
    both = kube.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=(
        "apiVersion: kitex.cloudwego.io/v1alpha1\nkind: KitexService\nmetadata: {name: both}\n"
        "spec: {serviceRef: {name: api}, selector: {matchLabels: {app: api}}}\n"))
    assert both.returncode != 0 and "exactly one" in both.stderr, both.stderr
    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "ref")
    wait_for(lambda: len(etcd_probe.values(f"{PREFIX}/api/")) == 2
             and etcd_probe.values(f"{PREFIX}/api-ref/") == {}, timeout=60,
             what="the Service registered again once the KitexService is gone")

    # Pods annotated with the same name: explicit wins, reported on the Service,
    # never both values at once.
    apps.create_namespaced_deployment(namespace, deployment("pinned", 1, annotations={
        ANN + "service": "api", ANN + "port": "8888", ANN + "weight": "1"}))
    event = wait_for(lambda: events(core, namespace, "SourceConflict"), timeout=60,
                     what="a SourceConflict Event on the Service")[0]
    assert event.involved_object.name == "api" and "annotated pods" in event.message
    wait_keys(etcd_probe, f"{PREFIX}/api/", lambda: etcd_probe.values(f"{PREFIX}/api/") ==
              expected(core, namespace, "pinned", "api", 8888, weight=1), timeout=60,
              what="only the annotated pods' entries")
    apps.delete_namespaced_deployment("pinned", namespace)

    # Bad input: a port that does not exist, an unknown annotation, a weight of 5,000
    # digits (it crashed the Service watch), tags whose entries would be 120 KB each
    # (Go escapes `<` in 6 bytes; this path had no bound). Events on the Services,
    # the others' entries untouched, the operator running.
    bad = {"noport": {ANN + "port": "grpc"}, "typo": {ANN + "wieght": "3"},
           "huge": {ANN + "weight": "9" * 5000},
           "bloated": {ANN + "tags": json.dumps({f"k{i}": "<" * 1000 for i in range(20)})}}
    for name, notes in bad.items():
        core.create_namespaced_service(namespace, service_body(
            name, selector={"app": "api"}, annotations=notes))
    found = wait_for(lambda: (got := {e.involved_object.name: e.message for e in events(
        core, namespace, "InvalidKitexRegistration")}) and set(got) >= set(bad) and got,
        timeout=60, what="Events on every bad Service")
    assert ANN + "weight" in found["huge"]
    assert ANN + "tags" in found["bloated"] and "4096" in found["bloated"]
    wait_for(lambda: etcd_probe.values(f"{PREFIX}/api/") == expected(
        core, namespace, "api", "api", 8888), timeout=60, what="api's entries as before")
    for name in bad:
        assert etcd_probe.values(f"{PREFIX}/{name}/") == {}
    assert operator.running
