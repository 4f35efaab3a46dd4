"""etcd under one big lease: what a 10,000-instance service's lease costs etcd.

The operator puts every instance of a service on that service's one lease.
etcd applies a lease's revocation (or expiry) as one entry that deletes all
its keys at once, so a bigger lease means a longer apply, during which every
other write to that etcd waits. Measured here on a fresh etcd, no Kubernetes:

* the latency of a concurrent writer's puts (one at a time, as fast as they
  are answered) while a lease holding N keys is revoked, and while it expires;
* the same N keys split over leases of at most ``cap`` keys each, revoked
  together (as an operator stopping, or the service deleted, would) or
  expiring together (their TTLs run out within one keepalive of each other);
* the cost of a put attached to a lease that already holds N keys, against
  one holding none.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
from kitex_etcd_operator.writes import Put

VALUE = b'{"network":"tcp","address":"10.0.0.1:8888","weight":10,"tags":null}'
BATCH = 128


def _quantiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100) if len(samples) > 1 else samples * 99
    return {"p50_ms": q[49], "p99_ms": q[98], "max_ms": max(samples), "puts": len(samples)}


async def fill(c: EtcdClient, prefix: str, keys: int, cap: int, ttl: int) -> list[int]:
    """``keys`` keys under ``prefix``, on leases of at most ``cap`` keys each, in
    transactions of ``BATCH`` puts: the fastest way to write etcd from here."""
    leases: list[int] = []
    batch: list[Put] = []
    for i in range(keys):
        if i % cap == 0:
            leases.append(await c.grant(ttl))
        batch.append(Put(f"{prefix}{i}", VALUE, leases[-1]))
        if len(batch) == BATCH or i == keys - 1 or (i + 1) % cap == 0:
            await c.txn([], batch)
            batch = []
    return leases


async def _during(c: EtcdClient, event: Callable[[], Awaitable[object]],
                  settle: float) -> list[float]:
    """Put latencies (ms) of a writer running from just before ``event`` until
    ``settle`` seconds after it returned."""
    samples: list[float] = []
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            await c.txn([], [Put(f"writer/{i % 100}", VALUE, 0)])
            samples.append((time.perf_counter() - started) * 1000)
            i += 1

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.3)
    await event()
    await asyncio.sleep(settle)
    stop.set()
    await task
    return samples


async def _gone(c: EtcdClient, prefix: str, polls: int = 1200) -> None:
    """Until no key is left under ``prefix`` (polled: etcd says nothing when a lease expires)."""
    for _ in range(polls):
        if not (await c.get_prefix(prefix))[0]:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"keys under {prefix} still there after {polls} polls")


async def measure(endpoints: tuple[str, ...], keys: int, caps: list[int],
                  expiry_ttl: int = 3) -> dict[str, dict[str, float]]:
    writer = EtcdClient(EtcdConfig(endpoints))
    admin = EtcdClient(EtcdConfig(endpoints))
    out: dict[str, dict[str, float]] = {}
    try:
        out["baseline (no lease event)"] = _quantiles(
            await _during(writer, lambda: asyncio.sleep(0), 2.0))
        for cap in caps:
            name = f"{keys} keys, {-(-keys // cap)} lease(s) of <= {cap}"
            leases = await fill(admin, "big/", keys, cap, 600)

            async def revoke(leases: list[int] = leases) -> None:
                await asyncio.gather(*(admin.revoke(lease) for lease in leases))

            started = time.perf_counter()
            out[f"revoke: {name}"] = {**_quantiles(await _during(writer, revoke, 1.0)),
                                      "event_s": time.perf_counter() - started - 1.3}
            await fill(admin, "big/", keys, cap, expiry_ttl)

            async def expire() -> None:
                await _gone(admin, "big/")

            out[f"expiry: {name}"] = _quantiles(await _during(writer, expire, 1.0))
        # A put onto a lease of many keys, against one onto an empty lease.
        for held in (0, keys):
            lease = (await fill(admin, "held/", held, max(held, 1), 600))[0] if held \
                else await admin.grant(600)
            samples = []
            for i in range(500):
                started = time.perf_counter()
                await admin.txn([], [Put(f"probe/{i}", VALUE, lease)])
                samples.append((time.perf_counter() - started) * 1000)
            out[f"put on a lease holding {held} keys"] = _quantiles(samples)
            await admin.revoke(lease)
    finally:
        await writer.close()
        await admin.close()
    return out


def run(workdir: Path, keys: int = 10_000,
        caps: tuple[int, ...] = (10_000, 1_000)) -> dict[str, dict[str, float]]:
    """The whole experiment on an etcd of its own."""
    etcd = EtcdCluster.start(workdir / "etcd-leases")
    try:
        results = asyncio.run(measure(tuple(etcd.endpoints), keys, list(caps)))
    finally:
        etcd.stop()
    for name, r in results.items():
        print(f"  {name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"max {r['max_ms']:.1f} ms over {r['puts']:.0f} puts", flush=True)
    return results


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kitex-leases-") as tmp:
        run(Path(tmp))
