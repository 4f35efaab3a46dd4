"""Two or more settings of the operator, alternated on one cluster: which moves the
operator's share of churn (``python -m benchmarks.ab``; figures printed, nothing kept).

One window of churn is a noisy sample here (the rounds of docs/benchmarks.md
differ by the cluster and the moment more than by the code), so each variant
runs in turn, ``--rounds`` times, on the same pods: each a fresh etcd and a
fresh operator with its environment, its initial sync, then churn at each rate
with the operator and its etcd on a core of their own (or as ``--placement``
says). Two checkouts compare as two variants ``PYTHONPATH=<checkout>/operator``
(compile both first: a start that compiles the modules is slower). Each
variant's sync time and peak RSS are printed too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kitex_devcluster.build import ensure_tools
from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import wait_until

from . import kubepods
from .churn_rates import churn
from .harness import PLACEMENTS, Operator, settle
from .large import NAMESPACE, NODES, grow, keys_in_etcd
from .report import Results


def _variant(text: str) -> dict[str, str]:
    """``NAME=value,NAME=value`` (or ``-`` for none): the operator's environment."""
    if text == "-":
        return {}
    return dict(item.split("=", 1) for item in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab")
    parser.add_argument("variants", nargs="+", type=_variant,
                        help="each the operator's environment: NAME=value,... or -")
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--rates", default="50,100,50", help="churn rates; '' for none")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--placements", default="own core",
                        help="where the processes run during churn, each in turn at each "
                        f"rate (harness.placed): some of {', '.join(PLACEMENTS)}")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r]
    placements = args.placements.split(",")
    if not set(placements) <= set(PLACEMENTS):
        parser.error(f"--placements: some of {', '.join(PLACEMENTS)}")
    runs = [(i, where) for i in range(len(args.variants)) for where in placements]
    shares: dict[tuple[int, str], list[float]] = {run: [] for run in runs}
    syncs: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(args.variants))}
    with tempfile.TemporaryDirectory(prefix="kitex-bench-ab-") as tmp:
        workdir = Path(tmp)
        kube = KubeCluster.start(ensure_tools(), workdir=workdir / "kube", nodes=NODES)
        try:
            kube.kubectl("create", "namespace", NAMESPACE)
            grow(kube, 0, args.pods)
            for round_ in range(args.rounds):
                for i, env in enumerate(args.variants):
                    print(f"round {round_ + 1}, variant {i}: {env}", flush=True)
                    settle(kube)
                    keys = kubepods.list_all(kube.kubeconfig)["keys"]  # the churn deletes pods
                    etcd = EtcdCluster.start(workdir / f"etcd-{round_}-{i}",
                                             extra_args=["--metrics=extensive"])
                    operator = Operator(kube, etcd, workdir, env=env)
                    try:
                        wait_until(lambda op=operator, db=etcd, want=keys:  # type: ignore[misc]
                                   op.alive() and keys_in_etcd(db) >= want,
                                   timeout=900, interval=0.25, what=f"{keys} keys in etcd")
                        synced = time.monotonic() - operator.started
                        print(f"  synced {keys} keys in {synced:.1f} s, peak RSS "
                              f"{operator.peak_rss / 2**20:.0f} MiB", flush=True)
                        syncs[i].append((synced, operator.peak_rss / 2**20))
                        for rate in rates:
                            for where in placements:
                                results = Results()
                                churn(kube, etcd, NAMESPACE, rate, args.seconds, results,
                                      operator, workdir, selector="app=bench-large",
                                      every_service=True, placement=where)
                                shares[i, where].append(results.churn[rate]["own_p99_ms"])
                    finally:
                        operator.stop()
                        etcd.stop()
        finally:
            kube.stop()
    for (i, where), p99s in shares.items():
        median = statistics.median(p99s) if p99s else float("nan")
        print(f"variant {i} {args.variants[i]} ({where}): the share's p99 by window {p99s} "
              f"ms, median {median:g}; sync s and peak RSS MiB {syncs[i]}", flush=True)


if __name__ == "__main__":
    main()
