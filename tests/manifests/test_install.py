"""What users apply: the CRD, the manifests and the examples, and the RBAC's exact reach."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import ANN, PREFIX, custom, deployment, kitexservice, ready_pods

ROOT = Path(__file__).resolve().parents[2]
SA = "system:serviceaccount:kitex-etcd-operator:kitex-etcd-operator"


@pytest.fixture(scope="module")
def installed(kube: Any) -> Any:
    out = kube.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests"), check=False)
    assert out.returncode == 0, out.stderr
    return kube


def can_i(kube: Any, verb: str, resource: str, namespace: str = "default") -> bool:
    out = kube.kubectl("auth", "can-i", verb, resource, "--as", SA, "-n", namespace, check=False)
    return out.stdout.strip() == "yes"


def test_examples_validate_against_the_crd(installed: Any) -> None:
    out = installed.kubectl("apply", "--server-side", "--dry-run=server", "-k",
                            str(ROOT / "manifests" / "examples"), check=False)
    assert out.returncode == 0, out.stderr
    assert "kitexservice.kitex.cloudwego.io/payments serverside-applied" in out.stdout


def test_rbac_grants_only_what_is_needed(installed: Any) -> None:
    kube = installed
    for verb, resource in [("list", "pods"), ("watch", "pods"), ("get", "pods"),
                           ("list", "services"), ("watch", "services"),
                           ("list", "endpointslices.discovery.k8s.io"),
                           ("watch", "endpointslices.discovery.k8s.io"),
                           ("list", "kitexservices.kitex.cloudwego.io"),
                           ("patch", "kitexservices.kitex.cloudwego.io"),
                           ("patch", "kitexservices.kitex.cloudwego.io/status"),
                           ("create", "events")]:
        assert can_i(kube, verb, resource), f"cannot {verb} {resource}"
    for verb, resource in [("create", "pods"), ("patch", "pods"), ("delete", "pods"),
                           ("update", "pods/status"), ("patch", "services"),
                           ("create", "endpointslices.discovery.k8s.io"),
                           ("delete", "kitexservices.kitex.cloudwego.io"),
                           ("get", "secrets"), ("list", "secrets"), ("create", "leases")]:
        assert not can_i(kube, verb, resource), f"may {verb} {resource}"
    assert not can_i(kube, "list", "secrets", "kitex-etcd-operator")
    assert can_i(kube, "create", "leases.coordination.k8s.io", "kitex-etcd-operator")
    assert can_i(kube, "get", "secrets/kitex-etcd-operator-etcd", "kitex-etcd-operator")
    assert not can_i(kube, "get", "secrets/other", "kitex-etcd-operator")


def test_the_operator_works_with_only_its_service_account(
        installed: Any, k8s: Any, namespace: str, etcd_probe: EtcdProbe, tmp_path: Path,
        start_operator: Callable[..., Any]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    token = installed.token_kubeconfig("kitex-etcd-operator", "kitex-etcd-operator",
                                       tmp_path / "sa.kubeconfig")
    start_operator("--leader-elect", "--leader-election-namespace", "kitex-etcd-operator",
                   "--leader-election-id", f"rbac-{namespace}", kubeconfig=token)
    service = f"rbac-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment(
        "r", 2, annotations={ANN + "service": service, ANN + "port": "8888"}))
    wait_for(lambda: len(ready_pods(core, namespace, "r")) == 2
             and len(etcd_probe.values(f"{PREFIX}/{service}/")) == 2, timeout=60,
             what="2 entries written with the ServiceAccount's rights")
    custom(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", kitexservice(
            "rb", {"selector": {"matchLabels": {"app": "r"}}, "port": 9000,
                   "etcd": {"prefix": f"rbac/{namespace}"}}))

    def synced() -> bool:
        obj = custom(k8s).get_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1",
                                                       namespace, "kitexservices", "rb")
        conditions = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
        return conditions.get("Ready") == "True" and "kitex.cloudwego.io/entries" in (
            obj["metadata"].get("finalizers") or [])

    wait_for(synced, timeout=60, what="status written and finalizer added")
    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "rb")
    wait_for(lambda: not custom(k8s).list_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices")["items"]
        and etcd_probe.values(f"rbac/{namespace}/") == {}, timeout=60,
        what="entries removed, then the finalizer released")


def test_the_wheel_installs_and_runs(tmp_path: Path) -> None:
    """What the image runs: the wheel in a fresh venv, its entry point."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("kitex_etcd_operator-*.whl"))
    venv.create(tmp_path / "venv", with_pip=True)
    pip = tmp_path / "venv" / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(wheel)], check=True, timeout=600)
    exe = tmp_path / "venv" / "bin" / "kitex-etcd-operator"
    top = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "resolve", "diff", "status", "purge"):
        assert re.search(rf"^\s+{command}\s", top.stdout, re.M), top.stdout
    assert not re.search(r"^\s+dev\s", top.stdout, re.M), "no dev command in the shipped CLI"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        entry_points = whl.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert not [n for n in names if "devcluster" in n or n.startswith(("tests/", "benchmarks/"))]
    assert b"kubectl-kitex = kitex_etcd_operator.cli:kubectl_kitex" in entry_points
    run = subprocess.run([str(exe), "run", "--help"], capture_output=True, text=True, check=True)
    assert "--etcd-endpoints" in run.stdout and "--leader-elect" in run.stdout


def test_dockerfile_rules() -> None:
    """The rules the Dockerfile must follow (tests/image/ builds and runs it)."""
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1)), "base pinned by digest"
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2 and all(s == "${BASE_IMAGE}" for s in stages), "multi-stage"
    assert "--require-hashes" in text and "requirements/image.lock" in text
    final = text[text.rindex("\nFROM"):]
    assert re.search(r"^USER\s+[1-9]\d*", final, re.M), "a numeric non-root USER"
    assert not re.search(r"apt-get install|gcc|build-essential|^RUN", final, re.M), \
        "nothing is installed in the final stage"
    assert re.search(r'^ENTRYPOINT \["kitex-etcd-operator"\]', final, re.M)
