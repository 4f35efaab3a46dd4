"""``make bench``: scale, latency and cost of the operator, on the local cluster.

Prints a table and writes docs/benchmarks.md (with docs/benchmarks.png).
Everything runs on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from kitex_etcd_operator.devcluster.build import ensure_tools
from kitex_etcd_operator.devcluster.etcd import EtcdCluster
from kitex_etcd_operator.devcluster.kube import KubeCluster
from kitex_etcd_operator.devcluster.processes import free_port, wait_until
from kitex_etcd_operator.etcd import EtcdClient, EtcdTarget, PutOp

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "kitex/registry-etcd"
SERVICE = "bench"
ANN = {"kitex.cloudwego.io/service": SERVICE, "kitex.cloudwego.io/port": "8888"}


@dataclass
class Results:
    initial: dict[int, dict[str, float]] = field(default_factory=dict)
    churn: dict[int, dict[str, float]] = field(default_factory=dict)
    keepalive: dict[str, dict[str, float]] = field(default_factory=dict)
    raw_etcd_keys_per_s: float = 0.0


class Operator:
    """The operator as a process, with its peak RSS sampled."""

    def __init__(self, kube: KubeCluster, etcd: EtcdCluster, workdir: Path) -> None:
        self.port = free_port()
        self.log = (workdir / f"operator-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kitex_etcd_operator", "run", "--kubeconfig",
             str(kube.kubeconfig), "--etcd-endpoints", ",".join(etcd.endpoints),
             "--health-port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        process = psutil.Process(self.proc.pid)
        while not self._stop.wait(0.2):
            try:
                self.peak_rss = max(self.peak_rss, process.memory_info().rss)
            except psutil.Error:
                return

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.proc.returncode}; "
                               f"see {self.log.name}")
        return True

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def create_pods(core: Any, namespace: str, nodes: list[str], count: int) -> None:
    def one(i: int) -> None:
        core.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "labels": {"app": "bench"}, "annotations": ANN},
            "spec": {"nodeName": nodes[i % len(nodes)],
                     "containers": [{"name": "c", "image": "bench/kitex"}]}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def ready_ips(core: Any, namespace: str) -> tuple[int, int]:
    """(ready pods, distinct IPs among them): kwok may hand one IP to two pods."""
    pods = core.list_namespaced_pod(namespace, label_selector="app=bench", limit=20000).items
    ips = [p.status.pod_ip for p in pods if p.status.pod_ip and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return len(ips), len(set(ips))


async def etcd_count(etcd: EtcdCluster) -> int:
    c = EtcdClient(EtcdTarget(tuple(etcd.endpoints)))
    try:
        kvs, _ = await c.get_prefix(f"{PREFIX}/{SERVICE}/")
        return len(kvs)
    finally:
        await c.close()


def initial_sync(kube: KubeCluster, etcd: EtcdCluster, workdir: Path, n: int,
                 results: Results) -> Operator:
    """N ready annotated pods exist; the operator starts; until etcd holds all N."""
    api = kube.api_client()
    core = client.CoreV1Api(api)
    namespace = f"bench-{n}"
    core.create_namespace({"metadata": {"name": namespace}})
    started = time.monotonic()
    create_pods(core, namespace, kube.node_names, n)
    wait_until(lambda: ready_ips(core, namespace)[0] == n, timeout=900, interval=2,
               what=f"{n} ready pods")
    keys = ready_ips(core, namespace)[1]
    print(f"  {n} ready pods ({keys} distinct IPs) created in "
          f"{time.monotonic() - started:.0f}s", flush=True)
    operator = Operator(kube, etcd, workdir)
    t0 = time.monotonic()
    wait_until(lambda: operator.alive() and asyncio.run(etcd_count(etcd)) >= keys, timeout=600,
               interval=0.2, what=f"{keys} keys in etcd")
    seconds = time.monotonic() - t0
    ops = operator.metric("kitex_etcd_operator_etcd_operations_total")
    results.initial[n] = {"seconds": seconds, "etcd_requests": ops,
                          "peak_rss_mib": operator.peak_rss / 2**20,
                          "keys_per_s": n / seconds}
    print(f"  initial sync of {n}: {seconds:.1f}s, {ops:.0f} etcd requests, "
          f"peak RSS {operator.peak_rss / 2**20:.0f} MiB", flush=True)
    return operator


def churn(kube: KubeCluster, etcd: EtcdCluster, namespace: str, rate: int, seconds: float,
          results: Results) -> None:
    """Flip pods' readiness at ``rate`` per second; time from the API's answer to etcd."""
    core = client.CoreV1Api(kube.api_client())
    pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app=bench").items
            if p.status.pod_ip][:2000]
    sent: dict[str, list[float]] = {}
    seen: dict[str, list[float]] = {}
    lock = threading.Lock()
    done = threading.Event()

    async def watch() -> None:
        c = EtcdClient(EtcdTarget(tuple(etcd.endpoints)))
        try:
            async for event in c.watch_prefix(f"{PREFIX}/{SERVICE}/"):
                seen.setdefault(f"{event.key}|{event.kind}", []).append(time.monotonic())
                if done.is_set():
                    return
        finally:
            await c.close()

    watcher = threading.Thread(target=lambda: asyncio.run(watch()), daemon=True)
    watcher.start()
    time.sleep(1)  # the watch is established before the first change
    total = int(rate * seconds)
    interval = 1.0 / rate

    def flip(i: int) -> None:
        pod = pods[i % len(pods)]
        ready = (i // len(pods)) % 2 == 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": [
            {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
            for t in ("Ready", "ContainersReady")]}})
        key = f"{PREFIX}/{SERVICE}/{pod.status.pod_ip}:8888|{'PUT' if ready else 'DELETE'}"
        with lock:
            sent.setdefault(key, []).append(time.monotonic())

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for i in range(total):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the load generator
            pool.submit(flip, i)
    wait_until(lambda: all(len(seen.get(k, [])) >= len(v) for k, v in sent.items()) or None,
               timeout=60, interval=0.5, what="every change seen in etcd")
    done.set()
    latencies = sorted((b - a) * 1000 for k, times in sent.items()
                       for a, b in zip(sorted(times), seen[k], strict=False))
    q = statistics.quantiles(latencies, n=100)
    achieved = total / (time.monotonic() - start)
    results.churn[rate] = {"events": total, "achieved_rate": achieved, "p50_ms": q[49],
                           "p95_ms": q[94], "p99_ms": q[98]}
    print(f"  churn {rate}/s: p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, p99 {q[98]:.0f} ms",
          flush=True)
    # Back to all ready for the next scenario.
    for pod in pods:
        core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": [
            {"type": t, "status": "True"} for t in ("Ready", "ContainersReady")]}})


def keepalive_cost(operator: Operator, etcd: EtcdCluster, n: int, window: float,
                   results: Results) -> None:
    before = operator.metric("kitex_etcd_operator_etcd_operations_total", op="keepalive")
    time.sleep(window)  # a measurement window, not a wait for a condition
    after = operator.metric("kitex_etcd_operator_etcd_operations_total", op="keepalive")
    leases = len(json.loads(etcd.etcdctl("lease", "list", "-w", "json")).get("leases") or [])
    results.keepalive[f"operator, {n} pods"] = {
        "keepalives_per_min": (after - before) * 60 / window, "leases": leases}
    # registry-etcd: one lease per instance, each refreshed every TTL/3 (60 s -> 20 s).
    results.keepalive[f"registry-etcd (Go), {n} instances (computed)"] = {
        "keepalives_per_min": n * 3, "leases": n}
    print(f"  keepalive at {n} pods: {(after - before) * 60 / window:.1f}/min, "
          f"{leases} lease(s)", flush=True)


async def raw_etcd(etcd: EtcdCluster, n: int) -> float:
    c = EtcdClient(EtcdTarget(tuple(etcd.endpoints)))
    try:
        lease = await c.grant(60)
        value = b'{"network":"tcp","address":"10.0.0.1:8888","weight":10,"tags":null}'
        started = time.monotonic()
        batch: list[PutOp] = []
        for i in range(n):
            batch.append(PutOp(f"raw/{i}", value, lease))
            if len(batch) == 128:
                await c.txn([], batch)
                batch = []
        if batch:
            await c.txn([], batch)
        seconds = time.monotonic() - started
        await c.revoke(lease)
        return n / seconds
    finally:
        await c.close()


def report(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    ns = sorted(results.initial)
    a.plot(ns, [results.initial[n]["seconds"] for n in ns], "o-", label="initial sync (s)")
    a.plot(ns, [results.initial[n]["peak_rss_mib"] / 10 for n in ns], "s--",
           label="peak RSS (x10 MiB)")
    a.set_xlabel("ready pods")
    a.legend()
    a.set_title("Initial sync")
    rates = sorted(results.churn)
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        b.plot(rates, [results.churn[r][q] for r in rates], "o-", label=q)
    b.set_xlabel("pod changes per second")
    b.set_ylabel("API server -> etcd (ms)")
    b.legend()
    b.set_title("Churn latency")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=100)
    lines = ["# Benchmarks", "",
             "`make bench` on this project's machine (2 cores, 24 GiB), everything on the "
             "same host: kube-apiserver, controller-manager, scheduler, kwok, two etcd "
             "servers, the operator and the load generator. Figures from the last run.", "",
             "![benchmarks](benchmarks.png)", "", "## Initial sync", "",
             "| ready pods | seconds | keys/s | etcd requests | peak RSS (MiB) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for n in ns:
        r = results.initial[n]
        lines.append(f"| {n} | {r['seconds']:.1f} | {r['keys_per_s']:.0f} | "
                     f"{r['etcd_requests']:.0f} | {r['peak_rss_mib']:.0f} |")
    lines += ["", "## Churn latency (pod readiness flips; API server answer -> etcd watch)",
              "", "| target rate/s | achieved/s | events | p50 ms | p95 ms | p99 ms |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rate in rates:
        r = results.churn[rate]
        lines.append(f"| {rate} | {r['achieved_rate']:.0f} | {r['events']:.0f} | "
                     f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} |")
    lines += ["", "## etcd cost", "",
              "The operator's figures are measured (its keepalive counter over the window, "
              "`etcdctl lease list`); registry-etcd's are computed from its design: one lease "
              "and one KeepAlive stream per instance, refreshed every TTL/3 (20 s at the "
              "default 60 s).", "", "| writer | keepalives/min | leases |",
              "| --- | ---: | ---: |"]
    for name, r in results.keepalive.items():
        lines.append(f"| {name} | {r['keepalives_per_min']:.0f} | {r['leases']:.0f} |")
    top = max(ns)
    ratio = results.initial[top]["keys_per_s"] / results.raw_etcd_keys_per_s
    lines += ["", "## The physical limit", "",
              f"Raw etcd writes (batched transactions of 128 puts, no Kubernetes): "
              f"{results.raw_etcd_keys_per_s:.0f} keys/s. The operator registered {top} pods "
              f"at {results.initial[top]['keys_per_s']:.0f} keys/s, {ratio:.0%} of raw etcd "
              "(its time includes reading every pod from the API server).", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="1,000 pods, short churn")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 5000, 10000]
    rates = [50] if args.quick else [50, 200]
    results = Results()
    tools = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="kitex-bench-") as tmp:
        workdir = Path(tmp)
        kube = KubeCluster.start(tools, workdir=workdir / "kube")
        try:
            kube.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
            for n in sizes:
                etcd = EtcdCluster.start(workdir / f"etcd-{n}")
                try:
                    operator = initial_sync(kube, etcd, workdir, n, results)
                    try:
                        if n == sizes[0]:
                            for rate in rates:
                                churn(kube, etcd, f"bench-{n}", rate, 10 if args.quick else 20,
                                      results)
                        if n in (sizes[0], sizes[-1]):
                            keepalive_cost(operator, etcd, n, 30 if args.quick else 60,
                                           results)
                    finally:
                        operator.stop()
                    if n == sizes[-1]:
                        results.raw_etcd_keys_per_s = asyncio.run(raw_etcd(etcd, n))
                        print(f"  raw etcd: {results.raw_etcd_keys_per_s:.0f} keys/s", flush=True)
                finally:
                    etcd.stop()
                client.CoreV1Api(kube.api_client()).delete_namespace(f"bench-{n}")
        finally:
            kube.stop()
    out = ROOT / "docs" / "benchmarks.md"
    report(results, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
