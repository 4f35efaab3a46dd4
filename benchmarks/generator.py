"""The churn load generator: a small Go program (``benchmarks/churn``), built once.

A generator written in Python (the ``kubernetes`` client in threads) used as
much CPU as the API server at 130 changes/s, and the two saturated this
2-core machine before 200/s. The Go one sends the same changes for a fraction
of that, so the figure at 200/s measures the operator and the API server,
not the load generator.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kitex_devcluster.build import ensure_go_program

SOURCE = Path(__file__).resolve().parent / "churn"


@dataclass(frozen=True)
class ChurnRun:
    """What the generator did: when each change was sent and answered, by key."""

    # "<etcd key>|PUT or DELETE" -> (request sent, answer read) in unix time, in order.
    # The change is made in the API server somewhere in between.
    changes: dict[str, list[tuple[float, float]]]
    wall: float
    errors: int
    cpu_seconds: float  # the generator's own, while it sent


def run(kubeconfig: Path, namespace: str, rate: int, events: int, key_prefix: str,
        port: int, on_start: Callable[[], None], on_sent: Callable[[], None], *,
        selector: str = "app=bench", registry_prefix: str = "") -> ChurnRun:
    """Send ``events`` changes at ``rate``/s; returns once they are answered and undone.

    ``on_start`` and ``on_sent`` run as the first change goes out and once the
    last is answered: the caller's measurement window. With ``registry_prefix``
    the pods belong to many services: a key is <registry_prefix>/<the pod's
    service annotation>/ip:port instead of ``key_prefix`` + ip:port.
    """
    binary = ensure_go_program("kitex-churn", SOURCE)
    with tempfile.TemporaryFile("w+") as stderr, subprocess.Popen(
            [str(binary), "--kubeconfig", str(kubeconfig), "--namespace", namespace,
             "--rate", str(rate), "--events", str(events), "--key-prefix", key_prefix,
             "--port", str(port), "--selector", selector,
             "--registry-prefix", registry_prefix],
            stdout=subprocess.PIPE, stderr=stderr, text=True) as proc:
        assert proc.stdout is not None
        changes: dict[str, list[tuple[float, float]]] = {}
        sent: dict[str, float] = {}
        for line in proc.stdout:
            record = json.loads(line)
            event = record.get("event")
            if event == "start":
                on_start()
            elif event == "sent":
                on_sent()
                sent = record
            elif event is None:
                changes.setdefault(record["key"], []).append((record["sent"], record["t"]))
        if proc.wait() != 0 or not sent:
            stderr.seek(0)
            errors = stderr.read()
            raise RuntimeError(f"kitex-churn exited with {proc.returncode}: {errors[-2000:]}")
    for times in changes.values():
        times.sort()
    return ChurnRun(changes, float(sent["wall"]), int(sent["errors"]), float(sent["cpu"]))
