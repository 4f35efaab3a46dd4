"""``make demo``: the whole story on a laptop, in one command.

A local cluster and etcd, the CRD, the operator as its own process, an
annotated Deployment; then the Deployment scales up and down while the
instances are printed exactly as a Kitex client's etcd resolver sees them.
Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
from kitex_etcd_operator.model import DEFAULT_PREFIX, service_range
from kitex_etcd_operator.resolve import NoInstance, go_resolve

from .build import ensure_tools
from .cluster import DevCluster
from .processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]  # devtools/kitex_devcluster/demo.py
SERVICE = "demo-echo"
SCALES = (3, 5, 2, 4, 1)
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
        "template": {
            "metadata": {"labels": {"app": "echo"},
                         "annotations": {"kitex.cloudwego.io/service": SERVICE,
                                         "kitex.cloudwego.io/port": "8888",
                                         "kitex.cloudwego.io/tags": "env=demo"}},
            "spec": {"containers": [{"name": "echo", "image": "example/kitex-echo",
                                     "ports": [{"name": "rpc", "containerPort": 8888}]}]}}}}


@contextlib.contextmanager
def operator_process(cluster: DevCluster, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as users run it, its log in the work directory."""
    port = free_port()
    log_path = workdir / "operator.log"
    argv = [sys.executable, "-m", "kitex_etcd_operator", "run",
            "--kubeconfig", str(cluster.kube.kubeconfig),
            "--etcd-endpoints", ",".join(cluster.registry_endpoints),
            "--health-port", str(port), "--observe-delay", "5s"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise click.ClickException(f"the operator exited; see {log_path}")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
        return False

    try:
        wait_until(ready, timeout=60, what="the operator ready")
        click.echo(f"operator ready (log: {log_path}, metrics: http://127.0.0.1:{port}/metrics)")
        yield proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        if proc.poll() is None:
            proc.kill()


async def resolved(endpoints: list[str]) -> list[tuple[str, int, Any]]:
    client = EtcdClient(EtcdConfig(tuple(endpoints)))
    try:
        kvs, _ = await client.get_prefix(service_range(DEFAULT_PREFIX, SERVICE))
    finally:
        await client.close()
    try:
        result = go_resolve(SERVICE, [(kv.key, kv.value, kv.lease) for kv in kvs])
    except NoInstance:
        return []
    return [(i.address, i.weight, i.tag_map()) for i in result.instances]


def show(endpoints: list[str], ready_pods: int) -> list[tuple[str, int, Any]]:
    instances = asyncio.run(resolved(endpoints))
    stamp = time.strftime("%H:%M:%S")
    click.echo(f"[{stamp}] {ready_pods} ready pod(s) -> a Kitex client resolves "
               f"{len(instances)} instance(s) of {SERVICE!r}:")
    for address, weight, tags in instances:
        click.echo(f"            {address:<22} weight {weight}  tags {tags}")
    return instances


def run_demo(cycles: int | None, pause: float = 3.0) -> None:
    """Bring everything up, scale through ``SCALES`` ``cycles`` times (forever if None)."""
    from kubernetes import client

    tools = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="kitex-demo-") as tmp, \
            DevCluster.start(tools) as cluster:
        workdir = Path(tmp)
        click.echo(f"cluster up; export KUBECONFIG={cluster.kube.kubeconfig}")
        cluster.kube.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        cluster.kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             "crd/kitexservices.kitex.cloudwego.io")
        with operator_process(cluster, workdir), cluster.kube.api_client() as api:
            apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
            apps.create_namespaced_deployment("default", DEPLOYMENT)  # type: ignore[arg-type]
            done = 0
            while cycles is None or done < cycles:
                for replicas in SCALES:
                    click.echo(f"\n--- scaling deployment/echo to {replicas}")
                    apps.patch_namespaced_deployment_scale("echo", "default",
                                                           {"spec": {"replicas": replicas}})
                    wait_until(lambda r=replicas: _settled(core, cluster, r),  # type: ignore[misc]
                               timeout=60, what=f"{replicas} instances registered")
                    show(cluster.registry_endpoints, replicas)
                    time.sleep(pause)  # a pace a person can follow
                done += 1
        click.echo("\ndemo finished; stopping the operator and the cluster")


def _settled(core: Any, cluster: DevCluster, replicas: int) -> bool:
    pods = core.list_namespaced_pod("default", label_selector="app=echo").items
    ready = [p for p in pods if p.status.pod_ip and not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return len(ready) == replicas and len(asyncio.run(resolved(cluster.registry_endpoints))
                                          ) == replicas
