"""The registry core against a real etcd: bytes, leases, batching, ownership, adoption."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
from kitex_etcd_operator.etcd.errors import EtcdUnavailable
from kitex_etcd_operator.model import Instance, instance_key
from kitex_etcd_operator.plan import Binding, Policy
from kitex_etcd_operator.registry import BindingRegistry, etcd_wait
from tests.support.etcd_probe import EtcdProbe, grpc_started
from tests.support.helpers import async_wait_for


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}/registry-etcd"


CLUSTER = "c1"


@pytest.fixture(autouse=True)
def _own_cluster_id() -> None:
    """Each test owns its leases under a cluster id of its own, like separate clusters."""
    global CLUSTER
    CLUSTER = f"c-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(registry_etcd: Any) -> AsyncIterator[EtcdClient]:
    c = EtcdClient(EtcdConfig(tuple(registry_etcd.endpoints)))
    yield c
    await c.close()


async def make_registry(client: EtcdClient, cluster: str | None = None) -> BindingRegistry:
    registry = BindingRegistry(client, cluster_id=cluster or CLUSTER,
                               owner_prefix="kitex-etcd-operator/owners")
    await registry.load_ownership()
    return registry


def desired(prefix: str, service: str, instances: list[Instance]) -> dict[str, bytes]:
    return {instance_key(prefix, service, i.address): i.encode() for i in instances}


async def test_exact_bytes_ipv4_ipv6_tags(client: EtcdClient, etcd_probe: EtcdProbe,
                                          prefix: str) -> None:
    registry = await make_registry(client)
    binding = Binding("default", prefix, "echo")
    want = desired(prefix, "echo", [Instance.make("10.0.0.1", 8888),
                                    Instance.make("fd00::1", 8888),
                                    Instance.make("10.0.0.2", 8888, weight=5,
                                                  tags={"zone": "a", "env": "prod"})])
    result = await registry.sync(binding, want, ttl=60)
    assert result.puts == 3
    got = etcd_probe.get_prefix(f"{prefix}/echo/")
    assert {k: v.value for k, v in got.items()} == {
        f"{prefix}/echo/10.0.0.1:8888":
            b'{"network":"tcp","address":"10.0.0.1:8888","weight":10,"tags":null}',
        f"{prefix}/echo/[fd00::1]:8888":
            b'{"network":"tcp","address":"[fd00::1]:8888","weight":10,"tags":null}',
        f"{prefix}/echo/10.0.0.2:8888": (b'{"network":"tcp","address":"10.0.0.2:8888",'
                                         b'"weight":5,"tags":{"env":"prod","zone":"a"}}'),
    }
    assert len({kv.lease for kv in got.values()}) == 1, "one lease per service"
    await registry.close()


async def test_etcd_answer_times_are_measured_by_kind(client: EtcdClient, prefix: str) -> None:
    """The dashboard sets a change's written phase beside etcd's answer time."""
    def count(op: str) -> float:
        return REGISTRY.get_sample_value(
            "kitex_etcd_operator_etcd_request_duration_seconds_count", {"op": op}) or 0.0

    registry = await make_registry(client)
    binding = Binding("default", prefix, "timed")
    before = {op: count(op) for op in ("range", "txn")}
    await registry.sync(binding, desired(prefix, "timed", [Instance.make("10.0.0.1", 8888)]),
                        ttl=60)
    waited = [0.0]
    etcd_wait.set(waited)  # as a worker does for each write cycle
    await registry.sync(binding, desired(prefix, "timed", [Instance.make("10.0.0.1", 8888),
                                                           Instance.make("10.0.0.2", 8888)]),
                        ttl=60)
    # the first sync (a service never registered) writes its lease's record and its key
    # in one transaction without a read; the second reads the range (a full sync) and
    # writes one more key
    assert count("range") == before["range"] + 1
    assert count("txn") == before["txn"] + 2
    assert waited[0] > 0  # the second sync's transaction, counted into its cycle
    await registry.close()


async def test_thousand_instances_in_batched_transactions(client: EtcdClient,
                                                          etcd_probe: EtcdProbe,
                                                          prefix: str) -> None:
    registry = await make_registry(client)
    binding = Binding("default", prefix, "big")
    want = desired(prefix, "big", [Instance.make(f"10.1.{i // 250}.{i % 250}", 9000)
                                   for i in range(1000)])
    result = await registry.sync(binding, want, ttl=60)
    assert (result.puts, result.txns) == (1000, 8)  # 128 operations per transaction
    assert etcd_probe.values(f"{prefix}/big/") == want
    again = await registry.sync(binding, want, ttl=60)
    assert (again.puts, again.unchanged, again.txns) == (0, 1000, 0)  # nothing rewritten
    await registry.close()


async def test_a_first_registration_is_one_grant_and_one_transaction(
        client: EtcdClient, etcd_probe: EtcdProbe, prefix: str) -> None:
    """A service none of our leases ever held: nothing to read before writing, and the new
    lease's ownership record goes into etcd with its keys, never one without the other."""
    registry = await make_registry(client)
    binding = Binding("default", prefix, "first")
    before = registry.requests
    want = desired(prefix, "first", [Instance.make("10.0.0.1", 8888)])
    result = await registry.sync(binding, want, ttl=60, owner="team-a")
    assert registry.requests - before == 2  # the grant, one transaction
    assert (result.puts, result.txns) == (1, 1)
    (record_key, record), = etcd_probe.get_prefix(registry.records_prefix).items()
    keys = etcd_probe.get_prefix(f"{prefix}/first/")
    assert {kv.lease for kv in keys.values()} == {record.lease}
    assert record_key == registry.record_key(record.lease)
    assert registry.recorded_owner(binding) == "team-a"
    # A service with nothing to write still records its claim, alone.
    empty = Binding("default", prefix, "empty")
    await registry.sync(empty, {}, ttl=60, owner="team-b")
    assert registry.recorded_owner(empty) == "team-b"
    assert len(etcd_probe.get_prefix(registry.records_prefix)) == 2
    # A restart adopts both: the records were written.
    restarted = await make_registry(client)
    assert restarted.recorded_owner(binding) == "team-a"
    assert restarted.recorded_owner(empty) == "team-b"
    await registry.close()
    await restarted.close()


class ReplayingClient(EtcdClient):
    """Sends each transaction twice and answers with the second copy's outcome: what a
    replay after a failover reports when the first copy had landed."""

    async def txn(self, compares: Any, ops: Any) -> bool:
        await super().txn(compares, ops)
        return await super().txn(compares, ops)


async def test_a_first_transaction_that_landed_unseen_is_recognised(
        registry_etcd: Any, etcd_probe: EtcdProbe, prefix: str) -> None:
    """The transaction with the record and the keys landed, and its replay failed its
    guards: the record is found in etcd, the keys are ours, nothing is a conflict."""
    client = ReplayingClient(EtcdConfig(tuple(registry_etcd.endpoints)))
    registry = await make_registry(client)
    binding = Binding("default", prefix, "replayed")
    want = desired(prefix, "replayed", [Instance.make("10.0.0.1", 8888),
                                        Instance.make("10.0.0.2", 8888)])
    result = await registry.sync(binding, want, ttl=60)
    assert result.conflicts == []
    assert etcd_probe.values(f"{prefix}/replayed/") == want
    (record,) = etcd_probe.get_prefix(registry.records_prefix).values()
    assert registry.owned_leases(binding) == {record.lease}
    again = await registry.sync(binding, want, ttl=60)
    assert (again.puts, again.unchanged, again.conflicts) == (0, 2, [])
    await registry.close()
    await client.close()


class AnswerLostOnce(EtcdClient):
    """The first transaction lands, and its answer is lost with the connection."""

    lost = False

    async def txn(self, compares: Any, ops: Any) -> bool:
        applied = await super().txn(compares, ops)
        if not self.lost:
            self.lost = True
            raise EtcdUnavailable("the connection went down under the request")
        return applied


async def test_keys_of_a_first_transaction_whose_answer_was_lost_are_ours(
        registry_etcd: Any, etcd_probe: EtcdProbe, prefix: str) -> None:
    """The sync failed, yet its transaction landed: the next sync finds the keys on the
    new lease and the lease's record beside them, and takes them as its own."""
    client = AnswerLostOnce(EtcdConfig(tuple(registry_etcd.endpoints)))
    registry = await make_registry(client)
    binding = Binding("default", prefix, "lost")
    want = desired(prefix, "lost", [Instance.make("10.0.0.1", 8888)])
    with pytest.raises(EtcdUnavailable):
        await registry.sync(binding, want, ttl=60)
    assert etcd_probe.values(f"{prefix}/lost/") == want
    again = await registry.sync(binding, want, ttl=60)
    assert (again.puts, again.unchanged, again.conflicts) == (0, 1, [])
    (record,) = etcd_probe.get_prefix(registry.records_prefix).values()
    assert registry.owned_leases(binding) == {record.lease}
    await registry.close()
    await client.close()


async def test_a_periodic_read_keeps_what_it_holds_of_unchanged_keys(
        client: EtcdClient, etcd_probe: EtcdProbe, prefix: str) -> None:
    """The check every observeDelay reads each key again: what etcd holds as before keeps
    its record (new ones for 100,000 keys a period made the young generations of the
    garbage collector walk them), a key changed or deleted behind our back does not."""
    registry = await make_registry(client)
    binding = Binding("default", prefix, "echo")
    want = desired(prefix, "echo", [Instance.make(f"10.0.0.{i}", 8888) for i in range(1, 4)])
    await registry.sync(binding, want, ttl=60)
    held = registry._states[binding].observed
    before = dict(held)
    await registry.sync(binding, want, ttl=60, keys=None)  # a full check: read and diff
    assert registry._states[binding].observed is held
    assert all(held[key] is record for key, record in before.items())

    changed, gone = sorted(want)[:2]
    etcd_probe.put(changed, "not a kitex value")  # someone else's now: no lease of ours
    etcd_probe.delete(gone)
    seen = await registry.observe(binding)
    assert seen == held and seen is not held  # callers get a copy
    assert held[changed] is not before[changed] and held[changed].value == b"not a kitex value"
    assert gone not in held and set(held) == set(want) - {gone}
    result = await registry.sync(binding, want, ttl=60, keys=None)
    assert result.conflicts == [changed]  # not ours any more: reported, never overwritten
    assert etcd_probe.values(f"{prefix}/echo/")[gone] == want[gone]  # put back
    await registry.close()


async def test_foreign_keys_are_left_alone_and_reported(client: EtcdClient,
                                                        etcd_probe: EtcdProbe,
                                                        prefix: str) -> None:
    # A self-registered Kitex server: its own lease, not ours.
    foreign_lease = etcd_probe.grant(60)
    foreign_key = f"{prefix}/echo/10.0.0.9:8888"
    foreign_value = '{"network":"tcp","address":"10.0.0.9:8888","weight":10,"tags":null}'
    etcd_probe.put(foreign_key, foreign_value, lease=foreign_lease)
    # Another cluster's operator under the same service.
    other = await make_registry(client, "other-cluster")
    binding = Binding("default", prefix, "echo")
    await other.sync(binding, desired(prefix, "echo", [Instance.make("10.0.0.8", 8888)]), ttl=60)

    registry = await make_registry(client)
    mine = desired(prefix, "echo", [Instance.make("10.0.0.1", 8888),
                                    Instance.make("10.0.0.9", 8888, weight=3)])
    result = await registry.sync(binding, mine, ttl=60)
    assert result.conflicts == [foreign_key]
    values = etcd_probe.values(f"{prefix}/echo/")
    assert values[foreign_key] == foreign_value.encode()
    assert f"{prefix}/echo/10.0.0.8:8888" in values  # the other cluster's entry
    # Emptying our desired set deletes only our key.
    await registry.sync(binding, {}, ttl=60)
    assert set(etcd_probe.values(f"{prefix}/echo/")) == {
        foreign_key, f"{prefix}/echo/10.0.0.8:8888"}
    await registry.close()
    await other.close()


async def test_restart_adopts_without_any_delete(registry_etcd: Any, etcd_probe: EtcdProbe,
                                                 prefix: str) -> None:
    recorder = etcd_probe.watch(f"{prefix}/")
    try:
        binding = Binding("default", prefix, "echo")
        want = desired(prefix, "echo", [Instance.make(f"10.0.0.{i}", 8888) for i in range(1, 6)])
        first_client = EtcdClient(EtcdConfig(tuple(registry_etcd.endpoints)))
        first = await make_registry(first_client)
        await first.sync(binding, want, ttl=60)
        leases = {kv.lease for kv in etcd_probe.get_prefix(f"{prefix}/echo/").values()}
        await first.close()  # a crash: nothing revoked, nothing deleted
        await first_client.close()

        second_client = EtcdClient(EtcdConfig(tuple(registry_etcd.endpoints)))
        second = await make_registry(second_client)
        changed = dict(want)
        changed[instance_key(prefix, "echo", "10.0.0.9:8888")] = \
            Instance.make("10.0.0.9", 8888).encode()
        result = await second.sync(binding, changed, ttl=60)
        assert (result.puts, result.unchanged, result.deletes) == (1, 5, 0)
        got = etcd_probe.get_prefix(f"{prefix}/echo/")
        assert {kv.lease for kv in got.values()} == leases  # the old lease, adopted
        await async_wait_for(lambda: _puts_seen(recorder, 6), what="the watch caught up")
        assert recorder.deletes() == []
        await second.close()
        await second_client.close()
    finally:
        recorder.stop()


async def _puts_seen(recorder: Any, count: int) -> bool:
    return len([e for e in recorder.snapshot() if e.kind == "PUT"]) >= count


async def test_ttl_change_moves_keys_to_a_new_lease_without_gap(
        client: EtcdClient, etcd_probe: EtcdProbe, prefix: str) -> None:
    recorder = etcd_probe.watch(f"{prefix}/")
    try:
        registry = await make_registry(client)
        binding = Binding("default", prefix, "echo")
        want = desired(prefix, "echo", [Instance.make("10.0.0.1", 8888)])
        await registry.sync(binding, want, ttl=60)
        old = {kv.lease for kv in etcd_probe.get_prefix(f"{prefix}/echo/").values()}
        await registry.sync(binding, want, ttl=30)
        new = {kv.lease for kv in etcd_probe.get_prefix(f"{prefix}/echo/").values()}
        assert new != old and len(new) == 1
        assert await client.lease_ttl(old.pop()) == -1  # drained and revoked
        assert recorder.deletes() == []
        await registry.close()
    finally:
        recorder.stop()


async def test_remove_revokes_the_lease_in_one_step(client: EtcdClient, etcd_probe: EtcdProbe,
                                                    prefix: str) -> None:
    registry = await make_registry(client)
    binding = Binding("default", prefix, "gone")
    await registry.sync(binding, desired(prefix, "gone", [Instance.make(f"10.0.0.{i}", 1)
                                                          for i in range(1, 50)]), ttl=60)
    assert len(etcd_probe.values(f"{prefix}/gone/")) == 49
    requests_before = registry.requests
    assert await registry.remove(binding) == 1
    assert registry.requests - requests_before == 1  # one revoke
    assert etcd_probe.values(f"{prefix}/gone/") == {}
    assert registry.records == {}
    await registry.close()


async def test_upsert_only_never_deletes(client: EtcdClient, etcd_probe: EtcdProbe,
                                         prefix: str) -> None:
    registry = await make_registry(client)
    binding = Binding("default", prefix, "keep")
    want = desired(prefix, "keep", [Instance.make("10.0.0.1", 1), Instance.make("10.0.0.2", 1)])
    await registry.sync(binding, want, ttl=60)
    result = await registry.sync(binding, {}, ttl=60, policy=Policy.UPSERT_ONLY)
    assert result.withheld_deletes == 2
    assert etcd_probe.values(f"{prefix}/keep/") == want
    assert await registry.remove(binding, policy=Policy.UPSERT_ONLY) == 0
    assert etcd_probe.values(f"{prefix}/keep/") == want
    await registry.close()


async def test_dry_run_writes_nothing(client: EtcdClient, etcd_probe: EtcdProbe,
                                      prefix: str) -> None:
    registry = await make_registry(client)
    binding = Binding("default", prefix, "dry")
    result = await registry.sync(binding, desired(prefix, "dry", [Instance.make("10.0.0.1", 1)]),
                                 ttl=60, dry_run=True)
    assert result.planned is not None and len(result.planned.puts) == 1
    assert etcd_probe.values(f"{prefix}/") == {}
    assert registry.records == {}
    await registry.close()


async def test_nested_ranges_leave_each_other_alone(client: EtcdClient, etcd_probe: EtcdProbe,
                                                    prefix: str) -> None:
    """Hertz allows '/' in names: service "a"'s range {prefix}/a/ holds "a/b"'s keys.

    Both are ours, on different leases: each binding deletes only keys on its
    own leases, or the two would delete each other's entries every cycle.
    """
    registry = await make_registry(client)
    outer, inner = Binding("default", prefix, "a"), Binding("default", prefix, "a/b")
    want_outer = desired(prefix, "a", [Instance.make("10.0.0.1", 8888)])
    want_inner = desired(prefix, "a/b", [Instance.make("10.0.0.2", 8888)])
    await registry.sync(inner, want_inner, ttl=60)
    result = await registry.sync(outer, want_outer, ttl=60)  # a full read of {prefix}/a/
    assert (result.puts, result.deletes, result.conflicts) == (1, 0, [])
    assert etcd_probe.values(f"{prefix}/a/") == {**want_outer, **want_inner}
    # The outer service emptied: only its own key goes.
    result = await registry.sync(outer, {}, ttl=60)
    assert result.deletes == 1
    assert etcd_probe.values(f"{prefix}/a/") == want_inner
    await registry.close()


async def test_a_key_that_is_not_utf8_is_left_alone_not_fatal(
        client: EtcdClient, etcd_probe: EtcdProbe, prefix: str) -> None:
    """etcd keys are any bytes; one put into a service's range by another writer must
    neither crash the sync of that range nor be touched by it."""
    registry = await make_registry(client)
    binding = Binding("default", prefix, "echo")
    foreign = f"{prefix}/echo/\udcff:1"  # the byte 0xff on etcdctl's command line
    etcd_probe.put(foreign, "x")
    want = desired(prefix, "echo", [Instance.make("10.0.0.1", 1)])
    result = await registry.sync(binding, want, ttl=60)
    assert result.puts == 1
    result = await registry.sync(binding, want, ttl=60)
    assert (result.puts, result.deletes) == (0, 0)
    assert len(etcd_probe.get_prefix(f"{prefix}/echo/")) == 2, "the foreign key was touched"
    await registry.close()


async def test_malformed_ownership_records_are_skipped_not_fatal(
        client: EtcdClient, etcd_probe: EtcdProbe, prefix: str) -> None:
    """Records in an etcd others can write (a tenant's own endpoints): a ttl no integer
    holds, JSON nested past the parser's depth. Each is ignored; the good one loads."""
    registry = await make_registry(client)
    good = Binding("default", prefix, "echo")
    await registry.sync(good, desired(prefix, "echo", [Instance.make("10.0.0.1", 1)]), ttl=60)
    await registry.close()
    records = f"kitex-etcd-operator/owners/{CLUSTER}/"
    for value in ('{"prefix":"p","service":"s","ttl":1e400}',
                  '{"prefix":' + "[" * 5000 + "]" * 5000 + ',"service":"s","ttl":60}'):
        lease = etcd_probe.grant(60)
        etcd_probe.put(f"{records}{lease:x}", value, lease=lease)
    again = await make_registry(client)
    assert again.bindings_on_record() == {(prefix, "echo")}
    await again.close()


async def test_a_range_over_the_ownership_records_leaves_them_alone(
        client: EtcdClient, etcd_probe: EtcdProbe) -> None:
    """A prefix that happens to cover the operator's own records (a KitexService with
    ``etcd.prefix: kitex-etcd-operator``, service ``owners``) must not delete them:
    without its records the operator would disown its leases at the next start."""
    registry = await make_registry(client)
    records = f"kitex-etcd-operator/owners/{CLUSTER}/"
    other = Binding("default", f"t{uuid.uuid4().hex[:8]}", "echo")
    await registry.sync(other, desired(other.prefix, "echo", [Instance.make("10.0.0.1", 1)]),
                        ttl=60)
    cover = Binding("default", "kitex-etcd-operator", "owners")
    want = desired("kitex-etcd-operator", "owners", [Instance.make("10.0.0.3", 8888)])
    await registry.sync(cover, want, ttl=60)
    result = await registry.sync(cover, want, ttl=60)
    assert (result.deletes, result.conflicts) == (0, [])
    assert len(etcd_probe.get_prefix(records)) == 2, "an ownership record was deleted"
    await registry.sync(cover, {}, ttl=60)
    assert len(etcd_probe.get_prefix(records)) == 2
    assert etcd_probe.values("kitex-etcd-operator/owners/10.0.0.3") == {}
    await registry.close()


async def test_the_leases_of_many_services_stay_alive_refreshed_apart(etcd: Any,
                                                                    prefix: str) -> None:
    """Each lease keeps a phase of its own (``keepalives``): the leases of one sync
    are not refreshed all in one round, and none expires for it."""
    client = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
    registry = await make_registry(client)
    try:
        for i in range(8):
            service = f"svc{i}"
            await registry.sync(Binding("default", prefix, service),
                                desired(prefix, service, [Instance.make("10.0.0.1", 8888)]),
                                ttl=3)
        streams = grpc_started(etcd.endpoints[0], "LeaseKeepAlive")
        before = registry.requests  # from here on, every request is a lease's refresh

        async def four_periods() -> bool:
            return registry.requests - before >= 32

        await async_wait_for(four_periods, timeout=20, what="four periods of keepalives")
        started = grpc_started(etcd.endpoints[0], "LeaseKeepAlive") - streams
        assert started > 4, "the eight leases went in step, one stream a round"
        kvs, _ = await client.get_prefix(f"{prefix}/")
        assert len(kvs) == 8  # every lease alive past its TTL
    finally:
        await registry.close()
        await client.close()
