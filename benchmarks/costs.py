"""What registration costs etcd: keepalives, the Go library's own cost, raw puts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.processes import wait_until
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig

from . import leases
from .harness import ROOT, SERVICE, etcd_messages, lease_count
from .report import Results


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
    c = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
    try:
        started = time.monotonic()
        [lease] = await leases.fill(c, "raw/", n, n, 60)
        seconds = time.monotonic() - started
        await c.revoke(lease)
        return n / seconds
    finally:
        await c.close()
