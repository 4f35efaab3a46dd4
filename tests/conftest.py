"""Shared pytest fixtures.

Sections: markers, the local cluster (session-scoped: started once, torn
down at session end, also on failure or Ctrl-C), Kubernetes API helpers.
Tests that use the cluster are marked ``cluster`` automatically, so
``pytest -m 'not cluster'`` runs only the fast ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded 2-CPU machine a slow example is not a
# bug, and a flaky deadline failure would hide the real ones. CI runs the same
# examples every time (derandomize); set HYPOTHESIS_PROFILE=explore to search
# anew.
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if TYPE_CHECKING:  # imported lazily below: unit tests must not need the cluster code
    from kitex_devcluster.build import Tools
    from kitex_devcluster.etcd import EtcdCluster
    from kitex_devcluster.kube import KubeCluster

CLUSTER_FIXTURES = {"tools", "kube", "registry_etcd", "dev_cluster", "k8s", "namespace"}

# ---------------------------------------------------------------- markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the Go tools before any test runs when a cluster test is selected:
    the first build takes ~15 min, which must not count against a test's timeout."""
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker("cluster") for item in session.items):
        from kitex_devcluster.build import ensure_tools

        ensure_tools()
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if used & {"helm", "actionlint"}:
        from kitex_devcluster.build import ensure_release_tools

        ensure_release_tools()


# ---------------------------------------------------------------- the local cluster


@pytest.fixture(scope="session")
def tools() -> Tools:
    """The Go-built binaries (built on first use: ~15 min, then cached)."""
    from kitex_devcluster.build import ensure_tools

    return ensure_tools()


@pytest.fixture(scope="session")
def helm() -> Path:
    """``helm`` built from its Go module (cached like the cluster's tools)."""
    from kitex_devcluster.build import ensure_helm

    return ensure_helm()


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """``actionlint`` built from its Go module (checks .github/workflows)."""
    from kitex_devcluster.build import ensure_actionlint

    return ensure_actionlint()


@pytest.fixture(scope="session")
def kube(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running KubeCluster: ``.kubeconfig``, ``.server``, ``.api_client()``,
    ``.kubectl(...)``, ``.token_kubeconfig(ns, sa, path)``; two kwok nodes."""
    from kitex_devcluster.kube import KubeCluster

    cluster = KubeCluster.start(tools, workdir=tmp_path_factory.mktemp("kube"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def registry_etcd(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A single-member etcd for the Kitex registry (``.endpoints``), separate
    from the apiserver's so a test may stop it."""
    from kitex_devcluster.etcd import EtcdCluster

    etcd = EtcdCluster.start(tmp_path_factory.mktemp("registry-etcd"), members=1)
    try:
        yield etcd
    finally:
        etcd.stop()


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[Callable[..., EtcdCluster]]:
    """``private_etcd(name="etcd", **kw)``: start an etcd cluster of the test's own
    (``EtcdCluster.start`` keywords: ``members``, ``tls``, ``client_cert_auth``,
    ``extra_args``); every one is stopped at teardown, whatever the test did to it.
    Tests that stop members, fill etcd up or change its auth use this, never the
    shared ``registry_etcd``."""
    from kitex_devcluster.etcd import EtcdCluster

    started: list[EtcdCluster] = []

    def start(name: str = "etcd", **kw: Any) -> EtcdCluster:
        cluster = EtcdCluster.start(tmp_path / name, **kw)
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.stop()


# ---------------------------------------------------------------- Kubernetes API


@pytest.fixture(scope="session")
def k8s(kube: KubeCluster) -> Iterator[Any]:
    """An admin ``kubernetes.client.ApiClient`` for the session's cluster."""
    with kube.api_client() as api:
        yield api


@pytest.fixture
def namespace(k8s: Any) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (tests stay independent)."""
    from kubernetes import client

    from tests.support.helpers import create_namespace

    core = client.CoreV1Api(k8s)
    name = f"t-{uuid.uuid4().hex[:8]}"
    create_namespace(core, name)
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def kubeconfig(kube: KubeCluster) -> Path:
    return kube.kubeconfig


@pytest.fixture
def etcd_probe(tools: Any, registry_etcd: Any) -> Any:
    """etcdctl on the registry etcd: an independent judge of what the operator wrote."""
    from tests.support.etcd_probe import EtcdProbe

    return EtcdProbe(tools.etcdctl, list(registry_etcd.endpoints))


# ---------------------------------------------------------------- the operator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def crds(kube: Any) -> None:
    """The KitexService CRD, installed once and Established."""
    kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 "crd/kitexservices.kitex.cloudwego.io")


@pytest.fixture
def start_operator(kube: Any, registry_etcd: Any, crds: None, tmp_path: Path
                   ) -> Iterator[Callable[..., Any]]:
    """Start ``kitex-etcd-operator run`` processes; all are stopped at teardown and
    their log tails printed (pytest shows them when a test fails)."""
    from tests.support.operator_process import OperatorProcess

    started: list[OperatorProcess] = []

    def start(*args: str, wait_ready: bool = True, kubeconfig: Path | None = None,
              endpoints: list[str] | None = None, env: dict[str, str] | None = None
              ) -> OperatorProcess:
        proc = OperatorProcess(kubeconfig or kube.kubeconfig,
                               endpoints or list(registry_etcd.endpoints), tmp_path, *args,
                               env=env, name=f"operator{len(started)}")
        started.append(proc)
        return proc.start(wait_ready=wait_ready)

    yield start
    for proc in started:
        proc.stop()
        print(f"--- {proc.log_path.name} (tail)\n{proc.tail(80)}")


# ---------------------------------------------------------------- figures


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(name=value, ...)``: print a test's measurements and keep them
    (see tests/support/figures.py); docs/reliability.md quotes them."""
    from tests.support.figures import record

    def keep(**values: Any) -> None:
        record(request.node.name, **values)

    return keep
