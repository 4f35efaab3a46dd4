"""The initial sync: process start to every key in etcd, for n ready pods."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import wait_until

from .harness import EtcdEvents, Operator, Profiler, etcd_count
from .report import Results


def initial_sync(kube: KubeCluster, etcd: EtcdCluster, workdir: Path, n: int, keys: int,
                 results: Results, profile: bool = False) -> Operator:
    """The operator starts beside N ready pods; until etcd holds all their keys.

    With ``profile`` it is a profiling run under py-spy, whose sampling costs
    CPU the measured runs must not lose: only the profile is kept.
    """
    puts = EtcdEvents(etcd)
    operator = Operator(kube, etcd, workdir)
    profiler = Profiler(operator.proc.pid, workdir / f"profile-initial-{n}.txt") \
        if profile else None
    t0, t0_unix = time.monotonic(), time.time()
    wait_until(lambda: operator.alive() and asyncio.run(etcd_count(etcd)) >= keys, timeout=600,
               interval=0.2, what=f"{keys} keys in etcd")
    seconds = time.monotonic() - t0
    puts.stop()
    if profiler is not None:
        results.profiles[f"initial sync of {n} pods"] = profiler.stop()
        return operator
    first, last = puts.first_put - t0_unix, puts.last_put - t0_unix
    write_phase = max(last - first, 1e-3)
    figures = initial_sync_figures(operator, n, seconds)
    results.initial[n] = {**figures, "write_phase_s": write_phase,
                          "write_keys_per_s": keys / write_phase, "first_put_s": first}
    print(f"  initial sync of {n}: {seconds:.1f}s (first put after {first:.1f}s, "
          f"writes {write_phase:.2f}s), {figures['etcd_requests']:.0f} etcd requests, "
          f"/readyz after {figures['readyz_s']:.2f}s, "
          f"peak RSS {operator.peak_rss / 2**20:.0f} MiB", flush=True)
    return operator


def initial_sync_figures(operator: Operator, n: int, seconds: float) -> dict[str, float]:
    """What every initial sync reports, once etcd holds all keys ``seconds`` after start."""
    return {"seconds": seconds,
            "etcd_requests": operator.metric("kitex_etcd_operator_etcd_operations_total"),
            "peak_rss_mib": operator.peak_rss / 2**20, "keys_per_s": n / seconds,
            "readyz_s": operator.readyz_s, "cpu_s": operator.cpu_seconds()}
