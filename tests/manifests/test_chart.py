"""The Helm chart: lint, no drift from manifests/ and crds/, every `run` flag
reachable from values, and install / upgrade / uninstall on the local cluster."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from kubernetes import client

from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, ready_pods

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kitex-etcd-operator"
NS = "kitex-etcd-operator"
# Labels and annotations differ by design (Helm adds its own); selectors do not.
# Namespace: Helm creates the release namespace (--create-namespace), so the
# chart has no Namespace object.
NOT_IN_CHART = {"Namespace"}


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def normalize(obj: Any) -> Any:
    """Drop labels and annotations of every metadata; env as a set (sorted)."""
    obj = copy.deepcopy(obj)

    def walk(node: Any, parent: str = "") -> None:
        if isinstance(node, dict):
            if parent == "metadata":
                node.pop("labels", None)
                node.pop("annotations", None)
            for k, v in node.items():
                walk(v, k)
            if isinstance(node.get("env"), list):
                node["env"] = sorted(node["env"], key=lambda e: e["name"])
            if "imagePullPolicy" in node:  # the chart sets it, the manifests default it
                del node["imagePullPolicy"]
        elif isinstance(node, list):
            for item in node:
                walk(item, parent)

    walk(obj)
    return obj


def render(helm: Path, *args: str, namespace: str = NS, name: str = "keo") -> list[dict[str, Any]]:
    out = subprocess.run([str(helm), "template", name, str(CHART), "--namespace", namespace,
                          *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return docs(out.stdout)


def kustomize(tools: Any, path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(tools.kubectl), "kustomize", str(path)], capture_output=True,
                         text=True, check=True, timeout=60)
    return docs(out.stdout)


def crd_files() -> list[Path]:
    return sorted(p for p in (ROOT / "crds").iterdir() if p.suffix in (".yaml", ".yml", ".json"))


# ---------------------------------------------------------------- offline checks


def test_helm_lint(helm: Path) -> None:
    out = subprocess.run([str(helm), "lint", "--strict", str(CHART)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_crd_file_is_in_the_kustomization_and_the_chart(helm: Path) -> None:
    """crds/ is the single source: each file in it is listed in crds/Kustomization
    (so manifests/ installs it) and installed by the chart byte for byte."""
    files = crd_files()
    assert files
    listed = yaml.safe_load((ROOT / "crds" / "Kustomization").read_text())["resources"]
    assert sorted(listed) == [p.name for p in files], "crds/Kustomization must list every CRD"
    chart_crds = CHART / "crds"
    assert chart_crds.resolve() == (ROOT / "crds").resolve() or all(
        (chart_crds / p.name).read_bytes() == p.read_bytes() for p in files)
    rendered = [d for d in render(helm, "--include-crds")
                if d["kind"] == "CustomResourceDefinition"]
    expected = [d for p in files for d in docs(p.read_text())]
    assert sorted(rendered, key=key) == sorted(expected, key=key)


def test_chart_defaults_render_the_manifests(helm: Path, tools: Any) -> None:
    manifests = {key(o): o for o in kustomize(tools, ROOT / "manifests")
                 if o["kind"] not in NOT_IN_CHART | {"CustomResourceDefinition"}}
    chart = {key(o): o for o in render(helm)}
    assert sorted(chart) == sorted(manifests)
    for k, obj in manifests.items():
        assert normalize(chart[k]) == normalize(obj), f"{k} differs between chart and manifests"


def test_chart_monitoring_and_networkpolicy_render_the_manifests(helm: Path) -> None:
    example = docs((ROOT / "manifests/examples/networkpolicy.yaml").read_text())[0]
    values = {"metrics": {"serviceMonitor": {"enabled": True},
                          "prometheusRule": {"enabled": True}},
              "networkPolicy": {"enabled": True,
                                "from": example["spec"]["ingress"][0]["from"]}}
    args = [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    chart = {key(o): o for o in render(helm, *args)}
    expected = [d for p in sorted((ROOT / "manifests/monitoring").glob("*.yaml"))
                for d in docs(p.read_text())] + [example]
    for obj in expected:
        assert key(obj) in chart, key(obj)
        assert normalize(chart[key(obj)]) == normalize(obj), key(obj)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _sample(option: click.Option) -> Any:
    if option.is_flag:
        return True
    if option.multiple:
        return ["a", "b"]
    if isinstance(option.type, click.Choice):
        return option.type.choices[-1]
    if isinstance(option.type, click.IntRange):
        low = option.type.min if option.type.min is not None else 0
        return max(int(low), 77)
    if option.type is click.INT:
        return 77
    if option.type.name == "integer":
        return 77
    if option.type.name == "duration":
        return "7s"
    return f"x/{str(option.name).replace('_', '-')}"


def test_every_run_flag_is_reachable_from_values(helm: Path) -> None:
    """Generic over `run`'s options: a new flag without a value fails here."""
    from kitex_etcd_operator.runner import run

    options = [p for p in run.params if isinstance(p, click.Option) and p.name != "help"]
    config = {_camel(str(o.name)): _sample(o) for o in options}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["config"]) == set(config), "values.config must name every run flag"
    (deploy,) = [o for o in render(helm, "--set-json", f"config={json.dumps(config)}")
                 if o["kind"] == "Deployment"]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    for option in options:
        value = config[_camel(str(option.name))]
        flag = option.opts[0]
        text = ",".join(value) if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        as_arg = (flag in container["args"] if option.is_flag
                  else f"{flag}={text}" in container["args"])
        envvars = [option.envvar] if isinstance(option.envvar, str) else option.envvar or []
        as_env = any(env.get(var) == text for var in envvars)
        assert as_arg or as_env, f"{flag}: neither --{flag} nor {option.envvar}={text}"
    # And the operator accepts what the chart renders (click parses the same env).
    assert container["ports"][0]["containerPort"] == 77


def test_one_version_everywhere() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    images = yaml.safe_load((ROOT / "manifests/kustomization.yaml").read_text())["images"]
    assert [i["newTag"] for i in images] == [version]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == images[0]["name"]
    assert re.search(rf"^ARG VERSION={re.escape(version)}$",
                     (ROOT / "Dockerfile").read_text(), re.M)


# ---------------------------------------------------------------- on the cluster


def test_chart_applies_with_server_dry_run(helm: Path, kube: Any, crds: None,
                                           namespace: str) -> None:
    rendered = subprocess.run(
        [str(helm), "template", "dry", str(CHART), "--namespace", namespace, "--set",
         f"nameOverride=dry-{namespace}", "--set", "podDisruptionBudget.enabled=true"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    out = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert out.returncode == 0, out.stderr
    assert f"deployment.apps/dry-{namespace} created (server dry run)" in out.stdout




def test_helm_install_upgrade_uninstall(
        helm: Path, kube: Any, k8s: Any, crds: None, namespace: str, tmp_path: Path,
        etcd_probe: EtcdProbe, start_operator: Callable[..., Any]) -> None:
    name = f"helm-{namespace}"

    def run_helm(*args: str) -> str:
        out = subprocess.run([str(helm), "--kubeconfig", str(kube.kubeconfig), *args,
                              "--namespace", namespace], capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    run_helm("install", "keo", str(CHART), "--set", f"nameOverride={name}",
             "--set-json", f"config={json.dumps({'etcdEndpoints': 'etcd.example:2379'})}")
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    rbac = client.RbacAuthorizationV1Api(k8s)
    policy = client.PolicyV1Api(k8s)
    deploy = apps.read_namespaced_deployment(name, namespace)
    assert deploy.spec.replicas == 2
    assert deploy.spec.template.spec.service_account_name == name
    assert deploy.spec.template.spec.containers[0].args == ["run", "--leader-elect"]
    assert policy.read_namespaced_pod_disruption_budget(name, namespace).spec.max_unavailable == 1
    assert rbac.read_cluster_role(name).rules
    assert rbac.read_cluster_role_binding(name).subjects[0].namespace == namespace

    # The Deployment's containers cannot run on kwok nodes: run the operator as a
    # process with the rendered ServiceAccount's token, as the Deployment would.
    token = kube.token_kubeconfig(namespace, name, tmp_path / "sa.kubeconfig")
    start_operator("--leader-elect", "--leader-election-namespace", namespace,
                   "--leader-election-id", f"helm-{namespace}", kubeconfig=token)
    service = f"helm-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment(
        "h", 2, annotations={ANN + "service": service, ANN + "port": "8888"}))
    wait_for(lambda: len(ready_pods(core, namespace, "h")) == 2
             and len(etcd_probe.values(f"{PREFIX}/{service}/")) == 2, timeout=60,
             what="2 entries written with the chart's ServiceAccount")

    run_helm("upgrade", "keo", str(CHART), "--reuse-values", "--set", "replicaCount=3",
             "--set", "config.logLevel=debug")
    deploy = apps.read_namespaced_deployment(name, namespace)
    env = {e.name: e.value for e in deploy.spec.template.spec.containers[0].env}
    assert deploy.spec.replicas == 3 and env["KITEX_ETCD_LOG_LEVEL"] == "debug"
    assert env["KITEX_ETCD_ENDPOINTS"] == "etcd.example:2379"

    run_helm("uninstall", "keo", "--wait", "--timeout", "60s")

    def gone() -> bool:
        try:
            rbac.read_cluster_role(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        else:
            return False
        return not apps.list_namespaced_deployment(
            namespace, label_selector=f"app.kubernetes.io/name={name}").items
    wait_for(gone, timeout=60, what="the release's objects deleted")
    crd = client.ApiextensionsV1Api(k8s).read_custom_resource_definition(
        "kitexservices.kitex.cloudwego.io")
    assert crd.metadata.deletion_timestamp is None, "uninstall must keep the CRDs"


def test_the_readme_helm_install_renders(helm: Path) -> None:
    """The README's `helm install` command, as written, renders (as `helm template`)."""
    import shlex

    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("helm install ") and
                "charts/kitex-etcd-operator" in ln)
    argv = shlex.split(line)
    assert argv[:2] == ["helm", "install"]
    out = subprocess.run([str(helm), "template", *argv[2:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (deploy,) = [d for d in docs(out.stdout) if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    assert "," in env["KITEX_ETCD_ENDPOINTS"]
