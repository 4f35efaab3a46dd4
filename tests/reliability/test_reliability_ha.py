"""High availability: two replicas, one writer, takeover on a crash and on a stop.

Both replicas run with ``--leader-elect`` on one coordination Lease. The
standby watches pods from the start (warm, and /readyz 200 so a rollout can
progress) but writes nothing. SIGKILL of the leader: the standby takes over
once the Lease expires (15 s), well inside the etcd lease TTL (60 s), so no
entry of a pod that stayed ready is ever missing. SIGTERM of the leader: it
stops writing, then releases the Lease, and the standby leads within a
couple of seconds.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.reliability.etcd_faults import PORT, create_revisions, entries_lost, since
from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.figures import GapSampler
from tests.support.helpers import wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, expected, ready_pods

FLAGS = ("--retry-delay", "1s", "--observe-delay", "3s", "--max-attempt-times", "3")


def leading(operator: Any) -> bool:
    return operator.metric("kitex_etcd_operator_leader") == 1


def writes(operator: Any) -> float:
    return sum(operator.metric("kitex_etcd_operator_entries_written_total", kind=kind)
               for kind in ("put", "delete"))


def replicas(start_operator: Callable[..., Any], namespace: str) -> tuple[Any, Any]:
    """The first replica leads; the second is a warm standby once /readyz says so."""
    def start(name: str) -> Any:
        return start_operator("--namespace", namespace, *FLAGS, "--leader-elect",
                              "--leader-election-namespace", namespace,
                              "--leader-election-id", name, wait_ready=False)

    first = start("replica-a")
    wait_for(lambda: leading(first), timeout=60, what="the first replica leading")
    first.wait_ready()
    second = start("replica-b")
    second.wait_ready()  # ready as a warm standby: a rollout is not blocked by it
    assert not leading(second)
    return first, second


class Annotated:
    """An annotated Deployment and its service's entries."""

    def __init__(self, k8s: Any, namespace: str, app: str, replicas: int,
                 probe: EtcdProbe) -> None:
        self.core, self.apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
        self.namespace, self.app = namespace, app
        self.service = f"{app}-{namespace}"
        self.range = f"{PREFIX}/{self.service}/"
        self.apps.create_namespaced_deployment(namespace, deployment(
            app, replicas, annotations={ANN + "service": self.service, ANN + "port": str(PORT)}))
        self.wait(replicas, probe, f"{replicas} entries")

    def desired(self) -> dict[str, bytes]:
        return expected(self.core, self.namespace, self.app, self.service, PORT)

    def scale(self, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(self.app, self.namespace,
                                                    {"spec": {"replicas": replicas}})

    def wait(self, replicas: int, probe: EtcdProbe, what: str) -> dict[str, bytes]:
        wait_for(lambda: len(ready_pods(self.core, self.namespace, self.app)) == replicas,
                 timeout=90, what=f"{replicas} ready pods")
        want = self.desired()
        wait_keys(probe, self.range, want, timeout=60, what=what)
        return want


def test_leader_killed_standby_takes_over(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                                          start_operator: Callable[..., Any],
                                          figures: Callable[..., None]) -> None:
    first, second = replicas(start_operator, namespace)
    pods = Annotated(k8s, namespace, "ha", 4, etcd_probe)
    rng, want = pods.range, pods.desired()
    assert writes(first) >= 4 and writes(second) == 0  # one writer at a time
    stayers = set(want)
    revisions = create_revisions(etcd_probe, rng)
    recorder = etcd_probe.watch(rng)

    with GapSampler(etcd_probe, rng, lambda: stayers) as gaps:
        killed_at = time.monotonic()
        first.kill()
        pods.scale(5)  # a change nobody writes until the standby leads
        wait_for(lambda: leading(second), timeout=60, what="the standby leading")
        takeover = since(killed_at)
        pods.wait(5, etcd_probe, "the fifth entry, by the new leader")
        applied = since(killed_at)
        second.wait_ready()
    recorder.stop()
    assert not set(recorder.deletes()) & stayers, recorder.deletes()
    assert gaps.max_gap == 0, gaps.longest
    lost = entries_lost(revisions, create_revisions(etcd_probe, rng), stayers)
    assert not lost
    figures(takeover_after_sigkill_s=takeover, fifth_entry_after_kill_s=applied,
            stayer_max_gap_s=gaps.max_gap, stayer_deletes=0, entries_lost=len(lost),
            etcd_lease_ttl_s=60, leader_lease_s=15, gap_samples=gaps.samples)


def test_leader_stopped_hands_over(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                                   start_operator: Callable[..., Any],
                                   figures: Callable[..., None]) -> None:
    first, second = replicas(start_operator, namespace)
    pods = Annotated(k8s, namespace, "ho", 3, etcd_probe)
    rng, want = pods.range, pods.desired()
    stayers = set(want)
    recorder = etcd_probe.watch(rng)

    with GapSampler(etcd_probe, rng, lambda: stayers) as gaps:
        stopped_at = time.monotonic()
        os.killpg(first.proc.pid, signal.SIGTERM)  # as a rollout or a node drain sends
        wait_for(lambda: leading(second), timeout=60, what="the standby leading")
        takeover = since(stopped_at)
        first.proc.wait(30)
        stop_took = since(stopped_at)
        pods.scale(4)
        pods.wait(4, etcd_probe, "the fourth entry, by the new leader")
    recorder.stop()
    assert "Released the leader Lease" in first.log()
    assert not set(recorder.deletes()) & stayers, recorder.deletes()
    assert gaps.max_gap == 0, gaps.longest
    figures(takeover_after_sigterm_s=takeover, old_leader_exit_s=stop_took,
            stayer_max_gap_s=gaps.max_gap, stayer_deletes=0)
