"""The diff between what Kubernetes wants and what etcd holds, as guarded writes.

Pure: given the desired values of one binding and the keys etcd holds under
its range, decide the minimal puts and deletes, each carrying the compare
that makes it safe, and which keys we must leave alone because we cannot
prove they are ours. ``registry.py`` applies the plan; tests exercise every
rule here without etcd.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .model import service_range
from .writes import Delete, Put, Write

# etcd's default --max-txn-ops. A transaction holds as many compares as
# operations here, and both are limited by it.
MAX_TXN_OPS = 128
# etcd refuses a request above --max-request-bytes (1.5 MiB by default). A
# transaction is kept well under it, so that no batch of large values can
# freeze a service: every op counts its key twice (compare and op) plus its
# value and some framing.
MAX_TXN_BYTES = 1024 * 1024
_OP_OVERHEAD = 32


class Policy(StrEnum):
    """ExternalDNS's policies: ``upsert-only`` never deletes, for cautious roll-outs."""

    SYNC = "sync"
    UPSERT_ONLY = "upsert-only"


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """One service in one etcd: the unit that owns a lease and a status."""

    etcd: str  # which etcd: its scope id (``EtcdAccess.scope``; ``endpoints.identity``)
    prefix: str
    service: str

    @property
    def range(self) -> str:
        return service_range(self.prefix, self.service)

    def __str__(self) -> str:
        return f"{self.prefix}/{self.service}"


@dataclass(frozen=True, slots=True)
class Observed:
    """A key as etcd holds it."""

    value: bytes
    lease: int


@dataclass(slots=True)
class Plan:
    """What to write, and what we saw but will not touch."""

    puts: list[Put] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # wanted keys held by someone else
    unchanged: int = 0
    withheld_deletes: int = 0  # deletes the policy or the safety cap kept back

    @property
    def ops(self) -> list[Write]:
        return [*self.puts, *self.deletes]

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)


def make_plan(desired: Mapping[str, bytes], observed: Mapping[str, Observed], *,
              lease: int, owned_leases: Collection[int],
              keys: Iterable[str] | None = None,
              policy: Policy = Policy.SYNC,
              max_deletes: int | None = None) -> Plan:
    """Diff ``desired`` against ``observed`` for the keys of one binding.

    ``keys`` narrows the diff to the keys a change touched, so that one pod's
    event costs O(1) rather than a pass over every instance of the service;
    ``None`` diffs everything (the periodic observation).

    A key is ours only if its lease is in ``owned_leases``. Ours and equal on
    the current lease: nothing to do. Ours on an older lease (adopted after a
    restart, or a TTL change): re-put on the current lease, guarded by the old
    lease, so it never disappears in between. Anyone else's: a conflict, left
    alone. ``max_deletes`` caps deletions per cycle, so that a bad read of
    Kubernetes cannot wipe a service in one go.
    """
    plan = Plan()
    candidates = set(desired) | set(observed) if keys is None else set(keys)
    for key in sorted(candidates):
        want = desired.get(key)
        have = observed.get(key)
        if want is not None:
            if have is None:
                plan.puts.append(Put(key, want, lease, expect_lease=0))
            elif have.lease not in owned_leases:
                plan.conflicts.append(key)
            elif have.value == want and have.lease == lease:
                plan.unchanged += 1
            else:
                plan.puts.append(Put(key, want, lease, expect_lease=have.lease))
        elif have is not None and have.lease in owned_leases:
            plan.deletes.append(Delete(key, expect_lease=have.lease))
    if policy is Policy.UPSERT_ONLY:
        plan.withheld_deletes, plan.deletes = len(plan.deletes), []
    elif max_deletes is not None and len(plan.deletes) > max_deletes:
        plan.withheld_deletes = len(plan.deletes) - max_deletes
        plan.deletes = plan.deletes[:max_deletes]
    return plan


def op_bytes(op: Write) -> int:
    """What one guarded op adds to a transaction's request, roughly from above."""
    value = len(op.value) if isinstance(op, Put) else 0
    return 2 * len(op.key.encode()) + value + _OP_OVERHEAD


def batches(ops: Iterable[Write], size: int = MAX_TXN_OPS,
            max_bytes: int = MAX_TXN_BYTES) -> Iterator[list[Write]]:
    """Split operations into transactions within etcd's limits on ops and on bytes."""
    batch: list[Write] = []
    used = 0
    for op in ops:
        cost = op_bytes(op)
        if batch and (len(batch) >= size or used + cost > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(op)
        used += cost
    if batch:
        yield batch
