"""``make bench``: scale, latency and cost of the operator, on the local cluster.

Prints a table and writes docs/benchmarks.md (with docs/benchmarks.png).
Everything runs on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from kitex_devcluster.build import ensure_tools
from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import free_port, wait_until
from kitex_etcd_operator.etcd import EtcdClient, EtcdTarget

from . import generator, leases, sources
from .report import Results, report

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "kitex/registry-etcd"
SERVICE = "bench"
ANN = {"kitex.cloudwego.io/service": SERVICE, "kitex.cloudwego.io/port": "8888"}


class Operator:
    """The operator as a process, with its peak RSS sampled."""

    def __init__(self, kube: KubeCluster, etcd: EtcdCluster, workdir: Path) -> None:
        self.port = free_port()
        self.log = (workdir / f"operator-{self.port}.log").open("wb")
        self.started = time.monotonic()
        self.readyz_s = float("nan")  # from the process start to /readyz answering 200
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
        while not self._stop.wait(0.02 if self.readyz_s != self.readyz_s else 0.2):
            try:
                self.peak_rss = max(self.peak_rss, process.memory_info().rss)
            except psutil.Error:
                return
            if self.readyz_s != self.readyz_s and self._ready():
                self.readyz_s = time.monotonic() - self.started

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                        timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

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


def etcd_messages(etcd: EtcdCluster, method: str) -> float:
    """gRPC messages etcd received for ``method``, from etcd's own /metrics: the same
    yardstick for the operator and for the Go library."""
    total = 0.0
    for endpoint in etcd.endpoints:
        with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("grpc_server_msg_received_total{") \
                        and f'grpc_method="{method}"' in line:
                    total += float(line.rsplit(" ", 1)[1])
    return total


def lease_count(etcd: EtcdCluster) -> int:
    return len(json.loads(etcd.etcdctl("lease", "list", "-w", "json")).get("leases") or [])


class Profiler:
    """py-spy sampling the operator; the hottest functions by own time."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        if shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists():
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            self.proc = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
                 "--output", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, top: int = 12) -> list[tuple[str, float]]:
        if self.proc is None:
            return []
        self.proc.send_signal(2)  # py-spy writes its output on SIGINT
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return []
        own: dict[str, int] = {}
        total = 0
        for line in self.out.read_text().splitlines() if self.out.exists() else []:
            stack, _, count = line.rpartition(" ")
            frame = stack.rsplit(";", 1)[-1]
            own[frame] = own.get(frame, 0) + int(count)
            total += int(count)
        ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
        return [(frame, 100 * n / total) for frame, n in ranked] if total else []


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        try:
            times = proc.cpu_times()
            out[name] = times.user + times.system
        except psutil.Error:
            out[name] = 0.0
    return out


def processes(kube: KubeCluster, etcd: EtcdCluster,
              operator: Operator) -> dict[str, psutil.Process]:
    """Every process of the run, by role: where the CPU goes during churn."""
    procs = {"operator": psutil.Process(operator.proc.pid),
             "benchmark process (its etcd watch)": psutil.Process()}
    for proc in kube.processes:
        procs[proc.name] = psutil.Process(proc.pid)
    if kube.etcd is not None:
        for member in kube.etcd.members:
            if member.process is not None:
                procs["etcd of kube-apiserver"] = psutil.Process(member.process.pid)
    for member in etcd.members:
        if member.process is not None:
            procs["registry etcd"] = psutil.Process(member.process.pid)
    return procs


def histogram(operator: Operator, name: str) -> dict[float, float]:
    """Cumulative bucket counts of one histogram of the operator (le -> count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of what was observed in between."""
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    for le in sorted(delta):
        if total and delta[le] >= q * total:
            return le
    return float("nan")


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


def ready_pods(kube: KubeCluster, n: int) -> int:
    """N ready annotated pods in namespace bench-N; returns their distinct IPs."""
    core = client.CoreV1Api(kube.api_client())
    namespace = f"bench-{n}"
    core.create_namespace({"metadata": {"name": namespace}})
    started = time.monotonic()
    create_pods(core, namespace, kube.node_names, n)
    wait_until(lambda: ready_ips(core, namespace)[0] == n, timeout=900, interval=2,
               what=f"{n} ready pods")
    keys = ready_ips(core, namespace)[1]
    print(f"  {n} ready pods ({keys} distinct IPs) created in "
          f"{time.monotonic() - started:.0f}s", flush=True)
    return keys


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


class EtcdEvents:
    """Every event under the bench prefix, as etcd's watch delivers it.

    ``seen`` maps "<key>|PUT or DELETE" to the unix times of its events: the
    clock the Go load generator stamps its changes with.
    """

    def __init__(self, etcd: EtcdCluster, prefix: str = f"{PREFIX}/{SERVICE}/") -> None:
        self.prefix = prefix
        self.seen: dict[str, list[float]] = {}
        self.first_put = self.last_put = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._task = self._loop.create_task(self._watch(etcd))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        # Let gRPC finish the cancelled call. The loop is left open: grpcio's poller
        # may still post to it, and a closed loop makes that a traceback.
        self._loop.run_until_complete(asyncio.sleep(0.2))

    async def _watch(self, etcd: EtcdCluster) -> None:
        c = EtcdClient(EtcdTarget(tuple(etcd.endpoints)))
        try:
            # The revision to watch from, read where no key lives: the prefix may hold 100,000.
            _, revision = await c.get_prefix("bench-revision-only/")
            stream = c.watch_prefix(self.prefix, revision + 1)
            self._ready.set()
            async for event in stream:
                now = time.time()
                self.seen.setdefault(f"{event.key}|{event.kind}", []).append(now)
                if event.kind == "PUT":
                    self.first_put = self.first_put or now
                    self.last_put = now
        finally:
            await c.close()

    def stop(self) -> None:
        """End the watch now, before its etcd goes away."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)


def churn(kube: KubeCluster, etcd: EtcdCluster, namespace: str, rate: int, seconds: float,
          results: Results, operator: Operator, workdir: Path, profile: bool = False, *,
          selector: str = "app=bench", every_service: bool = False) -> None:
    """Pods turn ready, not ready, or are deleted at ``rate`` events per second.

    With ``profile`` it is a profiling run: only the py-spy profile is kept.

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

    def started() -> None:
        window["cpu"] = cpu_seconds(procs)
        window["hist"] = histogram(operator, "kitex_etcd_operator_change_to_etcd_seconds")

    def finished() -> None:
        window["cpu_after"] = cpu_seconds(procs)

    run = generator.run(kube.kubeconfig, namespace, rate, int(rate * seconds),
                        f"{PREFIX}/{SERVICE}/", 8888, started, finished, selector=selector,
                        registry_prefix=PREFIX if every_service else "")
    events_sent = sum(map(len, run.changes.values()))
    achieved = events_sent / run.wall
    wait_until(lambda: all(len(events.seen.get(k, [])) >= len(v)
                           for k, v in run.changes.items()) or None,
               timeout=120, interval=0.5, what="every change seen in etcd")
    events.stop()
    if profiler is not None:
        results.profiles[f"churn at {rate}/s"] = profiler.stop()
        return
    pairs = [(change, seen) for k, times in run.changes.items()
             for change, seen in zip(times, events.seen[k], strict=False)]
    # From the request going out: an upper bound, the API server's own handling included.
    q = statistics.quantiles([(seen - sent) * 1000 for (sent, _), seen in pairs], n=100)
    api = statistics.quantiles([(t - sent) * 1000 for (sent, t), _ in pairs], n=100)
    hist_after = histogram(operator, "kitex_etcd_operator_change_to_etcd_seconds")
    own_p50, own_p99 = (bucket_quantile(window["hist"], hist_after, x) * 1000
                        for x in (.5, .99))
    cpu = {name: 100 * (window["cpu_after"][name] - window["cpu"][name]) / run.wall
           for name in procs}
    cpu["load generator (Go)"] = 100 * run.cpu_seconds / run.wall
    results.churn[rate] = {"events": events_sent,
                           "achieved_rate": achieved, "p50_ms": q[49], "p95_ms": q[94],
                           "p99_ms": q[98], "own_p50_ms": own_p50, "own_p99_ms": own_p99,
                           "api_p50_ms": api[49], "api_p99_ms": api[98],
                           "errors": run.errors}
    results.cpu[rate] = cpu
    print(f"  churn {rate}/s (achieved {achieved:.0f}/s, {run.errors} refused): "
          f"p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, p99 {q[98]:.0f} ms; the API server's "
          f"answer p50 {api[49]:.0f} ms, p99 {api[98]:.0f} ms; the operator's own "
          f"share: p50 <= {own_p50:.0f} ms, p99 <= {own_p99:.0f} ms; CPU % of one core: "
          + ", ".join(f"{name} {share:.0f}" for name, share in
                      sorted(cpu.items(), key=lambda kv: -kv[1])), flush=True)


def churn_scenarios(kube: KubeCluster, etcd: EtcdCluster, rates: list[int], seconds: float,
                    results: Results, operator: Operator, workdir: Path, profile: bool) -> None:
    """The measured churn runs over bench-1000, then a profiled one at the top rate."""
    for rate in rates:
        churn(kube, etcd, "bench-1000", rate, seconds, results, operator, workdir)
    if profile:
        churn(kube, etcd, "bench-1000", rates[-1], 10, results, operator, workdir,
              profile=True)


def keepalive_cost(etcd: EtcdCluster, n: int, window: float, results: Results,
                   writer: str) -> None:
    """Keepalive messages etcd received per minute over ``window``, and leases held."""
    before = etcd_messages(etcd, "LeaseKeepAlive")
    time.sleep(window)  # a measurement window, not a wait for a condition
    per_min = (etcd_messages(etcd, "LeaseKeepAlive") - before) * 60 / window
    leases = lease_count(etcd)
    results.keepalive[f"{writer}, {n} instances"] = {"keepalives_per_min": per_min,
                                                     "leases": leases}
    print(f"  {writer} with {n} instances: {per_min:.0f} keepalives/min, {leases} lease(s)",
          flush=True)


def go_library_cost(workdir: Path, n: int, window: float, results: Results) -> None:
    """N instances registered by kitex-contrib/registry-etcd itself (go-register)."""
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    import programs

    bindir = programs.ensure_built()
    etcd = EtcdCluster.start(workdir / f"etcd-go-{n}")
    out = workdir / f"go-register-{n}.jsonl"
    log = out.open("wb")
    try:
        proc = subprocess.Popen(
            [str(bindir / "go-register"), "--etcd", ",".join(etcd.endpoints),
             "--service", SERVICE, "--addr", "10.0.0.1:10000", "--count", str(n)],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()

            def registered() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"go-register exited with {proc.returncode}: see {out}")
                return '"event":"ready"' in out.read_text(errors="replace")[-4096:]

            wait_until(registered, timeout=900, interval=1, what=f"{n} Go registrations")
            print(f"  registry-etcd (Go): {n} instances registered in "
                  f"{time.monotonic() - started:.1f}s", flush=True)
            keepalive_cost(etcd, n, window, results, "registry-etcd (Go), one per instance")
        finally:
            proc.terminate()
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        log.close()
        etcd.stop()


async def raw_etcd(etcd: EtcdCluster, n: int) -> float:
    """Keys a second etcd takes on this machine, batched as fast as it goes."""
    c = EtcdClient(EtcdTarget(tuple(etcd.endpoints)))
    try:
        started = time.monotonic()
        [lease] = await leases.fill(c, "raw/", n, n, 60)
        seconds = time.monotonic() - started
        await c.revoke(lease)
        return n / seconds
    finally:
        await c.close()


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
    parser.add_argument("--render", action="store_true",
                        help="write docs/benchmarks.md again from docs/benchmarks.json")
    parser.add_argument("--large", action="store_true",
                        help="10,000 then 100,000 pods over 1,000 services (make bench-large); "
                             "writes docs/benchmarks-large.json and its section of the page")
    args = parser.parse_args()
    out = ROOT / "docs" / "benchmarks.md"
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
        finally:
            kube.stop()
        for n in go_sizes:
            go_library_cost(workdir, n, 30 if args.quick else 60, results)
    report(results, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
