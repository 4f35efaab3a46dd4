"""Credentials from Secrets: read when needed, and a rotation is picked up without a restart."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from helpers import wait_for
from kitex_devcluster.etcd import EtcdCluster
from kube_objects import custom, deployment, kitexservice, ready_pods


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


def test_a_rotated_password_is_picked_up_without_restart(
        k8s: Any, namespace: str, auth_etcd: EtcdCluster,
        start_operator: Callable[..., Any]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "etcd-auth"}, "type": "kitex.cloudwego.io/etcd-credentials",
        "stringData": {"username": "kitex", "password": "first-pw"}})
    # Debug level and JSON: the most a user could turn on must still hide secrets.
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints",
                              "--observe-delay", "2s",
                              "--retry-delay", "1s", "--log-level", "debug",
                              "--log-format", "json")
    apps.create_namespaced_deployment(namespace, deployment("s", 1, labels={"tier": "s"}))
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice("sec", {
            "selector": {"matchLabels": {"tier": "s"}}, "port": 8888,
            "etcd": {"endpoints": auth_etcd.endpoints, "authSecretRef": {"name": "etcd-auth"}},
            "retry": {"observeDelay": "2s", "retryDelay": "1s"}}))
    wait_for(lambda: len(keys(auth_etcd, "kitex/registry-etcd/sec/")) == 1, timeout=60,
             what="the entry written with the Secret's credentials")

    # Rotate: etcd first, then the Secret, as an operator team would.
    subprocess.run([str(auth_etcd.bin / "etcdctl"), f"--endpoints={auth_etcd.endpoints[0]}",
                    "--user=root:root-pw", "user", "passwd", "kitex", "--interactive=false"],
                   input="second-pw\n", text=True, check=True, capture_output=True)
    core.patch_namespaced_secret("etcd-auth", namespace,
                                 {"stringData": {"password": "second-pw"}})
    apps.patch_namespaced_deployment_scale("s", namespace, {"spec": {"replicas": 2}})
    wait_for(lambda: len(ready_pods(core, namespace, "s")) == 2
             and len(keys(auth_etcd, "kitex/registry-etcd/sec/")) == 2, timeout=60,
             what="a new entry written with the rotated password")
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
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "etcd-auth"}, "type": "kitex.cloudwego.io/etcd-credentials",
        "stringData": {"username": "kitex", "password": "first-pw"}})
    # Long observeDelay and retryDelay: only the pod change below makes a write.
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints")
    apps.create_namespaced_deployment(namespace, deployment("r", 1, labels={"tier": "r"}))
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice("rot", {
            "selector": {"matchLabels": {"tier": "r"}}, "port": 8888,
            "etcd": {"endpoints": auth_etcd.endpoints, "authSecretRef": {"name": "etcd-auth"}},
            "retry": {"observeDelay": "1h", "retryDelay": "1h"}}))
    wait_for(lambda: len(keys(auth_etcd, "kitex/registry-etcd/rot/")) == 1, timeout=60,
             what="the entry written with the Secret's credentials")
    subprocess.run([str(auth_etcd.bin / "etcdctl"), f"--endpoints={auth_etcd.endpoints[0]}",
                    "--user=root:root-pw", "user", "passwd", "kitex", "--interactive=false"],
                   input="second-pw\n", text=True, check=True, capture_output=True)
    core.patch_namespaced_secret("etcd-auth", namespace,
                                 {"stringData": {"password": "second-pw"}})
    apps.patch_namespaced_deployment_scale("r", namespace, {"spec": {"replicas": 2}})
    # retryDelay is an hour: the second entry can only come from the retry at once.
    wait_for(lambda: len(ready_pods(core, namespace, "r")) == 2
             and len(keys(auth_etcd, "kitex/registry-etcd/rot/")) == 2, timeout=60,
             what="the new entry written with the rotated password")
    assert "changed; reconnecting" in operator.log()
    failed = [e for e in core.list_namespaced_event(namespace).items
              if e.reason == "SyncFailed" and e.involved_object.name == "rot"]
    assert failed == [], [e.message for e in failed]
