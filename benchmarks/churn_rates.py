"""Pod churn at a fixed rate: the time from a readiness change to etcd, and the
operator's own share of it."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import StartError, wait_until

from . import generator
from .harness import (
    PREFIX,
    SERVICE,
    EtcdEvents,
    Operator,
    Profiler,
    bucket_quantile,
    cpu_seconds,
    histograms,
    placed,
    processes,
)
from .report import Results
from .report_large import describe_gc, window_troubles

SEEN_WAIT_S = 120.0  # after the churn, for its last changes to reach etcd

PHASES = ("queued", "gathered", "view", "written", "etcd")  # of ..._change_phase_seconds


def churn(kube: KubeCluster, etcd: EtcdCluster, namespace: str, rate: int, seconds: float,
          results: Results, operator: Operator, workdir: Path, profile: bool = False, *,
          selector: str = "app=bench", every_service: bool = False,
          placement: str = "shared") -> None:
    """Pods turn ready, not ready, or are deleted at ``rate`` events per second.

    With ``profile`` it is a profiling run: only the py-spy profile is kept.
    ``placement`` puts the processes on the cores while the changes are made
    (``harness.placed``): as they were started, the operator and its etcd on a
    core of their own, or each weighted by the CPU it would request as a pod.

    Latency: from the request for the change (the patch or delete) going out
    to etcd's watch event for the key, both on this machine's clock. The change
    itself happens in the API server a little later, so this is an upper bound;
    measuring from the API server's answer instead would be a lower one, below
    zero at times, since a loaded API server may deliver its watch event (and
    the operator write etcd) before the client reads the answer. Every tenth
    event deletes a pod (it starts terminating: its key must go); the others
    flip readiness. The changes come from a Go program (see ``generator``), so
    that the load generator is not what limits the rate.
    """
    events = EtcdEvents(etcd, f"{PREFIX}/" if every_service else f"{PREFIX}/{SERVICE}/")
    profiler = Profiler(operator.proc.pid, workdir / f"profile-churn-{rate}.txt") \
        if profile else None
    procs = processes(kube, etcd, operator)
    window: dict[str, Any] = {}

    def hists() -> dict[str, dict[float, float]]:
        found = histograms(operator, {
            "share": ("kitex_etcd_operator_change_to_etcd_seconds", ""),
            "own": ("kitex_etcd_operator_change_own_seconds", ""),
            "loop lag": ("kitex_etcd_operator_event_loop_lag_seconds", ""),
            "gc pause": ("kitex_etcd_operator_gc_pause_seconds", ""),
            # the oldest generation's alone, and the CPU the collections took: a pause
            # far longer than its CPU was the process waiting, not collecting
            "gc pause full": ("kitex_etcd_operator_gc_pause_seconds", 'generation="2"'),
            "gc cpu": ("kitex_etcd_operator_gc_pause_cpu_seconds", ""),
            # collections that found no quiet moment within --gc-patience
            "gc busy": ("kitex_etcd_operator_gc_moments_total", 'moment="busy"'),
            "etcd txn": ("kitex_etcd_operator_etcd_request_duration_seconds", 'op="txn"'),
            **{phase: ("kitex_etcd_operator_change_phase_seconds", f'phase="{phase}"')
               for phase in PHASES},
            # What a window's tail may owe to the API server: complete lists of the pods
            # (a watch too far behind is answered 410 Gone) and watch streams resumed.
            "relists": ("kitex_etcd_operator_pod_relists_total", ""),
            # the periodic resync (--resync-period) among them: by design, not a fault
            "resyncs": ("kitex_etcd_operator_pod_relists_total", 'reason="resync"'),
            "watch errors": ("kitex_etcd_operator_pod_watch_errors_total", "")})
        # etcd's own time for the same transactions, from the moment its server has the
        # request to its answer (with --metrics=extensive; absent otherwise): what of
        # "etcd txn" is etcd's and what is the operator's client and event loop.
        # Its WAL's fsync too: the part of that time the disk takes, a disk this machine's
        # etcds share, where a registry's etcd in production has its own.
        found.update(histograms(f"{etcd.endpoints[0]}/metrics", {
            "etcd server txn": ("grpc_server_handling_seconds", 'grpc_method="Txn"'),
            "etcd wal fsync": ("etcd_disk_wal_fsync_duration_seconds", "")}))
        return found

    def started() -> None:
        window["cpu"] = cpu_seconds(procs)
        window["hist"] = hists()

    def finished() -> None:
        window["cpu_after"] = cpu_seconds(procs)

    with placed(procs, placement):
        run = generator.run(kube.kubeconfig, namespace, rate, int(rate * seconds),
                            f"{PREFIX}/{SERVICE}/", 8888, started, finished, selector=selector,
                            registry_prefix=PREFIX if every_service else "")
    events_sent = sum(map(len, run.changes.values()))
    achieved = events_sent / run.wall
    unseen = _wait_for_etcd(run.changes, events.seen)
    events.stop()
    if profiler is not None:
        results.profiles[f"churn at {rate}/s"] = profiler.stop()
        return
    pairs = [(change, seen) for k, times in run.changes.items()
             for change, seen in zip(times, events.seen.get(k, []), strict=False)]
    # From the request going out: an upper bound, the API server's own handling included.
    q = statistics.quantiles([(seen - sent) * 1000 for (sent, _), seen in pairs], n=100)
    api = statistics.quantiles([(t - sent) * 1000 for (sent, t), _ in pairs], n=100)
    hist_after = hists()
    own_p50, own_p99 = (bucket_quantile(window["hist"]["share"], hist_after["share"], x) * 1000
                        for x in (.5, .99))
    # Each phase's p99 on its own (they do not add up to the share's p99): which one
    # the tail comes from.
    phases = {name: bucket_quantile(window["hist"][name], hist_after[name], .99) * 1000
              for name in (*PHASES, "etcd txn", "etcd server txn", "etcd wal fsync", "loop lag",
                           "own")
              if hist_after[name]}
    relists, resyncs, watch_errors = (int(hist_after[name].get(float("inf"), 0)
                                          - window["hist"][name].get(float("inf"), 0))
                                      for name in ("relists", "resyncs", "watch errors"))
    collections = gc_pauses(window["hist"]["gc pause"], hist_after["gc pause"])
    collections["busy"] = (hist_after["gc busy"].get(float("inf"), 0)
                           - window["hist"]["gc busy"].get(float("inf"), 0))
    full = gc_pauses(window["hist"]["gc pause full"], hist_after["gc pause full"])
    collections["full"], collections["longest_full_ms"] = full["collections"], full["longest_ms"]
    if hist_after["gc cpu"]:  # from the twelfth round
        collections["longest_cpu_ms"] = gc_pauses(window["hist"]["gc cpu"],
                                                  hist_after["gc cpu"])["longest_ms"]
    cpu = {name: 100 * (window["cpu_after"][name] - window["cpu"][name]) / run.wall
           for name in procs}
    cpu["load generator (Go)"] = 100 * run.cpu_seconds / run.wall
    results.churn[rate] = {"events": events_sent,
                           "achieved_rate": achieved, "p50_ms": q[49], "p95_ms": q[94],
                           "p99_ms": q[98], "own_p50_ms": own_p50, "own_p99_ms": own_p99,
                           "api_p50_ms": api[49], "api_p99_ms": api[98],
                           "errors": run.errors, "phases_p99_ms": phases, "unseen": unseen,
                           "pod_relists": relists, "pod_resyncs": resyncs,
                           "pod_watch_errors": watch_errors,
                           "gc": collections}
    results.cpu[rate] = cpu
    where = {"own core": " (the operator on a core of its own)",
             "weighted": " (each process weighted by its CPU request)"}.get(placement, "")
    late = "".join(f", {t}" for t in window_troubles(unseen, relists, watch_errors,
                                                                  resyncs))
    print(f"  churn {rate}/s{where} (achieved {achieved:.0f}/s, {run.errors} refused{late}): "
          f"p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, p99 {q[98]:.0f} ms; the API server's "
          f"answer p50 {api[49]:.0f} ms, p99 {api[98]:.0f} ms; the operator's own "
          f"share: p50 <= {own_p50:.0f} ms, p99 <= {own_p99:.0f} ms ("
          + ", ".join(f"{name} p99 <= {ms:g}" for name, ms in phases.items())
          + f"); garbage collections: {describe_gc(collections)}; CPU % of one core: "
          + ", ".join(f"{name} {share:.0f}" for name, share in
                      sorted(cpu.items(), key=lambda kv: -kv[1])), flush=True)


def gc_pauses(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """The window's garbage collections: how many, how many over 5 ms, and the bound of
    the longest's bucket (a collection holds every event arriving then)."""
    def count(le: float) -> float:
        return after.get(le, 0) - before.get(le, 0)

    total = count(float("inf"))
    return {"collections": total, "over_5ms": total - count(.005) if total else 0.0,
            "longest_ms": bucket_quantile(before, after, 1.0) * 1000 if total else 0.0}


def _wait_for_etcd(changes: dict[str, list[Any]], seen: dict[str, list[float]]) -> int:
    """How many of the churn's changes etcd had not shown ``SEEN_WAIT_S`` after the churn.

    Not an error that ends the run: at 100,000 pods the API server left with one core
    falls minutes behind its watches, and the figures of the changes that did arrive
    (and the sync's, measured before) are worth keeping; the report shows the count.
    """
    def missing() -> int:
        return sum(max(0, len(v) - len(seen.get(k, []))) for k, v in changes.items())

    try:
        wait_until(lambda: missing() == 0 or None, timeout=SEEN_WAIT_S, interval=0.5,
                   what="every change seen in etcd")
    except StartError:
        return missing()
    return 0


def churn_scenarios(kube: KubeCluster, etcd: EtcdCluster, rates: list[int], seconds: float,
                    results: Results, operator: Operator, workdir: Path, profile: bool) -> None:
    """The measured churn runs over bench-1000, then a profiled one at the top rate."""
    for rate in rates:
        churn(kube, etcd, "bench-1000", rate, seconds, results, operator, workdir)
    if profile:
        churn(kube, etcd, "bench-1000", rates[-1], 10, results, operator, workdir,
              profile=True)
