"""A randomized fault soak: pods churn while a seeded nemesis breaks things; no entry is lost.

Two operator replicas (leader election) register four services in two
namespaces (two KitexServices, two annotated) into a 3-member etcd, reaching
the API server through a proxy that can cut their streams. The workload
creates, readies, unreadies and deletes pods; the nemesis (tests/soak/nemesis.py)
kills and restarts etcd members, takes the whole registry down, restarts the
API server, cuts the watch streams, SIGKILLs and SIGTERMs replicas (failover),
revokes a lease by hand and writes foreign keys, on a schedule drawn from the
seed. The checker (tests/soak/checker.py) judges the invariants all along.

``make test`` runs it for SOAK_SECONDS=180 (every kind of fault at least once);
``make soak`` for 30 minutes: ``make soak SOAK_SECONDS=600 SOAK_SEED=7``. The
seed and the schedule are printed first, every fault and violation as it
happens, and a summary table at the end.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.soak.checker import PORT, Checker
from tests.soak.nemesis import (
    FAULTS,
    Nemesis,
    Service,
    Workload,
    crash_count,
    rss_mib,
    schedule,
    summary_table,
    wait_every_pod_scheduled,
)
from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import create_namespace, wait_for
from tests.support.kube_objects import kitexservice
from tests.support.tcp_proxy import CuttableProxy

SEED = int(os.environ.get("SOAK_SEED", "14"))
DURATION = float(os.environ.get("SOAK_SECONDS", "180"))
BOUND = float(os.environ.get("SOAK_BOUND", "15"))
RSS_LIMIT_MIB = 400.0
PREFIX = "kitex/registry-etcd/"
OWNER_RECORDS = "kitex-etcd-operator/owners/default/leases/"
FLAGS = ("--retry-delay", "1s", "--observe-delay", "3s", "--max-attempt-times", "3")


def _namespace(core: Any) -> str:
    return create_namespace(core, f"soak-{uuid.uuid4().hex[:6]}")


@pytest.mark.timeout(DURATION + 900)
def test_soak(kube: Any, k8s: Any, crds: None, tools: Any, tmp_path: Path,
              private_etcd: Callable[..., Any], start_operator: Callable[..., Any],
              figures: Callable[..., None]) -> None:
    plan = schedule(SEED, DURATION)
    print(f"\nSOAK seed {SEED}, {DURATION:g}s, bound B = {BOUND:g}s; schedule:", flush=True)
    for fault in plan:
        print(f"  {fault.at:8.2f}s {fault.kind} ({fault.seconds:g}s, pick {fault.pick})")

    core = client.CoreV1Api(k8s)
    etcd = private_etcd("registry", members=3)
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints))
    proxy = CuttableProxy(kube.server)
    kubeconfig = tmp_path / "proxied.kubeconfig"
    kubeconfig.write_text(Path(kube.kubeconfig).read_text().replace(
        kube.server, f"https://{proxy.address}"))
    namespaces = [_namespace(core), _namespace(core)]
    services = [Service(namespaces[0], "soak-alpha", "kitexservice"),
                Service(namespaces[0], "soak-beta", "annotations"),
                Service(namespaces[1], "soak-gamma", "kitexservice"),
                Service(namespaces[1], "soak-delta", "annotations")]
    custom = client.CustomObjectsApi(k8s)
    for svc in services:
        if svc.mode == "kitexservice":
            custom.create_namespaced_custom_object(
                "kitex.cloudwego.io", "v1alpha1", svc.namespace, "kitexservices",
                kitexservice(svc.name, {"selector": {"matchLabels": {"app": svc.name}},
                                        "port": PORT, "retry": {
                                            "retryDelay": "1s", "observeDelay": "3s",
                                            "maxAttemptTimes": 3}}))
    workload = Workload(core, services, list(kube.node_names), SEED)
    workload.setup()
    wait_every_pod_scheduled(core, namespaces)

    args = [a for ns in namespaces for a in ("--namespace", ns)]

    def replica(name: str) -> Any:
        return start_operator(*args, *FLAGS, "--leader-elect", "--leader-election-namespace",
                              namespaces[0], "--leader-election-id", name, wait_ready=False,
                              kubeconfig=kubeconfig, endpoints=list(etcd.endpoints))

    operators = [replica("replica-a")]
    wait_for(lambda: operators[0].probe("/readyz") == 200, timeout=90, what="replica-a ready")
    operators.append(replica("replica-b"))
    checker = Checker(core, namespaces, {(s.namespace, s.name): s.name for s in services},
                      probe, PREFIX, BOUND)
    checker.start()
    wait_for(checker.converged, timeout=60, what="etcd holding every ready pod's entry")

    nemesis = Nemesis(plan, checker, etcd=etcd, kube=kube, proxy=proxy, operators=operators,
                      probe=probe, prefix=PREFIX, services=services,
                      owner_records=OWNER_RECORDS)
    started = time.monotonic()
    nemesis.start()
    workload.start()
    try:
        # At least DURATION, and until every kind of fault ran once (a short run).
        while nemesis.is_alive() and (time.monotonic() - started < DURATION or (
                len({f.kind for f, *_ in nemesis.done}) < len(set(FAULTS))
                and time.monotonic() - started < DURATION + 240)):
            nemesis.revive()
            for op in operators:
                checker.stats.max_rss_mib = max(checker.stats.max_rss_mib, rss_mib(op))
            nemesis.join(1)  # the monitor's pace: at most a second
    finally:
        workload.stop()
        nemesis.stop()
    converge_started = time.monotonic()
    try:
        wait_for(checker.converged, timeout=BOUND + 60,
                 what="etcd holding exactly the ready pods' entries after the last fault")
        converge: float | None = time.monotonic() - converge_started
    except AssertionError:
        converge = None  # the checker's violations say which keys; the table is printed first
        print(f"NOT CONVERGED: {checker.pending()}", flush=True)
    checker.stop()
    elapsed = time.monotonic() - started

    crashes_now = crash_count(operators)
    logs = "\n".join(op.log() for op in operators)
    crash_lines = re.findall(r".* task .* crashed \(.*", logs)
    unretrieved = logs.count("Task exception was never retrieved")
    tracebacks = logs.count("Traceback (most recent call last)")
    foreign = {k: v for k, (v, _) in checker.foreign.items()}
    foreign_now = {k: v for k, v in probe.values(PREFIX).items() if k in foreign}
    faults = Counter(f.kind for f, *_ in nemesis.done)
    by_invariant = Counter(v.invariant for v in checker.violations)
    s = checker.stats
    rows = [("seed", str(SEED)), ("duration", f"{elapsed:.0f} s"), ("bound B", f"{BOUND:g} s"),
            *((f"fault: {k}", str(faults.get(k, 0))) for k in sorted(set(f.kind for f in plan))),
            ("nemesis errors", str(len(nemesis.errors))),
            ("workload changes", ", ".join(f"{k} {v}" for k, v in sorted(workload.counts.items()))),
            ("samples (K8s + etcd)", str(s.samples)), ("sample errors", str(s.sample_errors)),
            ("key checks (1)+(2)", str(s.key_checks)), ("etcd events seen", str(s.events_seen)),
            ("DELETEs checked (3)", f"{s.deletes_checked} ({checker.deletes_unjudged} too old "
                                    "to judge)"),
            ("foreign keys (4)", f"{len(foreign)} written, {len(foreign_now)} intact"),
            *((f"violations ({i})", str(by_invariant.get(i, 0))) for i in (1, 2, 3, 4)),
            ("worst staleness (1), past blinding faults", f"{s.worst_missing:.1f} s "
             f"({s.worst_missing_key})"),
            ("worst staleness (2), past blinding faults", f"{s.worst_stale:.1f} s "
             f"({s.worst_stale_key})"),
            ("worst staleness (1)/(2) from the change", f"{s.raw_worst_missing:.1f} s / "
             f"{s.raw_worst_stale:.1f} s"),
            ("converged after the last fault", "never" if converge is None
             else f"{converge:.1f} s"),
            ("task crashes (metrics / log)", f"{crashes_now:g} / {len(crash_lines)}"),
            ("unretrieved task exceptions", str(unretrieved)),
            ("tracebacks in the logs", str(tracebacks)),
            ("replica exits (restarted)", "; ".join(nemesis.exits) or "0"),
            ("operator RSS max", f"{s.max_rss_mib:.0f} MiB")]
    print("\nSOAK SUMMARY\n" + summary_table(rows), flush=True)
    for v in checker.violations:
        print(f"violation ({v.invariant}) at {v.at:.1f}s {v.key}: {v.message}")
        for line in v.timeline:
            print(f"    {line}")
    figures(seed=SEED, seconds=round(elapsed), bound=BOUND, faults=dict(faults),
            violations=len(checker.violations), key_checks=s.key_checks,
            deletes_checked=s.deletes_checked, events=s.events_seen,
            worst_missing=round(s.worst_missing, 2), worst_stale=round(s.worst_stale, 2),
            raw_worst_missing=round(s.raw_worst_missing, 2),
            raw_worst_stale=round(s.raw_worst_stale, 2), crashes=len(crash_lines),
            rss_mib=round(s.max_rss_mib), nemesis_errors=nemesis.errors)
    for ns in namespaces:
        core.delete_namespace(ns)
    proxy.close()

    assert converge is not None, "etcd never matched the pods after the last fault"
    assert not nemesis.errors, nemesis.errors
    assert set(faults) == set(f.kind for f in plan)
    assert not checker.violations, f"{len(checker.violations)} violation(s), see above"
    assert foreign_now == foreign, "a foreign key changed"
    assert not crash_lines and not unretrieved, crash_lines
    assert not [e for e in nemesis.exits if "crashed" in e], nemesis.exits
    assert s.max_rss_mib < RSS_LIMIT_MIB
