"""Safety: the deletion cap, the upsert-only policy, and SIGKILL at random moments.

Each guards against losing entries that should stay: a bad answer from the
API server must not wipe a service in one cycle (``--max-deletes``), a
cautious rollout can forbid deletions altogether (``--policy upsert-only``),
and a crash in the middle of a busy run must neither delete a pod that stayed
ready nor leave etcd different from the pods once the operator is back.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.reliability.etcd_faults import PORT, create_service, since
from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.figures import GapSampler
from tests.support.helpers import set_pod_ready, wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, expected, ready_pods

FLAGS = ("--retry-delay", "1s", "--observe-delay", "3s", "--max-attempt-times", "3")
FULL_SYNCS = 'kitex_etcd_operator_sync_duration_seconds_count'


def test_max_deletes_caps_a_wipe(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                                 start_operator: Callable[..., Any],
                                 figures: Callable[..., None]) -> None:
    operator = start_operator("--namespace", namespace, "--max-deletes", "2", *FLAGS)
    svc = create_service(k8s, namespace, "cap", 6, etcd_probe)
    recorder = etcd_probe.watch(svc.range)
    wiped_at = time.monotonic()
    svc.scale(0)
    wait_for(lambda: not etcd_probe.values(svc.range), timeout=90,
             what="every entry gone, two per cycle")
    took = since(wiped_at)
    recorder.stop()
    per_txn = Counter(e.revision for e in recorder.snapshot() if e.kind == "DELETE")
    assert sum(per_txn.values()) == 6
    assert max(per_txn.values()) <= 2, per_txn
    events = wait_for(lambda: svc.events("DeletesWithheld"), timeout=30,
                      what="a DeletesWithheld Event")
    assert "--max-deletes 2" in events[0].message
    held = operator.metric("kitex_etcd_operator_deletes_withheld_total",
                           prefix=PREFIX, service="cap")
    assert held > 0
    assert "Held back" in operator.log()
    figures(entries=6, max_deletes=2, delete_transactions=len(per_txn),
            seconds_to_empty=took, withheld_total=held)


def test_upsert_only_never_deletes(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                                   start_operator: Callable[..., Any],
                                   figures: Callable[..., None]) -> None:
    operator = start_operator("--namespace", namespace, "--policy", "upsert-only", *FLAGS)
    svc = create_service(k8s, namespace, "keep", 3, etcd_probe)
    before = etcd_probe.values(svc.range)
    recorder = etcd_probe.watch(svc.range)
    pods = svc.ready()
    set_pod_ready(svc.core, pods[0].metadata.name, namespace, False)
    svc.core.delete_namespaced_pod(pods[1].metadata.name, namespace, grace_period_seconds=0)
    # The replacement pod is added (upserts still happen; kwok may give it a freed IP) ...
    wait_for(lambda: len(svc.ready()) == 2
             and operator.metric("kitex_etcd_operator_desired_instances",
                                 prefix=PREFIX, service="keep") == 2
             and set(svc.desired()) <= set(etcd_probe.values(svc.range)),
             timeout=60, what="the operator seeing 2 ready pods, both registered")
    # ... and two full observation cycles later nothing was deleted.
    syncs = operator.metric(FULL_SYNCS, kind="full")
    wait_for(lambda: operator.metric(FULL_SYNCS, kind="full") >= syncs + 2, timeout=30,
             what="two more full observation cycles")
    recorder.stop()
    after = etcd_probe.values(svc.range)
    assert set(before) <= set(after)
    assert not recorder.deletes()
    figures(entries_kept=len(before), entries_after=len(after), deletes=0,
            full_cycles_observed=2)


class Churn(threading.Thread):
    """Changes the ``churn`` Deployment's pods until stopped: scale, flip readiness, delete."""

    def __init__(self, k8s: Any, namespace: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.core, self.apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
        self.namespace = namespace
        self.random = random.Random(seed)
        self.changes = 0
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._one()
                self.changes += 1
            except Exception:  # a pod deleted meanwhile: the next change goes on
                self.errors += 1
            self.stop_event.wait(0.2)  # pacing the load generator

    def _one(self) -> None:
        pods = ready_pods(self.core, self.namespace, "churn")
        choice = self.random.random()
        if choice < 0.3 or not pods:
            self.apps.patch_namespaced_deployment_scale(
                "churn", self.namespace, {"spec": {"replicas": self.random.randint(2, 5)}})
        elif choice < 0.7:
            pod = self.random.choice(pods)
            set_pod_ready(self.core, pod.metadata.name, self.namespace, False)
        else:
            pod = self.random.choice(pods)
            self.core.delete_namespaced_pod(pod.metadata.name, self.namespace,
                                            grace_period_seconds=0)

    def wait_changes(self, count: int) -> None:
        target = self.changes + count
        wait_for(lambda: self.changes >= target, timeout=60, what=f"{count} more changes")


def test_sigkill_at_random_moments_under_churn(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., Any], figures: Callable[..., None]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    service = f"churn-{namespace}"
    rng = f"{PREFIX}/{service}/"
    annotations = {ANN + "service": service, ANN + "port": str(PORT)}
    for name, replicas in (("stay", 3), ("churn", 4)):
        apps.create_namespaced_deployment(namespace, deployment(name, replicas,
                                                                annotations=annotations))
    operator = start_operator("--namespace", namespace, *FLAGS)

    def desired() -> dict[str, bytes]:
        return {**expected(core, namespace, "stay", service, PORT),
                **expected(core, namespace, "churn", service, PORT)}

    wait_for(lambda: len(ready_pods(core, namespace, "stay")) == 3
             and len(ready_pods(core, namespace, "churn")) == 4, timeout=90, what="7 pods")
    wait_keys(etcd_probe, rng, desired(), timeout=60, what="7 entries")
    stayers = set(expected(core, namespace, "stay", service, PORT))
    recorder = etcd_probe.watch(rng)
    churn = Churn(k8s, namespace, seed=8)
    rounds, converge = 3, []
    with GapSampler(etcd_probe, rng, lambda: stayers) as gaps:
        churn.start()
        try:
            for _ in range(rounds):
                churn.wait_changes(churn.random.randint(3, 12))  # a random moment
                operator.kill()
                churn.wait_changes(churn.random.randint(2, 8))  # changes while it is down
                operator = start_operator("--namespace", namespace, *FLAGS)
        finally:
            churn.stop_event.set()
            churn.join(30)
        settled = time.monotonic()
        wait_for(lambda: etcd_probe.values(rng) == desired(), timeout=60,
                 what="etcd converged to exactly the desired set")
        converge.append(since(settled))
    recorder.stop()
    deleted_stayers = set(recorder.deletes()) & stayers
    assert not deleted_stayers, recorder.deletes()
    assert gaps.max_gap == 0, gaps.longest
    figures(rounds=rounds, kills=rounds, churn_changes=churn.changes,
            converged_after_churn_s=converge[0], deletes_total=len(recorder.deletes()),
            stayer_deletes=len(deleted_stayers), stayer_max_gap_s=gaps.max_gap)
