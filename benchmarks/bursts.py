"""A burst of changes to many services at once: the time until etcd has acknowledged the
last one, with small transactions sharing etcd requests and with one request each.

A busy API server hands a watch dozens of pod changes in one read, and the workers of
as many services each write a small transaction at once: what the last of them waits
for is the tail of the operator's share of churn. No Kubernetes here: the registry
(the layer the workers call) against a fresh etcd on this machine's disk, the process
and etcd on one core, as in ``harness.isolated``.

    python -m benchmarks.bursts [--services 200] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig, coalesce
from kitex_etcd_operator.model import Instance, instance_key
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.registry import BindingRegistry

PREFIX = "kitex/registry-etcd"
INSTANCES = 10  # a service


@contextmanager
def one_request_each() -> Iterator[None]:
    """Every transaction in a request of its own, as before requests were shared."""
    shared = coalesce.TxnCoalescer.txn

    def alone(self: coalesce.TxnCoalescer, compares: Sequence[Any],
              ops: Sequence[Any]) -> Awaitable[bool]:
        return self._send(compares, ops)

    coalesce.TxnCoalescer.txn = alone  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        coalesce.TxnCoalescer.txn = shared  # type: ignore[method-assign]


def _desired(service: str, weight: int) -> dict[str, bytes]:
    instances = [Instance.make(f"10.1.{i // 250}.{i % 250 + 1}", 8888,
                               weight=weight if i == 0 else 10) for i in range(INSTANCES)]
    return {instance_key(PREFIX, service, i.address): i.encode() for i in instances}


async def _measure(registry: BindingRegistry, bindings: list[Binding], size: int,
                   rounds: int, seed: int) -> dict[str, float]:
    """``rounds`` bursts of ``size`` services, each changing one instance's weight."""
    rng = random.Random(seed)
    walls, cpus = [], []
    for r in range(rounds):
        burst = rng.sample(bindings, size)
        weight = 11 + r

        async def change(binding: Binding, weight: int = weight) -> None:
            desired = _desired(binding.service, weight)
            await registry.sync(binding, desired, ttl=60,
                                keys={instance_key(PREFIX, binding.service,
                                                   f"10.1.0.1:{8888}")})

        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(change(b) for b in burst))
        walls.append((time.monotonic() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return {"last_ms_median": statistics.median(walls), "last_ms_max": max(walls),
            "cpu_ms_median": statistics.median(cpus)}


async def _run(endpoints: Sequence[str], services: int, rounds: int,
               report: Callable[[str], None]) -> None:
    client = EtcdClient(EtcdConfig(tuple(endpoints)))
    registry = BindingRegistry(client, cluster_id="bursts",
                               owner_prefix="kitex-etcd-operator/owners")
    await registry.load_ownership()
    bindings = [Binding("default", PREFIX, f"svc-{i:04d}") for i in range(services)]
    await asyncio.gather(*(registry.sync(b, _desired(b.service, 10), ttl=60)
                           for b in bindings))
    for size in (10, 50):
        for name, mode in (("one request each", one_request_each), ("shared", nullcontext)):
            with mode():
                figures = await _measure(registry, bindings, size, rounds, seed=size)
            report(f"  burst of {size} services, {name}: the last acknowledged after "
                   f"{figures['last_ms_median']:.1f} ms (median of {rounds}; max "
                   f"{figures['last_ms_max']:.1f}), {figures['cpu_ms_median']:.1f} ms of "
                   "this process's CPU")
    await registry.close()
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # etcd, started next, inherits the one core
    with tempfile.TemporaryDirectory(prefix="kitex-bursts-") as tmp:
        etcd = EtcdCluster.start(Path(tmp) / "etcd")
        try:
            asyncio.run(_run(etcd.endpoints, args.services, args.rounds,
                             lambda line: print(line, flush=True)))
        finally:
            etcd.stop()


if __name__ == "__main__":
    main()
