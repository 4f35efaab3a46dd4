"""One etcd's entries: ownership, leases, and applying plans.

The operator deletes or overwrites only keys it can prove it wrote. Proof is
the lease: every lease it grants gets an ownership record,
``{owner_prefix}/{cluster_id}/leases/{lease:x}``, put on that same lease, so
the record and the proof die together. After a restart the records tell which
leases are ours; their keys are adopted in place, never deleted and re-put.

One lease per binding (service), shared by all its instances: keepalive
traffic grows with services, not pods, and revoking the lease removes a
service in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from . import metrics, supervisor
from .etcd.client import EtcdClient, KeyValue
from .etcd.errors import EtcdError, EtcdLeaseNotFound
from .keepalives import KeepaliveSchedule
from .model import DEFAULT_OWNER_PREFIX
from .plan import Binding, Observed, Plan, Policy, batches, make_plan
from .ranges import RangeIndex
from .writes import Put, Write

log = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 3
SYNC_SLOTS = 64
"""Syncs in flight against one etcd at a time. An initial sync starts every service
at once: 1,000 plans and transactions in flight held ~0.9 KB a pod of peak memory
at 30,000 pods, for no speed (etcd orders the writes anyway). One etcd's slots:
a slow or unreachable etcd holds up its own services only."""


class RegistryError(Exception):
    """A failure to bring one binding in line; the message is fit for an Event."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What an ownership record says about one of our leases."""

    lease: int
    prefix: str
    service: str
    ttl: int
    owner: str = ""  # the owner group of the service name ("" in records of older versions)

    def encode(self) -> bytes:
        data: dict[str, object] = {"prefix": self.prefix, "service": self.service,
                                   "ttl": self.ttl}
        if self.owner:
            data["owner"] = self.owner
        return json.dumps(data, separators=(",", ":")).encode()


# The time the calling task's current write cycle spent waiting for etcd (a worker sets
# its accumulator once and zeroes it each cycle): splits a change's share into the
# operator's part and etcd's.
etcd_wait: ContextVar[list[float] | None] = ContextVar("etcd_wait", default=None)


class LeaseRecords(dict[int, LeaseRecord]):
    """Our ownership records by lease, also found by (prefix, service).

    A binding's sync asks for its own records several times (its leases, its
    owner, whether it is recorded): scanning all records made each of those
    O(services), and the initial sync of 1,000 services O(services^2).
    """

    def __init__(self, records: Iterable[LeaseRecord] = ()) -> None:
        super().__init__()
        self._by_service: dict[tuple[str, str], dict[int, LeaseRecord]] = {}
        # Every full sync asks which recorded ranges nest with its own: scanning the
        # records made that O(services), and with 1,000 services it was half of the
        # idle operator's CPU (the periodic checks), stalling the changes behind them.
        self._ranges = RangeIndex()
        for record in records:
            self[record.lease] = record

    def __setitem__(self, lease: int, record: LeaseRecord) -> None:
        self.pop(lease, None)
        super().__setitem__(lease, record)
        self._by_service.setdefault((record.prefix, record.service), {})[lease] = record
        self._ranges.add(Binding("", record.prefix, record.service))

    def __delitem__(self, lease: int) -> None:
        self.pop(lease)

    def pop(  # type: ignore[override]
            self, lease: int, *default: LeaseRecord | None) -> LeaseRecord | None:
        if lease not in self:
            if default:
                return default[0]
            raise KeyError(lease)
        record = super().pop(lease)
        same = self._by_service[record.prefix, record.service]
        del same[lease]
        if not same:
            del self._by_service[record.prefix, record.service]
            self._ranges.discard(Binding("", record.prefix, record.service))
        return record

    def of(self, binding: Binding) -> list[LeaseRecord]:
        """The records of ``binding``'s prefix and service."""
        return list(self._by_service.get((binding.prefix, binding.service), {}).values())

    def nesting(self, binding: Binding) -> list[tuple[str, str]]:
        """(prefix, service) of the other recorded services whose range lies inside,
        around or at ``binding``'s (``ranges_nest``), in O(depth of the range)."""
        found = self._ranges.nesting(Binding("", binding.prefix, binding.service))
        return [(b.prefix, b.service) for b in found]


@dataclass(slots=True)
class SyncResult:
    """What one sync did, for status, metrics and logs."""

    puts: int = 0
    deletes: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    withheld_deletes: int = 0
    txns: int = 0
    # A dry run's plan: what it would have written. Only then: a real sync's plan (all of
    # an initial sync's puts) would live on in the worker's last result, ~80 B a pod.
    planned: Plan | None = None

    def add(self, plan: Plan) -> None:
        self.puts += len(plan.puts)
        self.deletes += len(plan.deletes)
        self.unchanged += plan.unchanged
        self.withheld_deletes += plan.withheld_deletes


@dataclass(slots=True)
class _BindingState:
    lease: int = 0
    ttl: int = 0
    observed: dict[str, Observed] = field(default_factory=dict)
    fresh: bool = False  # observed holds a full read of the range
    # The record of a lease granted and not yet written: it goes into etcd in the
    # same transaction as the first keys on that lease (``_apply``).
    unrecorded: LeaseRecord | None = None
    granted: float = 0.0  # when ``unrecorded`` was granted (monotonic)


class BindingRegistry:
    """The bindings of one etcd, written under one cluster id."""

    def __init__(self, client: EtcdClient, *, cluster_id: str,
                 owner_prefix: str = DEFAULT_OWNER_PREFIX,
                 on_lease_lost: Callable[[Binding], Awaitable[None]] | None = None) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.owner_prefix = owner_prefix
        self.records = LeaseRecords()
        self._states: dict[Binding, _BindingState] = {}
        self._on_lease_lost = on_lease_lost
        self._keepalives = KeepaliveSchedule()
        # Leases we asked etcd to revoke without hearing it done: never written to again.
        self._revoking: set[int] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(SYNC_SLOTS)
        self.requests = 0

    def _count(self, op: str, n: int = 1) -> None:
        self.requests += n
        metrics.etcd_ops.labels(op).inc(n)

    @contextlib.contextmanager
    def _request(self, op: str) -> Iterator[None]:
        """One request to etcd: counted, and its wait timed into
        ``etcd_request_duration_seconds`` and into the cycle's ``etcd_wait``."""
        self._count(op)
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            metrics.etcd_seconds.labels(op).observe(elapsed)
            waited = etcd_wait.get()
            if waited is not None:
                waited[0] += elapsed

    # --- ownership records -------------------------------------------------

    @property
    def records_prefix(self) -> str:
        return f"{self.owner_prefix}/{self.cluster_id}/leases/"

    def record_key(self, lease: int) -> str:
        return f"{self.records_prefix}{lease:x}"

    async def load_ownership(self) -> None:
        """Learn which leases are ours, and keep them alive at once.

        Keeping them alive before Kubernetes has been read is what lets a
        restart adopt the entries without any of them expiring meanwhile.
        """
        self._count("range")
        kvs, _ = await self.client.get_prefix(self.records_prefix)
        records = LeaseRecords()
        for kv in kvs:
            record = _parse_record(kv, self.records_prefix)
            if record is not None:
                records[record.lease] = record
        self.records = records
        for lease, record in records.items():
            if lease not in self._keepalives:
                self._keepalives.adopted(lease, record.ttl)
        self._ensure_keepalive()
        log.info("Adopted %d lease(s) of cluster %s", len(records), self.cluster_id)

    def owned_leases(self, binding: Binding | None = None) -> set[int]:
        """Our leases; with ``binding``, only those recorded for its prefix and service.

        A binding may delete or overwrite only keys on its own leases. Ranges
        can nest ("a" and "a/b" under Hertz, or a prefix ending in another
        service's name): a key of ours from the inner binding is in the outer
        one's range, and must not look like a stale key of the outer one.
        """
        if binding is None:
            return set(self.records)
        return {r.lease for r in self.records.of(binding)}

    def _is_record(self, key: str) -> bool:
        """One of our ownership records: ``{records_prefix}{lease:x}``, never an instance
        key (those end in host:port), even when a binding's range happens to cover it."""
        return key.startswith(self.records_prefix) and ":" not in key[len(self.records_prefix):]

    # --- leases ------------------------------------------------------------

    def recorded_owner(self, binding: Binding) -> str | None:
        """The owner group recorded with the binding's lease(s): the claim that survives
        restarts and leader changes. ``None`` when nothing (or an older version) recorded it."""
        owners = {r.owner for r in self.records.of(binding) if r.owner}
        return min(owners) if owners else None

    def recorded(self, binding: Binding) -> bool:
        return bool(self.records.of(binding))

    async def _record_owner(self, binding: Binding, owner: str, state: _BindingState) -> None:
        """Write ``owner`` into every record of the binding that says otherwise."""
        pending = state.unrecorded
        if pending is not None and pending.owner != owner:
            state.unrecorded = LeaseRecord(pending.lease, pending.prefix, pending.service,
                                           pending.ttl, owner)
        for record in self.records.of(binding):
            if record.owner == owner:
                continue
            updated = LeaseRecord(record.lease, record.prefix, record.service, record.ttl, owner)
            key = self.record_key(record.lease)
            with self._request("txn"):
                written = await self.client.txn([], [Put(key, updated.encode(), record.lease,
                                                         expect_lease=record.lease)])
            if written:
                self.records[record.lease] = updated
                log.info("Service %s/%s now belongs to %s (was %s)", record.prefix,
                         record.service, owner, record.owner or "unrecorded")

    async def _lease_for(self, binding: Binding, ttl: int, state: _BindingState,
                         owner: str = "") -> int:
        """The binding's lease: the current one, an adopted one of the same TTL, or a new one.

        A new lease's record is not written here but with the lease's first
        keys (``_apply``): one write fewer a service, and never a record
        without its keys or keys without their record.
        """
        pending = state.unrecorded.lease if state.unrecorded is not None else 0
        if state.lease and state.ttl == ttl and state.lease not in self._revoking \
                and (state.lease in self.records or state.lease == pending):
            return state.lease
        for record in self.records.of(binding):
            if record.ttl == ttl and record.lease not in self._revoking:
                state.lease, state.ttl = record.lease, ttl
                return record.lease
        with self._request("grant"):
            lease = await self.client.grant(ttl)
        state.unrecorded = LeaseRecord(lease, binding.prefix, binding.service, ttl, owner)
        state.granted = time.monotonic()
        state.lease, state.ttl = lease, ttl
        return lease

    def _record_put(self, record: LeaseRecord) -> Put:
        """The record's write: on its own lease, and only where no record was."""
        return Put(self.record_key(record.lease), record.encode(), record.lease, expect_lease=0)

    def _recorded(self, state: _BindingState, record: LeaseRecord) -> None:
        """The record is in etcd: the lease is ours from now on, and kept alive."""
        if state.unrecorded is record:
            state.unrecorded = None
        self.records[record.lease] = record
        self._keepalives.granted(record.lease, record.ttl, state.granted)
        self._ensure_keepalive()
        log.info("Granted lease %x (ttl %ss) for %s/%s", record.lease, record.ttl,
                 record.prefix, record.service)

    async def _write_record(self, state: _BindingState, record: LeaseRecord) -> None:
        """The record alone: a service with no key to write still records its claim."""
        with self._request("txn"):
            written = await self.client.txn([], [self._record_put(record)])
        if not written and not await self._record_landed(record):
            state.unrecorded, state.lease = None, 0  # a new lease next time
            raise RegistryError(f"{record.prefix}/{record.service}: the ownership record of "
                                f"lease {record.lease:x} could not be written; will retry")
        self._recorded(state, record)

    async def _record_landed(self, record: LeaseRecord) -> bool:
        """Whether the record is in etcd after a transaction with it reported failure: a
        transaction sent again after a failover finds its own first copy there."""
        key = self.record_key(record.lease)
        with self._request("range"):
            kvs, _ = await self.client.get_prefix(key)
        return any(kv.key == key and kv.lease == record.lease for kv in kvs)

    def _ensure_keepalive(self) -> None:
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = supervisor.spawn("keepalive", str(self.client.config),
                                                    self._keepalive_loop)
        self._wake.set()

    async def _keepalive_loop(self) -> None:
        """Refresh every lease at a third of its TTL, as etcd's own clients do, a few
        at a time (``keepalives``): the leases of one sync, refreshed all in one
        round, held the writes of churn back by tens of milliseconds."""
        # Started from a worker's sync, this task copied the worker's context: its
        # refreshes are nobody's cycle, and must not count into that worker's wait.
        etcd_wait.set(None)
        schedule = self._keepalives
        while True:
            await self._refresh(schedule.round(time.monotonic()))
            self._wake.clear()
            due = schedule.next_due()
            delay = 60.0 if due is None else due - time.monotonic()
            if delay > 0:
                await supervisor.wait_set(self._wake, delay)

    async def _refresh(self, leases: list[int]) -> None:
        """One round of keepalives, over one stream (``EtcdClient.keepalive_many``)."""
        schedule, now = self._keepalives, time.monotonic()
        records: dict[int, LeaseRecord] = {}
        for lease in leases:
            record = self.records.get(lease)
            if record is None:
                schedule.forget(lease)
            else:
                records[lease] = record
        if not records:
            return
        self._count("keepalive", len(records))
        try:
            remaining = await self.client.keepalive_many(records)
        except EtcdError as exc:
            metrics.keepalive_failures.inc(len(records))
            log.warning("Keepalive of %d lease(s) failed: %s", len(records), exc)
            schedule.failed(records, now)
            return
        for lease, left in remaining.items():
            if lease not in self.records:
                continue  # revoked or lost while the stream was out
            if left <= 0:
                metrics.keepalive_failures.inc()
                await self._lease_lost(lease)
            else:
                schedule.refreshed(lease, now)

    async def _lease_lost(self, lease: int) -> None:
        """The lease expired (etcd down longer than the TTL): its keys are gone."""
        record = self.records.pop(lease, None)
        self._keepalives.forget(lease)
        self._revoking.discard(lease)
        if record is None:
            return
        log.warning("Lease %x of %s/%s expired; its entries will be written again",
                    lease, record.prefix, record.service)
        for binding, state in self._states.items():
            if state.lease == lease:
                state.lease, state.fresh = 0, False
                state.observed.clear()
                if self._on_lease_lost is not None:
                    await self._on_lease_lost(binding)

    # --- reading and writing ----------------------------------------------

    async def observe(self, binding: Binding) -> dict[str, Observed]:
        """Read the binding's range: the check the Go registry does every observeDelay.
        A copy of what it holds, for callers outside the registry to keep."""
        return dict(await self._read(binding))

    async def _read(self, binding: Binding) -> dict[str, Observed]:
        """The binding's range, read into its state in place.

        A key etcd holds as before keeps its ``Observed``, and the mapping stays
        the same object: the periodic check reads every key of every service, and
        new objects for unchanged keys (100,000 each observeDelay at 100,000
        pods) outlived the young generations of the garbage collector, whose
        collections then walked them, up to 100 ms of the event loop each.
        """
        state = self._states.setdefault(binding, _BindingState())
        with self._request("range"):
            kvs, _ = await self.client.get_prefix(binding.range)
        observed, read = state.observed, 0
        for kv in kvs:
            if self._is_record(kv.key):
                continue
            read += 1
            before = observed.get(kv.key)
            if before is None or before.value != kv.value or before.lease != kv.lease:
                observed[kv.key] = Observed(kv.value, kv.lease)
        if len(observed) > read:  # keys gone since the last read or write
            present = {kv.key for kv in kvs}
            for key in [key for key in observed if key not in present]:
                del observed[key]
        state.fresh = True
        return observed

    async def sync(self, binding: Binding, desired: Mapping[str, bytes], *, ttl: int,
                   keys: Iterable[str] | None = None, policy: Policy = Policy.SYNC,
                   max_deletes: int | None = None, dry_run: bool = False,
                   owner: str = "") -> SyncResult:
        """Make etcd hold ``desired`` for the binding, touching only our own keys.

        With ``keys`` only those keys are diffed against the cached view (a
        pod event); without, or before the first full read, the whole range
        is read and diffed (start-up and the periodic observation), except
        for a service none of our leases ever held: its first plan is made
        without a read, every put guarded by "absent".
        A transaction whose compare fails (someone wrote a key meanwhile)
        is planned again from a fresh read, a few times at most. ``owner``
        is recorded with the binding's lease: the claim on the name. At most
        ``SYNC_SLOTS`` syncs of this etcd run at once.
        """
        async with self._slots:
            return await self._sync(binding, desired, ttl=ttl, keys=keys, policy=policy,
                                    max_deletes=max_deletes, dry_run=dry_run, owner=owner)

    async def _sync(self, binding: Binding, desired: Mapping[str, bytes], *, ttl: int,
                    keys: Iterable[str] | None, policy: Policy, max_deletes: int | None,
                    dry_run: bool, owner: str) -> SyncResult:
        state = self._states.get(binding)
        # Never seen, and no lease of ours on record for it: nothing in its range
        # can be ours, so there is nothing to delete or overwrite, and no read is
        # needed to plan. Every put is guarded by "absent": a key someone else
        # holds fails the transaction, and the range is read then (below). The
        # first registration of 1,000 services made 1,000 reads fewer.
        blind = state is None and not dry_run and not self.records.of(binding)
        if state is None:
            state = self._states[binding] = _BindingState(fresh=blind)
        if blind:
            keys = None
        elif keys is None or not state.fresh:
            await self._read(binding)
            keys = None
            pending = state.unrecorded
            if pending is not None and not dry_run and any(
                    o.lease == pending.lease for o in state.observed.values()) \
                    and await self._record_landed(pending):
                # The first transaction landed unanswered (etcd went away): its keys
                # are ours, not a conflict.
                self._recorded(state, pending)
        result = SyncResult()
        lease = state.lease if dry_run else await self._lease_for(binding, ttl, state, owner)
        if owner and not dry_run:
            await self._record_owner(binding, owner, state)
        for _ in range(MAX_CONFLICT_ROUNDS):
            plan = make_plan(desired, state.observed, lease=lease,
                             owned_leases=self.owned_leases(binding), keys=keys,
                             policy=policy,
                             max_deletes=max_deletes)
            result.conflicts = plan.conflicts
            if dry_run:
                result.planned = plan
            if dry_run or not plan:
                result.add(plan)
                break
            try:
                failed = await self._apply(plan.ops, state, result)
            except EtcdLeaseNotFound:
                # Revoked by hand (or expired unseen): its keys are gone. Noticed here,
                # not at the next keepalive (a third of the TTL away): a new lease now.
                if state.unrecorded is not None and state.unrecorded.lease == lease:
                    state.unrecorded, state.lease = None, 0
                await self._lease_lost(lease)
                await self._read(binding)
                lease = await self._lease_for(binding, ttl, state, owner)
                keys = None
                continue
            result.add(plan)
            if not failed:
                break
            await self._read(binding)
            keys = None
        else:
            raise RegistryError(f"{binding}: keys kept changing under us; will retry")
        if state.unrecorded is not None and not dry_run:
            await self._write_record(state, state.unrecorded)
        await self._drop_drained_leases(binding, state)
        return result

    async def _apply(self, ops: list[Write], state: _BindingState, result: SyncResult) -> bool:
        """Apply ops in batched, guarded transactions; True if any compare failed.

        A new lease's record rides in the first transaction. If that one fails,
        nothing more is written on the lease: keys without their record could
        not be proven ours after a restart.
        """
        record = state.unrecorded
        record_key = self.record_key(record.lease) if record is not None else ""
        if record is not None:
            ops = [self._record_put(record), *ops]
        failed = False
        for batch in batches(ops):
            result.txns += 1
            with self._request("txn"):
                applied = await self.client.txn([], batch)
            if not applied:
                failed = True
                if record is not None and state.unrecorded is record:
                    if await self._record_landed(record):
                        self._recorded(state, record)
                    break
                continue
            for op in batch:
                if op.key == record_key and record is not None:
                    self._recorded(state, record)
                    continue
                if isinstance(op, Put):
                    state.observed[op.key] = Observed(op.value, op.lease)
                else:
                    state.observed.pop(op.key, None)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %s", "put" if isinstance(op, Put) else "deleted", op.key,
                              extra={"key": op.key})
        return failed

    async def _drop_drained_leases(self, binding: Binding, state: _BindingState) -> None:
        """Revoke our older leases of this binding once no key of it sits on them."""
        if not state.fresh or not state.lease:
            return
        in_use = {obs.lease for obs in state.observed.values()}
        for record in self.records.of(binding):
            if record.lease != state.lease and record.lease not in in_use:
                await self._revoke(record.lease)

    async def _revoke(self, lease: int) -> None:
        """Revoke one of our leases; once asked, the lease is given up for good.

        A revoke that fails has an unknown outcome: etcd may have taken the
        request and apply it later (a proposal made as the members went down
        is committed when they come back). Writing new entries on that lease
        would see them all deleted at once, seconds later, while their pods
        stay ready. So the lease is neither kept alive nor written to again;
        its record stays until etcd confirms the revoke, for ownership of the
        keys still on it and for the revoke to be asked again.
        """
        self._revoking.add(lease)
        self._keepalives.forget(lease)
        record = self.records.get(lease)
        log.info("Revoking lease %x of %s", lease,
                 f"{record.prefix}/{record.service}" if record else "an unknown service")
        with self._request("revoke"):
            await self.client.revoke(lease)
        self._revoking.discard(lease)
        self.records.pop(lease, None)

    async def remove(self, binding: Binding, *, policy: Policy = Policy.SYNC,
                     dry_run: bool = False) -> int:
        """Take a whole service out: revoke its leases, which deletes its keys at once.

        Under ``upsert-only`` nothing is deleted: the leases stay alive and
        the entries stay, as that policy promises.
        """
        leases = [r.lease for r in self.records.of(binding)]
        self._states.pop(binding, None)
        if policy is Policy.UPSERT_ONLY or dry_run:
            return 0
        for lease in leases:
            await self._revoke(lease)
        return len(leases)

    def bindings_on_record(self) -> set[tuple[str, str]]:
        """(prefix, service) pairs we own leases for, including ones no spec names any more."""
        return {(r.prefix, r.service) for r in self.records.values()}

    def nesting_on_record(self, binding: Binding) -> list[Binding]:
        """The other services we own leases for whose range nests with (or is)
        ``binding``'s."""
        return [Binding(binding.etcd, prefix, service)
                for prefix, service in self.records.nesting(binding)]

    async def close(self) -> None:
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            await asyncio.gather(self._keepalive_task, return_exceptions=True)
            self._keepalive_task = None


def _parse_record(kv: KeyValue, prefix: str) -> LeaseRecord | None:
    """A record counts only if it sits on the very lease it names."""
    try:
        lease = int(kv.key[len(prefix):], 16)
        data = json.loads(kv.value)
        record = LeaseRecord(lease, str(data["prefix"]), str(data["service"]), int(data["ttl"]),
                             str(data.get("owner") or ""))
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        # Whatever the bytes (a ttl of 1e400, JSON nested past the parser's depth in an
        # etcd a tenant can write): one bad record must not stop the others loading.
        log.warning("Ignoring a malformed ownership record at %s", kv.key)
        return None
    if kv.lease != lease:
        log.warning("Ignoring ownership record %s: it is not on lease %x", kv.key, lease)
        return None
    return record


__all__ = ["BindingRegistry", "LeaseRecord", "RegistryError", "SyncResult"]
