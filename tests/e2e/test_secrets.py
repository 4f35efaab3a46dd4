"""Credentials from Secrets: read when needed, and a rotation is picked up without a restart."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from kitex_devcluster.etcd import EtcdCluster
from tests.support.helpers import wait_for
from tests.support.kube_objects import custom, deployment, kitexservice, ready_pods


@pytest.fixture
def auth_etcd(private_etcd: Callable[..., EtcdCluster]) -> EtcdCluster:
    # Tokens live 2 s: after a rotation the old password cannot log in again for long.
    cluster = private_etcd("auth-etcd", extra_args=[
        "--auth-token=simple", "--auth-token-ttl=2"])
    cluster.enable_auth("root-pw")
    cluster.add_user("kitex", "first-pw", prefix="kitex/")
    cluster.etcdctl("role", "grant-permission", "kitex-role", "--prefix=true", "readwrite",
                    "kitex-etcd-operator/")
    return cluster


def keys(etcd: EtcdCluster, prefix: str) -> list[str]:
    out = etcd.etcdctl("get", "--prefix", prefix, "--keys-only")
    return [line for line in out.splitlines() if line]


def registered_service(k8s: Any, namespace: str, etcd: EtcdCluster, name: str,
                       retry: dict[str, str]) -> None:
    """A Secret with the first password, a Deployment of one pod and its KitexService on
    ``etcd`` with that Secret; returns once the first entry is written."""
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {
        "metadata": {"name": "etcd-auth"}, "type": "kitex.cloudwego.io/etcd-credentials",
        "stringData": {"username": "kitex", "password": "first-pw"}})
    client.AppsV1Api(k8s).create_namespaced_deployment(
        namespace, deployment(name, 1, labels={"tier": name}))
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice(name, {
            "selector": {"matchLabels": {"tier": name}}, "port": 8888,
            "etcd": {"endpoints": etcd.endpoints, "authSecretRef": {"name": "etcd-auth"}},
            "retry": retry}))
    wait_for(lambda: len(keys(etcd, f"kitex/registry-etcd/{name}/")) == 1, timeout=60,
             what="the entry written with the Secret's credentials")


def rotate_and_scale(k8s: Any, namespace: str, etcd: EtcdCluster, name: str) -> None:
    """Rotate as an operator team would (etcd first, then the Secret), then add a pod:
    returns once its entry is written with the new password."""
    core = client.CoreV1Api(k8s)
    subprocess.run([str(etcd.bin / "etcdctl"), f"--endpoints={etcd.endpoints[0]}",
                    "--user=root:root-pw", "user", "passwd", "kitex", "--interactive=false"],
                   input="second-pw\n", text=True, check=True, capture_output=True)
    core.patch_namespaced_secret("etcd-auth", namespace,
                                 {"stringData": {"password": "second-pw"}})
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale(name, namespace,
                                                            {"spec": {"replicas": 2}})
    wait_for(lambda: len(ready_pods(core, namespace, name)) == 2
             and len(keys(etcd, f"kitex/registry-etcd/{name}/")) == 2, timeout=60,
             what="a new entry written with the rotated password")


def test_a_rotated_password_is_picked_up_without_restart(
        k8s: Any, namespace: str, auth_etcd: EtcdCluster,
        start_operator: Callable[..., Any]) -> None:
    # Debug level and JSON: the most a user could turn on must still hide secrets.
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints",
                              "--observe-delay", "2s",
                              "--retry-delay", "1s", "--log-level", "debug",
                              "--log-format", "json")
    registered_service(k8s, namespace, auth_etcd, "sec",
                       {"observeDelay": "2s", "retryDelay": "1s"})
    rotate_and_scale(k8s, namespace, auth_etcd, "sec")
    assert operator.running
    assert "changed; reconnecting" in operator.log()
    log = operator.log()
    for password in ("first-pw", "second-pw", "root-pw"):
        for form in (password, base64.b64encode(password.encode()).decode()):
            assert form not in log, f"a password ({form}) in the operator's log"
    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "sec")
    wait_for(lambda: not keys(auth_etcd, "kitex/registry-etcd/sec/"), timeout=30,
             what="the entries removed with the KitexService")


def test_a_rotated_secret_is_tried_at_once_not_after_a_failure(
        k8s: Any, namespace: str, auth_etcd: EtcdCluster,
        start_operator: Callable[..., Any]) -> None:
    """The first write refused with the old password reads the Secret again and retries at
    once: no SyncFailed for a rotation done right (before: one failure, then the fix a
    retryDelay later)."""
    # Long observeDelay and retryDelay: only the pod change below makes a write.
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints")
    registered_service(k8s, namespace, auth_etcd, "rot",
                       {"observeDelay": "1h", "retryDelay": "1h"})
    # retryDelay is an hour: the second entry can only come from the retry at once.
    rotate_and_scale(k8s, namespace, auth_etcd, "rot")
    core = client.CoreV1Api(k8s)
    assert "changed; reconnecting" in operator.log()
    failed = [e for e in core.list_namespaced_event(namespace).items
              if e.reason == "SyncFailed" and e.involved_object.name == "rot"]
    assert failed == [], [e.message for e in failed]
