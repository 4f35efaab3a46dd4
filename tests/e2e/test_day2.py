"""Day-2 operations on the real cluster: metrics after a scripted scenario, and each CLI command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import set_pod_ready, wait_for
from tests.support.kube_objects import ANN, PREFIX, custom, deployment, ready_pods
from tests.support.operator_process import OperatorProcess


def cli(*args: str, kubeconfig: Any = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "kitex_etcd_operator", *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_follow_a_scripted_scenario(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"metrics-{namespace}"
    operator = start_operator("--namespace", namespace)
    apps.create_namespaced_deployment(namespace, deployment(
        "m", 3, annotations={ANN + "service": service, ANN + "port": "8888"}))
    pods = wait_for(lambda: len(p := ready_pods(core, namespace, "m")) == 3 and p, timeout=60,
                    what="3 ready pods")
    # All three must be written before one turns not ready, or the put never happens.
    wait_for(lambda: len(etcd_probe.values(f"{PREFIX}/{service}/")) == 3, timeout=30,
             what="3 keys")
    set_pod_ready(core, pods[0].metadata.name, namespace, False)
    wait_for(lambda: len(etcd_probe.values(f"{PREFIX}/{service}/")) == 2, timeout=30,
             what="2 keys")

    def settled() -> str | None:
        text = operator.metrics()
        ok = (metric(text, "kitex_etcd_operator_instances", service=service) == 2
              and metric(text, "kitex_etcd_operator_desired_instances", service=service) == 2)
        return text if ok else None

    text = wait_for(settled, timeout=30, what="instance gauges at 2")
    assert metric(text, "kitex_etcd_operator_pods_seen") == 3
    assert metric(text, "kitex_etcd_operator_initial_sync_done") == 1
    assert metric(text, "kitex_etcd_operator_consecutive_failures", service=service) == 0
    assert metric(text, "kitex_etcd_operator_conflicts", service=service) == 0
    assert (metric(text, "kitex_etcd_operator_etcd_operations_total", op="txn") or 0) >= 2
    assert (metric(text, "kitex_etcd_operator_entries_written_total", kind="put") or 0) >= 3
    assert (metric(text, "kitex_etcd_operator_entries_written_total", kind="delete") or 0) >= 1
    assert operator.probe("/readyz") == 200 and operator.probe("/healthz") == 200


def test_cli_resolve_diff_status_purge(
        k8s: Any, kube: Any, namespace: str, registry_etcd: Any, etcd_probe: EtcdProbe,
        start_operator: Callable[..., OperatorProcess]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"cli-{namespace}"
    endpoints = ",".join(registry_etcd.endpoints)
    cluster_id = f"cli-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment(
        "c", 2, annotations={ANN + "service": service, ANN + "port": "8888"}))
    wait_for(lambda: len(ready_pods(core, namespace, "c")) == 2, timeout=60, what="2 pods")

    # diff before the operator ran: two puts pending, nothing written.
    out = cli("diff", "--etcd-endpoints", endpoints, "--namespace", namespace,
              "--cluster-id", cluster_id, kubeconfig=kube.kubeconfig)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("  + ") == 2 and "2 change(s) pending" in out.stdout, out.stdout
    assert etcd_probe.values(f"{PREFIX}/{service}/") == {}

    operator = start_operator("--namespace", namespace, "--cluster-id", cluster_id)
    wait_for(lambda: len(etcd_probe.values(f"{PREFIX}/{service}/")) == 2, timeout=30,
             what="2 keys")
    out = cli("diff", "--etcd-endpoints", endpoints, "--namespace", namespace,
              "--cluster-id", cluster_id, kubeconfig=kube.kubeconfig)
    assert "0 change(s) pending" in out.stdout, out.stdout

    # resolve: what a Kitex client sees; JSON for machines.
    out = cli("resolve", service, "--etcd-endpoints", endpoints, "--json")
    assert out.returncode == 0, out.stderr
    instances = json.loads(out.stdout)
    ips = {p.status.pod_ip for p in ready_pods(core, namespace, "c")}
    assert {i["address"] for i in instances} == {f"{ip}:8888" for ip in ips}
    assert all(i["weight"] == 10 and i["network"] == "tcp" for i in instances)
    missing = cli("resolve", "no-such-service", "--etcd-endpoints", endpoints)
    assert missing.returncode != 0 and "no instance remains for no-such-service" in missing.stderr

    # status: the KitexServices as a table.
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices",
        {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
         "metadata": {"name": "tbl"},
         "spec": {"selector": {"matchLabels": {"app": "c"}}, "port": 9999,
                  "etcd": {"prefix": f"cli/{namespace}"}}})
    wait_for(lambda: re.search(r"tbl\s+tbl\s+2\s+Ready=True", cli(
        "status", "--namespace", namespace, kubeconfig=kube.kubeconfig).stdout),
        timeout=30, what="status table row: tbl, 2 ready, Ready=True")

    # purge: this cluster id's entries go, and only those.
    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "tbl")
    wait_for(lambda: etcd_probe.values(f"cli/{namespace}/") == {}, timeout=30,
             what="the KitexService's entries removed with it")
    operator.stop()
    foreign = f"{PREFIX}/{service}/10.9.9.9:1"
    etcd_probe.put(foreign, '{"network":"tcp","address":"10.9.9.9:1","weight":10,"tags":null}')
    dry = cli("purge", "--etcd-endpoints", endpoints, "--cluster-id", cluster_id)
    assert "would revoke" in dry.stdout and len(etcd_probe.values(f"{PREFIX}/{service}/")) == 3
    done = cli("purge", "--etcd-endpoints", endpoints, "--cluster-id", cluster_id, "--yes")
    assert done.returncode == 0 and "[1/1] revoking" in done.stdout, done.stdout + done.stderr
    assert list(etcd_probe.values(f"{PREFIX}/{service}/")) == [foreign]
