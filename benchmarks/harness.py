"""What every benchmark stands on: the operator as a measured process, profiles,
CPU and memory readings, Prometheus histograms, pods created and counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.kube import KubeCluster
from kitex_devcluster.processes import free_port, wait_until
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "kitex/registry-etcd"
SERVICE = "bench"
ANN = {"kitex.cloudwego.io/service": SERVICE, "kitex.cloudwego.io/port": "8888"}


def compile_operator() -> None:
    """Bytecode for the operator's modules, as the image has it (pip compiles a wheel
    at install). The editable install of a checkout has none, and with
    PYTHONDONTWRITEBYTECODE set every start compiled all of them again: about
    0.1 s of the start-up measured, which no deployment pays."""
    import compileall

    import kitex_etcd_operator

    compileall.compile_dir(str(Path(kitex_etcd_operator.__file__).parent), quiet=1)


class Operator:
    """The operator as a process, with its peak RSS sampled."""

    def __init__(self, kube: KubeCluster, etcd: EtcdCluster, workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        compile_operator()
        self.port = free_port()
        self.log = (workdir / f"operator-{self.port}.log").open("wb")
        self.started = time.monotonic()
        self.readyz_s = float("nan")  # from the process start to /readyz answering 200
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kitex_etcd_operator", "run", "--kubeconfig",
             str(kube.kubeconfig), "--etcd-endpoints", ",".join(etcd.endpoints),
             "--health-port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
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


def control_plane(kube: KubeCluster) -> dict[str, psutil.Process]:
    """The cluster's own processes, by role: the API server, its etcd, kwok, the
    controllers."""
    procs = {proc.name: psutil.Process(proc.pid) for proc in kube.processes}
    if kube.etcd is not None:
        for member in kube.etcd.members:
            if member.process is not None:
                procs["etcd of kube-apiserver"] = psutil.Process(member.process.pid)
    return procs


def processes(kube: KubeCluster, etcd: EtcdCluster,
              operator: Operator) -> dict[str, psutil.Process]:
    """Every process of the run, by role: where the CPU goes during churn."""
    procs = {"operator": psutil.Process(operator.proc.pid),
             "benchmark process (its etcd watch)": psutil.Process(), **control_plane(kube)}
    for member in etcd.members:
        if member.process is not None:
            procs["registry etcd"] = psutil.Process(member.process.pid)
    return procs


def settle(kube: KubeCluster, busy: float = 0.5, window: float = 2.0,
           timeout: float = 120.0) -> float:
    """Wait for the control plane to be quiet: its processes (the API server, its etcd,
    kwok, the controllers) using less than ``busy`` of a core over ``window``; the
    seconds waited. A list of 100,000 pods leaves the API server collecting garbage
    for seconds after it: a sync started then was 14 to 20 s, against 11 to 12 s
    on a quiet one. Each list and each sync starts on a quiet cluster."""
    procs = control_plane(kube)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_seconds(procs).values())
        time.sleep(window)
        if sum(cpu_seconds(procs).values()) - before < busy * window:
            break
    return time.monotonic() - started


OWN_CORE = ("operator", "registry etcd")  # the roles ``isolated`` gives a core of their own


def _pin(proc: psutil.Process, cpus: set[int]) -> None:
    """Every thread of ``proc`` (affinity is per thread; new ones inherit their creator's)."""
    with contextlib.suppress(psutil.Error):
        for thread in proc.threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(thread.id, cpus)


@contextlib.contextmanager
def isolated(procs: dict[str, psutil.Process]) -> Iterator[bool]:
    """The operator and its etcd on the last core, every other process (this one and
    the load generator it starts included) on the others, as in a cluster where the
    operator does not run beside the API server. On this 2-core machine the API
    server alone takes a core during churn, and the operator's share measured beside
    it was mostly waiting for a CPU. Yields False (nothing pinned) on one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    own, rest = {cpus[-1]}, set(cpus[:-1])
    everyone = [*procs.values(), psutil.Process()]
    try:
        for name, proc in procs.items():
            _pin(proc, own if name in OWN_CORE else rest)
        _pin(psutil.Process(), rest)
        yield True
    finally:
        for proc in everyone:
            _pin(proc, set(cpus))


CPU_CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, as on this machine
# The CPU each role would request as a pod of a node with this machine's cores, in
# millicores: kubeadm's requests for the control plane's static pods, and the
# operator's as docs/install.md advises at 100,000 pods. kwok (standing for the
# nodes' kubelets) and this process with the load generator it starts (standing for
# the users) share what the node has left: every core requested, none spare.
REQUESTS = {"kube-apiserver": 250, "kube-controller-manager": 200, "kube-scheduler": 100,
            "etcd of kube-apiserver": 100, "operator": 250, "registry etcd": 100}


def _cgroup_move(group: Path, pid: int) -> None:
    """Every thread of ``pid`` into ``group`` (cgroup v1 moves a thread group through
    cgroup.procs; threads made later, and children, start where their creator is)."""
    with contextlib.suppress(OSError):
        (group / "cgroup.procs").write_text(f"{pid}\n")


@contextlib.contextmanager
def weighted(procs: dict[str, psutil.Process]) -> Iterator[bool]:
    """Every process on the shared cores in a CPU cgroup of its own, weighted by the
    CPU it would request as a pod, as the kubelet weights a node's pods
    (cpu.shares = millicores * 1024 / 1000). Started as they are, each process leads
    a session of its own, and the kernel's autogroups weigh the sessions alike: the
    API server, which uses most, weighs what the operator does. Weighted, it is the
    question whether a node's weights would spare the operator the waits for a CPU
    (by hand, at 10,000 pods: they did not). Yields False (nothing moved) where the
    cpu controller cannot be written."""
    base = CPU_CGROUP / f"kitex-bench-{os.getpid()}"
    try:
        base.mkdir()
    except OSError:
        yield False
        return
    cores = len(os.sched_getaffinity(0))
    requests = {name: REQUESTS.get(name, 0) for name in procs}
    others = [name for name, millis in requests.items() if not millis]
    left = max(cores * 1000 - sum(requests.values()), 2 * len(others))
    groups: list[Path] = []
    try:
        for index, (name, proc) in enumerate(procs.items()):
            millis = requests[name] or left // len(others)
            group = base / f"role-{index}"
            group.mkdir()
            groups.append(group)
            (group / "cpu.shares").write_text(f"{max(2, millis * 1024 // 1000)}\n")
            _cgroup_move(group, proc.pid)
        yield True
    finally:
        for proc in procs.values():
            _cgroup_move(CPU_CGROUP, proc.pid)
        for group in groups:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    _cgroup_move(CPU_CGROUP, int(pid))  # the load generator's, if alive
                group.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


PLACEMENTS = ("shared", "own core", "weighted")


def placed(procs: dict[str, psutil.Process],
           placement: str) -> contextlib.AbstractContextManager[bool]:
    """The processes as ``placement`` puts them on this machine's cores: beside one
    another as they were started ("shared"), ``isolated`` ("own core") or ``weighted``."""
    if placement == "own core":
        return isolated(procs)
    if placement == "weighted":
        return weighted(procs)
    return contextlib.nullcontext(False)


def histograms(operator: Operator | str,
               wanted: dict[str, tuple[str, str]]) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts (le -> count) of the operator's histograms (or those of
    the /metrics at the URL given), by a name of the caller's for each (metric, label)
    pair; ``label`` (``phase="view"``) picks the series that carries it. A counter
    (a name ending in ``_total``) reads as a histogram of one bucket; the series that
    carry the label are summed (a collection's pauses over its three generations).
    One scrape for all of them: rendering /metrics with 1,000 services takes tens of
    milliseconds of the operator's CPU, and scrapes at the edges of a window delayed the
    very changes being measured."""
    url = operator if isinstance(operator, str) else \
        f"http://127.0.0.1:{operator.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    found: dict[str, dict[float, float]] = {key: {} for key in wanted}
    for line in text.splitlines():
        for key, (name, label) in wanted.items():
            if name.endswith("_total"):
                if line.startswith((f"{name}{{", f"{name} ")) and label in line:
                    total = found[key].get(float("inf"), 0.0)
                    found[key][float("inf")] = total + float(line.rsplit(" ", 1)[1])
            elif line.startswith(f"{name}_bucket{{") and label in line:
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                found[key][bound] = found[key].get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


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
    c = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
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
        c = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
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
