"""``make bench``: scale, latency and cost of the operator, on the local cluster.

Prints a table and writes docs/benchmarks.md (with docs/benchmarks.png).
Everything runs on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from kubernetes import client

from kitex_devcluster.build import ensure_tools
from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster

from . import sources, tenant_noise
from .churn_rates import churn_scenarios
from .costs import go_library_cost, keepalive_cost, raw_etcd
from .harness import ROOT, Operator, ready_pods
from .initial import initial_sync
from .report import Results, report


def churn_only(profile: bool) -> None:
    results = Results()
    tools = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="kitex-bench-") as tmp:
        workdir = Path(tmp)
        kube = KubeCluster.start(tools, workdir=workdir / "kube")
        etcd = EtcdCluster.start(workdir / "etcd-churn")
        try:
            operator = initial_sync(kube, etcd, workdir, 1000, ready_pods(kube, 1000), results)
            try:
                churn_scenarios(kube, etcd, [50, 200], 20, results, operator, workdir, profile)
            finally:
                operator.stop()
        finally:
            etcd.stop()
            kube.stop()
    print(json.dumps({"churn": results.churn, "cpu": results.cpu,
                      "profiles": results.profiles}, indent=1))


def sources_scenario(kube: KubeCluster, workdir: Path, results: Results) -> None:
    """Pods vs EndpointSlices on the same readiness flips, and memory per endpoint."""
    etcd = EtcdCluster.start(workdir / "etcd-sources")
    try:
        results.sources = sources.latency(kube, etcd, Operator, workdir)
    finally:
        etcd.stop()
    results.sources["bytes_per_endpoint"] = sources.memory_per_endpoint()


def sources_only() -> None:
    """Only the sources scenario: merged into docs/benchmarks.json, the page rendered."""
    out = ROOT / "docs" / "benchmarks.md"
    results = Results.load(out.with_suffix(".json"))
    with tempfile.TemporaryDirectory(prefix="kitex-bench-") as tmp:
        kube = KubeCluster.start(ensure_tools(), workdir=Path(tmp) / "kube")
        try:
            sources_scenario(kube, Path(tmp), results)
        finally:
            kube.stop()
    report(results, out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 pods, short churn")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--churn-only", action="store_true",
                        help="1,000 pods and the churn rates; prints, writes no report")
    parser.add_argument("--sources-only", action="store_true",
                        help="pods vs EndpointSlices only, merged into the last run's report")
    parser.add_argument("--noise-only", action="store_true",
                        help="one tenant's malformed pods against the others' write cycles "
                             "only (in process), merged into the last run's report")
    parser.add_argument("--render", action="store_true",
                        help="write docs/benchmarks.md again from docs/benchmarks.json")
    parser.add_argument("--large", action="store_true",
                        help="10,000 then 100,000 pods over 1,000 services (make bench-large); "
                             "writes docs/benchmarks-large.json and its section of the page")
    parser.add_argument("--large-reduced", metavar="SIZES",
                        help="a reduced --large run: these pod counts (e.g. 100,10000), no "
                             "churn, no lease scenario; docs/benchmarks-large-reduced.json "
                             "and its part of the large section")
    args = parser.parse_args()
    out = ROOT / "docs" / "benchmarks.md"
    if args.large_reduced:
        from . import large

        sizes = tuple(int(n) for n in args.large_reduced.split(","))
        large.run(out.with_name("benchmarks-large-reduced.json"), sizes=sizes, rates=(),
                  with_leases=False)
        args.render = True
    if args.large:
        from . import large

        large.run(out.with_name("benchmarks-large.json"))
        args.render = True
    if args.render:
        report(Results.load(out.with_suffix(".json")), out)
        print(out.read_text())
        return
    if args.churn_only:
        churn_only(not args.no_profile)
        return
    if args.sources_only:
        sources_only()
        return
    if args.noise_only:
        results = Results.load(out.with_suffix(".json"))
        results.noise = tenant_noise.measure()
        report(results, out)
        return
    sizes = [100, 1000] if args.quick else [100, 1000, 5000, 10000]
    rates = [50] if args.quick else [50, 200]
    go_sizes = [100] if args.quick else [100, 10000]
    profile = not args.no_profile
    results = Results()
    tools = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="kitex-bench-") as tmp:
        workdir = Path(tmp)
        kube = KubeCluster.start(tools, workdir=workdir / "kube")
        try:
            kube.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
            for n in sizes:
                keys = ready_pods(kube, n)
                etcd = EtcdCluster.start(workdir / f"etcd-{n}")
                try:
                    operator = initial_sync(kube, etcd, workdir, n, keys, results)
                    try:
                        if n == 1000:
                            churn_scenarios(kube, etcd, rates, 10 if args.quick else 20,
                                            results, operator, workdir, profile)
                        if n in (sizes[0], sizes[-1]):
                            keepalive_cost(etcd, n, 30 if args.quick else 60, results,
                                           "operator, one lease per service")
                    finally:
                        operator.stop()
                    if n == sizes[-1]:
                        results.raw_etcd_keys_per_s = asyncio.run(raw_etcd(etcd, n))
                        print(f"  raw etcd: {results.raw_etcd_keys_per_s:.0f} keys/s", flush=True)
                finally:
                    etcd.stop()
                if profile and n == sizes[-1]:
                    # Profiled apart: py-spy's sampling would slow the measured run.
                    etcd = EtcdCluster.start(workdir / f"etcd-{n}-profile")
                    try:
                        initial_sync(kube, etcd, workdir, n, keys, results, profile=True).stop()
                    finally:
                        etcd.stop()
                client.CoreV1Api(kube.api_client()).delete_namespace(f"bench-{n}")
            sources_scenario(kube, workdir, results)
            results.noise = tenant_noise.measure()
        finally:
            kube.stop()
        for n in go_sizes:
            go_library_cost(workdir, n, 30 if args.quick else 60, results)
    report(results, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
