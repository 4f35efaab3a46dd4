"""The product, end to end: the operator as a process, a real cluster, a real etcd."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.helpers import sampled, set_pod_ready, wait_for
from tests.support.kube_objects import (
    ANN,
    PREFIX,
    condition,
    cr_status,
    custom,
    deployment,
    expected,
    kitexservice,
    ready_pods,
)
from tests.support.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]


def test_annotated_deployment_scales_and_rolls(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"echo-{namespace}"
    operator = start_operator("--namespace", namespace)
    annotations = {ANN + "service": service, ANN + "port": "8888"}
    apps.create_namespaced_deployment(namespace, deployment("echo", 3, annotations=annotations))
    rng = f"{PREFIX}/{service}/"

    for replicas in (3, 5, 1):
        apps.patch_namespaced_deployment_scale("echo", namespace,
                                               {"spec": {"replicas": replicas}})
        wait_for(lambda r=replicas: len(ready_pods(core, namespace, "echo")) == r
                 and etcd_probe.values(rng) == expected(core, namespace, "echo", service, 8888),
                 timeout=60, what=f"{replicas} keys with the exact value")

    # A rolling update: never zero instances in etcd while it runs.
    apps.patch_namespaced_deployment_scale("echo", namespace, {"spec": {"replicas": 3}})
    wait_for(lambda: len(etcd_probe.values(rng)) == 3, timeout=60, what="3 keys")
    old_pods = {p.metadata.name for p in ready_pods(core, namespace, "echo")}
    with sampled(lambda: len(etcd_probe.values(rng))) as counts:
        apps.patch_namespaced_deployment(namespace=namespace, name="echo", body={
            "spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}})
        # kwok may hand a freed IP to a new pod: judge the roll by pod names.
        wait_for(lambda: (names := {p.metadata.name for p in ready_pods(core, namespace, "echo")})
                 and not (names & old_pods) and len(names) == 3
                 and etcd_probe.values(rng) == expected(core, namespace, "echo", service, 8888),
                 timeout=90, what="the rolled-out pods, and only them, registered")
    assert counts and min(counts) > 0, f"the service had zero instances during the roll: {counts}"
    # Its garbage collections wait for moments when no change is on its way to etcd.
    wait_for(lambda: operator.metric("kitex_etcd_operator_gc_moments_total",
                                     moment="quiet") > 0,
             timeout=60, what="a garbage collection made at a quiet moment")


def test_kitexservice_selects_names_port_tags_weight_prefix(
        k8s: Any, kube: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    start_operator("--namespace", namespace)
    prefix = f"custom/{uuid.uuid4().hex[:6]}"
    apps.create_namespaced_deployment(namespace, deployment(
        "api", 2, labels={"tier": "backend", "zone": "z1"},
        ports=[{"name": "rpc", "containerPort": 9000}]))
    spec = {"serviceName": "api", "selector": {"matchLabels": {"tier": "backend"}},
            "port": "rpc", "weight": 7, "tagsFromLabels": ["zone"], "tags": {"env": "test"},
            "etcd": {"prefix": prefix}}
    custom(k8s).create_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", kitexservice("api", spec))
    tags = '{"env":"test","zone":"z1"}'
    wait_for(lambda: len(ready_pods(core, namespace, "api")) == 2 and etcd_probe.values(
        f"{prefix}/api/") == expected(core, namespace, "api", "api", 9000, prefix, weight=7,
                                      tags=tags), timeout=60, what="the KitexService's keys")
    wait_for(lambda: cr_status(k8s, namespace, "api").get("readyInstances") == 2
             and condition(k8s, namespace, "api", "Ready").get("status") == "True",
             timeout=30, what="status: 2 ready instances, Ready True")
    obj = custom(k8s).get_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                   "kitexservices", "api")
    assert "kitex.cloudwego.io/entries" in obj["metadata"]["finalizers"]
    table = kube.kubectl("get", "kitexservices", "-n", namespace).stdout
    assert "api" in table and "2" in table and "True" in table, table

    custom(k8s).patch_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                               "kitexservices", "api", {"spec": {"weight": 3}})
    wait_for(lambda: etcd_probe.values(f"{prefix}/api/") == expected(
        core, namespace, "api", "api", 9000, prefix, weight=3, tags=tags),
        timeout=30, what="the edited weight")

    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "api")
    wait_for(lambda: etcd_probe.values(f"{prefix}/api/") == {}, timeout=30,
             what="the KitexService's keys removed with it")
    wait_for(lambda: not custom(k8s).list_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices")["items"],
        timeout=30, what="the finalizer released")


def test_readiness_and_graceful_deletion(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"ready-{namespace}"
    start_operator("--namespace", namespace)
    apps.create_namespaced_deployment(namespace, deployment(
        "rdy", 2, annotations={ANN + "service": service, ANN + "port": "8888"}))
    rng = f"{PREFIX}/{service}/"
    pods = wait_for(lambda: len(p := ready_pods(core, namespace, "rdy")) == 2 and p,
                    timeout=60, what="2 ready pods")
    wait_for(lambda: len(etcd_probe.values(rng)) == 2, timeout=30, what="2 keys")
    victim = pods[0]
    key = f"{rng}{victim.status.pod_ip}:8888"

    set_pod_ready(core, victim.metadata.name, namespace, False)
    wait_for(lambda: key not in etcd_probe.values(rng) and len(etcd_probe.values(rng)) == 1,
             timeout=30, what="the not-ready pod's key removed, the other kept")
    set_pod_ready(core, victim.metadata.name, namespace, True)
    wait_for(lambda: key in etcd_probe.values(rng), timeout=30, what="the key back when ready")

    # A finalizer of the test's own keeps the pod terminating, so we can see
    # that the key leaves while the pod still exists.
    core.patch_namespaced_pod(victim.metadata.name, namespace,
                              {"metadata": {"finalizers": ["test.kitex/hold"]}})
    core.delete_namespaced_pod(victim.metadata.name, namespace, grace_period_seconds=30)
    wait_for(lambda: key not in etcd_probe.values(rng), timeout=30,
             what="the terminating pod's key removed")
    assert core.read_namespaced_pod(victim.metadata.name, namespace).metadata.deletion_timestamp
    core.patch_namespaced_pod(victim.metadata.name, namespace,
                              {"metadata": {"finalizers": None}})


def test_kill_and_restart_converges_without_deleting_stayers(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"restart-{namespace}"
    rng = f"{PREFIX}/{service}/"
    recorder = etcd_probe.watch(rng)
    try:
        first = start_operator("--namespace", namespace)
        apps.create_namespaced_deployment(namespace, deployment(
            "stay", 3, annotations={ANN + "service": service, ANN + "port": "8888"}))
        wait_for(lambda: len(ready_pods(core, namespace, "stay")) == 3
                 and len(etcd_probe.values(rng)) == 3, timeout=60, what="3 keys")
        stayers = set(etcd_probe.values(rng))
        first.kill()

        # While it is down: a second deployment comes, one pod of it goes.
        apps.create_namespaced_deployment(namespace, deployment(
            "late", 2, annotations={ANN + "service": service, ANN + "port": "8888"}))
        late = wait_for(lambda: len(p := ready_pods(core, namespace, "late")) == 2 and p,
                        timeout=60, what="2 late pods")
        apps.patch_namespaced_deployment_scale("late", namespace, {"spec": {"replicas": 1}})
        wait_for(lambda: len(ready_pods(core, namespace, "late")) == 1, timeout=60,
                 what="late scaled to 1")
        assert late

        start_operator("--namespace", namespace)
        want = {**expected(core, namespace, "stay", service, 8888),
                **expected(core, namespace, "late", service, 8888)}
        wait_keys(etcd_probe, rng, want, timeout=60, what="exactly the desired set")
        assert set(want) >= stayers
        assert not set(recorder.deletes()) & stayers, recorder.deletes()
    finally:
        recorder.stop()


def test_bad_input_is_reported_and_contained(
        k8s: Any, kube: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints")
    good = f"good-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment(
        "good", 2, annotations={ANN + "service": good, ANN + "port": "8888"}))
    wait_for(lambda: len(etcd_probe.values(f"{PREFIX}/{good}/")) == 2, timeout=60,
             what="the good service's keys")
    before = etcd_probe.values(f"{PREFIX}/{good}/")

    # Malformed annotations: an Event on the pod naming the annotation. A weight of
    # 5,000 digits first (int() raised a plain ValueError, which crashed the pod watch
    # at each relist): the next pod's Event shows the watch carries on.
    apps.create_namespaced_deployment(namespace, deployment(
        "huge", 1, annotations={ANN + "service": "huge", ANN + "port": "8888",
                                ANN + "weight": "9" * 5000}))
    apps.create_namespaced_deployment(namespace, deployment(
        "bad", 1, annotations={ANN + "service": "bad", ANN + "port": "eighty"}))

    def events(reason: str) -> list[Any]:
        return [e for e in core.list_namespaced_event(namespace).items if e.reason == reason]

    def invalid(annotation: str) -> list[Any]:
        return [e for e in events("InvalidKitexRegistration") if annotation in e.message]

    huge = wait_for(lambda: invalid(ANN + "weight"), timeout=60,
                    what="an Event on the pod with a 5,000-digit weight")[0]
    assert huge.involved_object.kind == "Pod" and "digits" in huge.message
    event = wait_for(lambda: invalid(ANN + "port"), timeout=60,
                     what="an Event on the badly annotated pod")[0]
    assert event.involved_object.kind == "Pod"
    assert etcd_probe.values(f"{PREFIX}/huge/") == {}

    # A service name with '/' is refused at admission by the CRD's rules.
    refused = kube.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=(
        "apiVersion: kitex.cloudwego.io/v1alpha1\nkind: KitexService\nmetadata: {name: slash}\n"
        "spec: {serviceName: a/b, port: 1, selector: {matchLabels: {app: good}}}\n"))
    assert refused.returncode != 0 and "/" in refused.stderr, refused.stderr

    # An unknown port name, and a missing Secret: conditions naming the field.
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice(
            "noport", {"selector": {"matchLabels": {"app": "good"}}, "port": "grpc"}))
    wait_for(lambda: "grpc" in condition(k8s, namespace, "noport", "InvalidPods")
             .get("message", ""), timeout=30, what="InvalidPods naming the port")
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice(
            "nosecret", {"selector": {"matchLabels": {"app": "good"}}, "port": 8888,
                         "etcd": {"prefix": "nosecret", "endpoints": ["127.0.0.1:1"],
                                  "authSecretRef": {"name": "absent"}}}))
    cond = wait_for(lambda: (c := condition(k8s, namespace, "nosecret", "Ready"))
                    and c["status"] == "False" and c, timeout=60,
                    what="Ready False for the missing Secret")
    assert "spec.etcd.authSecretRef" in cond["message"] and "absent" in cond["message"]
    failed = wait_for(lambda: events("SyncFailed"), timeout=30, what="a SyncFailed Event")
    assert any("spec.etcd.authSecretRef" in e.message for e in failed)

    assert etcd_probe.values(f"{PREFIX}/{good}/") == before
    assert operator.running
    for name in ("noport", "nosecret"):
        custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                    "kitexservices", name)


def test_annotation_mode_works_without_the_crd(
        kube: Any, k8s: Any, namespace: str, registry_etcd: Any, etcd_probe: EtcdProbe,
        tmp_path: Any, crds: None) -> None:
    """A missing CRD must not take the operator down: pods still register."""
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    # Leftovers of other tests must not hold the CRD's deletion with their finalizers.
    for item in custom(k8s).list_cluster_custom_object(
            "kitex.cloudwego.io", "v1alpha1", "kitexservices")["items"]:
        custom(k8s).patch_namespaced_custom_object(
            "kitex.cloudwego.io", "v1alpha1", item["metadata"]["namespace"], "kitexservices",
            item["metadata"]["name"], {"metadata": {"finalizers": None}})
    kube.kubectl("delete", "-k", str(ROOT / "crds"), "--wait=true", "--timeout=60s")
    operator = OperatorProcess(kube.kubeconfig, list(registry_etcd.endpoints), tmp_path,
                               "--namespace", namespace)
    try:
        operator.start()
        service = f"nocrd-{namespace}"
        apps.create_namespaced_deployment(namespace, deployment(
            "n", 1, annotations={ANN + "service": service, ANN + "port": "8888"}))
        wait_for(lambda: len(ready_pods(core, namespace, "n")) == 1
                 and len(etcd_probe.values(f"{PREFIX}/{service}/")) == 1, timeout=60,
                 what="the annotated pod registered without the CRD")
        assert operator.running
        assert "KitexService CRD is not installed" in operator.log()
    finally:
        operator.stop()
        kube.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/kitexservices.kitex.cloudwego.io")
