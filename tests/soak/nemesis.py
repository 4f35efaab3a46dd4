"""The soak's workload and nemesis: pods that come and go, and faults on a seeded schedule.

Both draw from their own ``random.Random(seed)``, and the nemesis's schedule
(which fault, when, for how long) is drawn in full before the run, so a seed
names one schedule: a failure is replayed with the same seed. What happens
inside a fault (which lease is the operator's, which replica leads) depends
on the run and is printed as it happens.

Faults, each ended before the next starts:

* ``etcd-member-kill``: SIGKILL of one member of the 3-member registry etcd,
  started again after a few seconds (quorum is kept);
* ``etcd-outage``: every member stopped, then started again (the whole registry
  down, shorter than the lease TTL);
* ``apiserver-restart``: kube-apiserver stopped and started again;
* ``watch-cut``: the proxy between the operators and the API server resets every
  connection and refuses new ones for a few seconds;
* ``operator-sigkill`` / ``operator-sigterm``: one replica (the leader more often
  than not: a failover) killed or stopped, then started again;
* ``lease-revoke``: one of the operator's etcd leases revoked with etcdctl;
* ``foreign-key``: a key another writer owns, put into a service's range.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.soak.checker import PORT, Checker
from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import set_pod_ready, wait_for

ANN = "kitex.cloudwego.io/"
FAULTS = ("etcd-member-kill", "etcd-outage", "apiserver-restart", "watch-cut",
          "operator-sigkill", "operator-sigterm", "lease-revoke", "foreign-key")
BLINDING = {"etcd-outage", "apiserver-restart", "watch-cut", "operator-sigkill",
            "operator-sigterm"}
"""Faults during which the operator can neither see nor write: the bound starts at their end."""


@dataclass(frozen=True)
class Planned:
    at: float  # seconds from the start of the run
    kind: str
    seconds: float  # how long the fault lasts (down time, cut time...)
    pick: int  # which member, replica or lease: an index drawn with the schedule


def schedule(seed: int, duration: float, gap: tuple[float, float] = (6.0, 16.0)
             ) -> list[Planned]:
    """Every kind once in a seeded order first, then seeded random kinds, until ``duration``."""
    rng = random.Random(seed)
    kinds = list(FAULTS)
    rng.shuffle(kinds)
    plan: list[Planned] = []
    at = rng.uniform(*gap)
    while at < duration:
        kind = kinds.pop(0) if kinds else rng.choice(FAULTS)
        seconds = {"etcd-member-kill": rng.uniform(3, 10), "etcd-outage": rng.uniform(4, 15),
                   "watch-cut": rng.uniform(2, 10), "operator-sigkill": rng.uniform(1, 5),
                   "operator-sigterm": rng.uniform(1, 5)}.get(kind, 0.0)
        plan.append(Planned(round(at, 2), kind, round(seconds, 2), rng.randrange(1000)))
        at += seconds + rng.uniform(*gap) + (12 if kind == "apiserver-restart" else 0)
    return plan


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str  # the Kitex service name, and the pods' app label
    mode: str  # "kitexservice" or "annotations"


class Workload(threading.Thread):
    """Pods created, turned ready and not ready, and deleted, one change at a time.

    A pod's state is left alone for at least ``dwell`` seconds after a change,
    so that the checker, sampling twice a second, sees every state it had.
    """

    def __init__(self, core: Any, services: list[Service], nodes: list[str], seed: int,
                 *, max_pods: int = 5, pace: tuple[float, float] = (0.4, 1.5),
                 dwell: float = 4.0) -> None:
        super().__init__(daemon=True, name="soak workload")
        self.core, self.services, self.nodes = core, services, nodes
        self.rng = random.Random(seed)
        self.max_pods, self.pace, self.dwell = max_pods, pace, dwell
        self.counts: Counter[str] = Counter()
        self.touched: dict[str, float] = {}
        self.serial = 0
        self.stopped = threading.Event()

    def create(self, svc: Service) -> None:
        self.serial += 1
        name = f"{svc.name}-{self.serial}"
        annotations = {ANN + "service": svc.name, ANN + "port": str(PORT)} \
            if svc.mode == "annotations" else {}
        self.core.create_namespaced_pod(svc.namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": svc.name, "soak": "1"},
                         "annotations": annotations},
            "spec": {"nodeName": self.rng.choice(self.nodes), "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "fake/kitex-server"}]}})
        self.touched[name] = time.monotonic()
        self.counts["create"] += 1

    def setup(self, per_service: int = 3) -> None:
        for svc in self.services:
            for _ in range(per_service):
                self.create(svc)

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(*self.pace)):
            try:
                self.step()
            except Exception:  # the API server is restarting: try again later
                self.counts["failed"] += 1

    def step(self) -> None:
        svc = self.rng.choice(self.services)
        pods = [p for p in self.core.list_namespaced_pod(
                    svc.namespace, label_selector=f"app={svc.name},soak=1",
                    _request_timeout=5).items
                if not p.metadata.deletion_timestamp
                and time.monotonic() - self.touched.get(p.metadata.name, 0) > self.dwell]
        ready = [p for p in pods if _ready(p)]
        unready = [p for p in pods if not _ready(p) and p.status.phase == "Running"]
        action = self.rng.choices(["create", "delete", "unready", "ready"], [3, 2, 2, 3])[0]
        total = len(self.core.list_namespaced_pod(
            svc.namespace, label_selector=f"app={svc.name},soak=1", _request_timeout=5).items)
        if action == "create" and total < self.max_pods:
            self.create(svc)
        elif action == "delete" and pods and total > 1:
            pod = self.rng.choice(sorted(pods, key=lambda p: p.metadata.name))
            self.core.delete_namespaced_pod(pod.metadata.name, svc.namespace,
                                            grace_period_seconds=self.rng.choice([0, 1]))
            self.touched[pod.metadata.name] = time.monotonic()
            self.counts["delete"] += 1
        elif action == "unready" and len(ready) > 1:
            pod = self.rng.choice(sorted(ready, key=lambda p: p.metadata.name))
            set_pod_ready(self.core, pod.metadata.name, svc.namespace, False)
            self.touched[pod.metadata.name] = time.monotonic()
            self.counts["not ready"] += 1
        elif action == "ready" and unready:
            pod = self.rng.choice(sorted(unready, key=lambda p: p.metadata.name))
            set_pod_ready(self.core, pod.metadata.name, svc.namespace, True)
            self.touched[pod.metadata.name] = time.monotonic()
            self.counts["ready"] += 1

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True"
               for c in (pod.status.conditions or []) if pod.status)


class Nemesis(threading.Thread):
    """Runs a schedule of faults against the soak's components, telling the checker."""

    def __init__(self, plan: list[Planned], checker: Checker, *, etcd: Any, kube: Any,
                 proxy: Any, operators: list[Any], probe: EtcdProbe, prefix: str,
                 services: list[Service], owner_records: str) -> None:
        super().__init__(daemon=True, name="soak nemesis")
        self.plan, self.checker = plan, checker
        self.etcd, self.kube, self.proxy, self.operators = etcd, kube, proxy, operators
        self.probe, self.prefix, self.services = probe, prefix, services
        self.owner_records = owner_records
        self.done: list[tuple[Planned, float, float, str]] = []
        self.errors: list[str] = []
        self.exits: list[str] = []  # replicas that exited on their own, and why
        self.lock = threading.Lock()  # a replica is restarted by one hand at a time
        self.stopped = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        for fault in self.plan:
            if self.stopped.wait(max(0.0, self.started + fault.at - time.monotonic())):
                return
            window = self.checker.fault(fault.kind, blinding=fault.kind in BLINDING)
            print(f"FAULT {time.monotonic() - self.started:8.2f}s {fault.kind} "
                  f"({fault.seconds:g}s, pick {fault.pick})", flush=True)
            try:
                window.detail = getattr(self, "_" + fault.kind.replace("-", "_"))(fault)
            except Exception as exc:
                self.errors.append(f"{fault.kind}: {type(exc).__name__}: {exc}")
                window.detail = f"failed: {exc}"
                print(f"NEMESIS ERROR {fault.kind}: {exc}", flush=True)
            window.end = time.monotonic()
            self.done.append((fault, window.start - self.started, window.end - window.start,
                              window.detail))
            print(f"  ... {window.detail} (ended after {window.end - window.start:.1f}s)",
                  flush=True)

    def stop(self) -> None:
        self.stopped.set()
        self.join(180)

    def revive(self) -> None:
        """What the Deployment does: a replica that exited is started again. A leader
        that could not renew its Lease in time exits by design ("Stepping down");
        any other exit is a crash, and the soak fails on it."""
        with self.lock:
            for op in self.operators:
                if op.proc is not None and not op.running:
                    tail = op.tail(5)
                    why = "stepped down" if "Stepping down" in tail else "crashed"
                    self.exits.append(f"{time.monotonic() - self.started:.1f}s "
                                      f"{op.log_path.name} exited ({why}, code "
                                      f"{op.proc.returncode}): {tail.splitlines()[-1:]}")
                    print(f"EXIT {self.exits[-1]}", flush=True)
                    op.start(wait_ready=False)

    # --- the faults --------------------------------------------------------------

    def _etcd_member_kill(self, f: Planned) -> str:
        i = f.pick % len(self.etcd.members)
        self.etcd.kill_member(i)
        self.stopped.wait(f.seconds)
        self.etcd.start_member(i)
        return f"member m{i} killed, back"

    def _etcd_outage(self, f: Planned) -> str:
        for i in range(len(self.etcd.members)):
            self.etcd.stop_member(i)
        self.stopped.wait(f.seconds)
        self.etcd.start_members()
        self._wait_leader()
        return "all members stopped, back"

    def _apiserver_restart(self, f: Planned) -> str:
        took = self.kube.restart_apiserver()
        self._wait_leader()
        return f"ready again after {took:.1f}s"

    def _watch_cut(self, f: Planned) -> str:
        cut = self.proxy.cut()
        self.stopped.wait(f.seconds)
        self.proxy.restore()
        self._wait_leader()
        return f"{cut} connection(s) reset"

    def _replica(self, f: Planned) -> Any:
        """The leader three times in four (a failover), else the standby."""
        leaders = [op for op in self.operators if op.running and _leading(op)]
        others = [op for op in self.operators if op not in leaders]
        if leaders and (f.pick % 4 != 0 or not others):
            return leaders[0]
        return (others or self.operators)[0]

    def _operator_sigkill(self, f: Planned) -> str:
        return self._restart_replica(f, kill=True)

    def _operator_sigterm(self, f: Planned) -> str:
        return self._restart_replica(f, kill=False)

    def _restart_replica(self, f: Planned, *, kill: bool) -> str:
        """SIGKILL (a crash) or SIGTERM (a rollout) one replica, then start it again."""
        with self.lock:
            victim = self._replica(f)
            role = "leader" if victim.running and _leading(victim) else "standby"
            if kill:
                victim.kill()
            else:
                victim.stop()
            self.stopped.wait(f.seconds)
            victim.start(wait_ready=False)
        self._wait_leader()
        return f"{role} {victim.log_path.name} {'killed' if kill else 'stopped'} and restarted"

    def _wait_leader(self) -> None:
        """The fault lasts until one replica leads and is ready again (a replica that
        exited meanwhile is started again, as its Deployment would)."""
        def led() -> bool:
            self.revive()
            return any(op.running and _leading(op) and op.probe("/readyz") == 200
                       for op in self.operators)

        wait_for(led, timeout=120, what="a ready leader", interval=0.2)

    def _lease_revoke(self, f: Planned) -> str:
        records = sorted(self.probe.get_prefix(self.owner_records))
        if not records:
            return "no lease to revoke"
        key = records[f.pick % len(records)]
        lease = key.rsplit("/", 1)[-1]
        before = self.probe.revision()
        self.probe.run("lease", "revoke", lease)
        self.checker.revoked(before, self.probe.revision())
        return f"lease {lease} revoked"

    def _foreign_key(self, f: Planned) -> str:
        svc = self.services[f.pick % len(self.services)]
        key = f"{self.prefix}{svc.name}/10.254.{f.pick % 250}.{len(self.done) % 250}:9999"
        data = b'{"network":"tcp","address":"foreign","weight":1,"tags":null}'
        self.probe.put(key, data.decode())
        self.checker.foreign_key(key, data, self.probe.revision())
        return f"foreign key {key}"


def _leading(operator: Any) -> bool:
    try:
        return bool(operator.metric("kitex_etcd_operator_leader") == 1)
    except OSError:
        return False


def crash_count(operators: list[Any]) -> float:
    """The supervisor's crash counter, summed over the replicas that answer."""
    total = 0.0
    for op in operators:
        if op.running:
            try:
                text = op.metrics()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("kitex_etcd_operator_task_crashes_total{"):
                    total += float(line.rsplit(" ", 1)[-1])
    return total


def rss_mib(operator: Any) -> float:
    if not operator.running:
        return 0.0
    try:
        with open(f"/proc/{operator.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_every_pod_scheduled(core: Any, namespaces: list[str], timeout: float = 60) -> None:
    def settled() -> bool:
        pods = [p for ns in namespaces for p in core.list_namespaced_pod(
            ns, label_selector="soak=1").items]
        return bool(pods) and all(p.status.pod_ip and _ready(p) for p in pods)

    wait_for(settled, timeout=timeout, what="every soak pod running and ready")


def summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
