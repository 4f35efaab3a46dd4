"""The release pipeline and the first commands a new user runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.support.kube_objects import custom, kitexservice

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def test_workflows_pass_actionlint(actionlint: Path) -> None:
    # shellcheck and pyflakes integrations off: the same result on every machine.
    out = subprocess.run([str(actionlint), "-no-color", "-oneline", "-shellcheck=",
                          "-pyflakes="], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {p.name for p in WORKFLOWS.glob("*.yaml")} >= {"ci.yaml", "release.yaml"}


def test_the_release_builds_signs_and_publishes_what_the_manifests_name() -> None:
    flow = yaml.safe_load((WORKFLOWS / "release.yaml").read_text())
    images = yaml.safe_load((ROOT / "manifests/kustomization.yaml").read_text())["images"]
    assert flow["env"]["IMAGE"] == images[0]["name"]
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    build = next(s for s in steps if str(s.get("uses", "")).startswith("docker/build-push"))
    assert set(build["with"]["platforms"].split(",")) >= {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True and build["with"]["sbom"] is True
    assert build["with"]["provenance"]
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    assert "cosign sign --yes" in runs and "helm push" in runs
    assert "make test" in runs
    assert flow["jobs"]["image"]["permissions"]["id-token"] == "write"  # keyless signing


def test_kubectl_kitex_plugin(tools: Any) -> None:
    """`kubectl kitex`: kubectl finds kubectl-kitex on PATH (the venv's bin)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run([str(tools.kubectl), "kitex", "--help"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ("resolve", "diff", "status", "purge"):
        assert command in out.stdout, out.stdout
    assert " run " not in out.stdout


def test_run_without_a_kubeconfig_says_what_to_pass(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    exe = [sys.executable, "-m", "kitex_etcd_operator"]
    out = subprocess.run([*exe, "run", "--health-port", "0"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "--kubeconfig" in lines[0] and "KUBECONFIG" in lines[0], \
        out.stderr
    status = subprocess.run([*exe, "status"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert status.returncode == 1 and "Traceback" not in status.stderr
    assert "--kubeconfig" in status.stderr
    help_text = subprocess.run([*exe, "run", "--help"], capture_output=True, text=True,
                               check=True, timeout=60).stdout
    assert "--kubeconfig" in help_text and "KUBECONFIG" in help_text


def test_kubectl_apply_f_crds(kube: Any) -> None:
    """The first thing a user may try: every file in crds/ is a resource."""
    out = kube.kubectl("apply", "--dry-run=server", "-f", str(ROOT / "crds"), check=False)
    assert out.returncode == 0, out.stderr


def test_cel_refusals_name_the_field_and_the_value(k8s: Any, crds: None,
                                                   namespace: str) -> None:
    cases = [({"serviceName": "a/b"}, "spec.serviceName", "'a/b'"),
             ({"etcd": {"prefix": "/kitex"}}, "spec.etcd.prefix", "'/kitex'"),
             ({"retry": {"observeDelay": "0s"}}, "spec.retry.observeDelay", "'0s'"),
             ({"port": "Bad_Port"}, "spec.port", "'Bad_Port'")]
    for overrides, field, value in cases:
        spec = {"selector": {"matchLabels": {"app": "x"}}, "port": 8888, **overrides}
        try:
            custom(k8s).create_namespaced_custom_object(
                "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices",
                kitexservice("cel", spec), dry_run="All")
        except client.ApiException as exc:
            assert exc.status == 422, exc
            assert field in str(exc.body) and value in str(exc.body), exc.body
        else:
            raise AssertionError(f"admitted: {overrides}")
