"""The local cluster behaves like a real one for what the operator watches:
scheduled, Running, Ready pods with IPs, scaling, deletion, readiness flips."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support.helpers import pod_is_ready, set_pod_ready, wait_for

pytestmark = pytest.mark.cluster


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                # kwok runs no container: the image is never pulled.
                "spec": {"containers": [{"name": "app", "image": "fake/kitex-server"}]},
            },
        },
    }


def _pods(core: Any, namespace: str, app: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def _running_ready(pods: list[Any], nodes: set[str]) -> bool:
    return all(
        p.spec.node_name in nodes
        and p.status.phase == "Running"
        and pod_is_ready(p)
        and p.status.pod_ip
        for p in pods
    )


def test_deployment_scale_and_delete(k8s: Any, kube: Any, namespace: str) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    nodes = set(kube.node_names)
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))

    pods = wait_for(
        lambda: (
            (p := _pods(core, namespace, "web")) and len(p) == 3 and _running_ready(p, nodes) and p
        ),
        timeout=60,
        what="3 Running, Ready pods with IPs on kwok nodes",
    )
    assert len({p.status.pod_ip for p in pods}) == 3

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_for(
        lambda: len(p := _pods(core, namespace, "web")) == 1 and _running_ready(p, nodes),
        timeout=60,
        what="the Deployment scaled down to 1 pod",
    )

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")
    wait_for(lambda: not _pods(core, namespace, "web"), timeout=60, what="all pods gone")


def test_pod_ready_condition_can_be_held_false(k8s: Any, namespace: str) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(namespace, _deployment("flip", 1))
    pod = wait_for(
        lambda: [p for p in _pods(core, namespace, "flip") if pod_is_ready(p)],
        timeout=60,
        what="a Ready pod",
    )[0]
    name = pod.metadata.name

    set_pod_ready(core, name, namespace, False)
    assert not pod_is_ready(core.read_namespaced_pod(name, namespace))

    # Prove kwok does not flip it back: a second pod goes through kwok's
    # stages to Ready after our patch, and ours is still not ready.
    apps.patch_namespaced_deployment_scale("flip", namespace, {"spec": {"replicas": 2}})
    wait_for(
        lambda: (
            len([p for p in _pods(core, namespace, "flip") if pod_is_ready(p)]) == 1
            and len(_pods(core, namespace, "flip")) == 2
            and all(p.status.phase == "Running" for p in _pods(core, namespace, "flip"))
        ),
        timeout=60,
        what="a second pod made Ready by kwok",
    )
    held = core.read_namespaced_pod(name, namespace)
    assert not pod_is_ready(held)
    assert held.status.phase == "Running" and held.status.pod_ip

    set_pod_ready(core, name, namespace, True)
    assert pod_is_ready(core.read_namespaced_pod(name, namespace))
