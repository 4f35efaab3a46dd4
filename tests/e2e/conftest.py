"""Fixtures for end-to-end tests: the CRD installed, the operator as a process,
an independent etcd probe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crds(kube: Any) -> None:
    kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 "crd/kitexservices.kitex.cloudwego.io")


@pytest.fixture
def start_operator(kube: Any, registry_etcd: Any, crds: None, tmp_path: Path
                   ) -> Iterator[Callable[..., OperatorProcess]]:
    """Start ``kitex-etcd-operator run`` processes; all are stopped at teardown."""
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
        print(f"--- {proc.log_path.name} (tail)\n{proc.tail(80)}")  # shown when a test fails
