"""Pods for the large benchmark, written and read by ``kitex-pods`` (Go, client-go).

Creating 100,000 pods from Python threads costs more CPU than the API server
spends storing them; the Go program keeps 64 requests in flight for a fraction
of that. Its ``list`` is the yardstick of the operator's initial sync: the
fastest any client reads the same pods (protobuf, pages of 500), measured in
the same run on the same machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from kitex_devcluster.build import ensure_go_program

SOURCE = Path(__file__).resolve().parent / "churn"  # the Go module of both programs


def _run(kubeconfig: Path, command: str, *args: str) -> dict[str, Any]:
    binary = ensure_go_program("kitex-pods", SOURCE, package="./pods")
    done = subprocess.run([str(binary), command, "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kitex-pods {command} exited with {done.returncode}: "
                           f"{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def create(kubeconfig: Path, namespace: str, count: int, services: int, *, first: int = 0,
           workers: int = 64) -> dict[str, Any]:
    """Pods p<first> .. over ``services`` Kitex services (label app=bench-large):
    {created, errors, seconds}."""
    return _run(kubeconfig, "create", "--namespace", namespace, "--first", str(first),
                "--count", str(count), "--services", str(services), "--workers", str(workers))


def list_all(kubeconfig: Path, page: int = 500, *, as_json: bool = False) -> dict[str, Any]:
    """Every pod of the cluster, a page at a time: {pods, ready, keys, seconds, cpu};
    ``as_json`` asks for JSON (as the operator does) instead of protobuf."""
    return _run(kubeconfig, "list", "--page", str(page), *(["--json"] if as_json else []))
