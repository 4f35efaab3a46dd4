"""One plain etcd member: every call of the interface, large ranges, and watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import Compare, EtcdClient, EtcdCompacted, EtcdConfig, WatchEvent
from kitex_etcd_operator.etcd.client import KEEPALIVE_BATCH
from kitex_etcd_operator.etcd.coalesce import MAX_MEMBER_OPS
from kitex_etcd_operator.etcd.errors import EtcdLeaseNotFound, EtcdUnavailable
from kitex_etcd_operator.writes import Delete, Put
from tests.support.etcd_probe import grpc_started
from tests.support.helpers import async_wait_for

MakeClient = Callable[[EtcdConfig], EtcdClient]


def config(cluster: EtcdCluster) -> EtcdConfig:
    return EtcdConfig(tuple(cluster.endpoints))


async def test_guarded_writes_on_create_revision_lease_and_value(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(config(etcd_plain))
    key = prefix + "a"
    lease = await client.grant(30)
    assert await client.txn([Compare.absent(key)], [Put(key, b"1", lease)])
    assert not await client.txn([Compare.absent(key)], [Put(key, b"2")])
    assert not await client.txn([Compare.lease_is(key, lease + 1)], [Delete(key)])
    assert not await client.txn([Compare.value_is(key, b"other")], [Put(key, b"3", lease)])
    assert await client.txn([Compare.value_is(key, b"1"), Compare.lease_is(key, lease)],
                            [Put(key, b"4", lease)])
    kvs, revision = await client.get_prefix(prefix)
    assert [(kv.key, kv.value, kv.lease) for kv in kvs] == [(key, b"4", lease)]
    assert kvs[0].create_revision < kvs[0].mod_revision == revision
    assert await client.txn([Compare.lease_is(key, lease)], [Delete(key)])
    assert (await client.get_prefix(prefix))[0] == []


async def test_leases_grant_keepalive_ttl_and_revoke(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(config(etcd_plain))
    lease = await client.grant(30)
    assert await client.txn([], [Put(prefix + "x", b"", lease), Put(prefix + "y", b"", lease)])
    assert 0 < await client.lease_ttl(lease) <= 30
    assert await client.keepalive(lease) == 30
    await client.revoke(lease)  # takes every key on the lease with it
    assert (await client.get_prefix(prefix))[0] == []
    await client.revoke(lease)  # already gone: not an error
    assert await client.keepalive(lease) == 0
    assert await client.lease_ttl(lease) == -1


async def test_many_leases_are_refreshed_over_few_streams(
        etcd_plain: EtcdCluster, make_client: MakeClient) -> None:
    """A stream a lease cost four times the CPU of a message on a shared one: leases are
    refreshed ``KEEPALIVE_BATCH`` a stream, and each gets its own answer."""
    client = make_client(config(etcd_plain))
    leases = [await client.grant(30) for _ in range(KEEPALIVE_BATCH + 20)]
    gone = await client.grant(30)
    await client.revoke(gone)
    streams = grpc_started(etcd_plain.endpoints[0], "LeaseKeepAlive")
    remaining = await client.keepalive_many([*leases, gone, leases[0]])
    assert remaining == {**{lease: 30 for lease in leases}, gone: 0}
    assert grpc_started(etcd_plain.endpoints[0], "LeaseKeepAlive") - streams == 2


async def test_transactions_issued_together_share_one_request(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """A burst of changes to many services costs one request, not one each; every
    member still gets its own answer."""
    client = make_client(config(etcd_plain))
    lease = await client.grant(30)
    endpoint = etcd_plain.endpoints[0]
    txns = grpc_started(endpoint, "Txn")
    answers = await asyncio.gather(*(
        client.txn([], [Put(f"{prefix}{i:02d}/a", b"1", lease, expect_lease=0),
                        Put(f"{prefix}{i:02d}/b", b"2", lease, expect_lease=0)])
        for i in range(40)))
    assert answers == [True] * 40
    assert grpc_started(endpoint, "Txn") - txns == 1
    kvs, revision = await client.get_prefix(prefix)
    assert len(kvs) == 80 and {kv.mod_revision for kv in kvs} == {revision}


async def test_a_shared_request_that_fails_answers_each_member_on_its_own(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """One member's compare failing, or its lease gone, costs the others nothing: each
    is sent again alone, and only the one at fault fails."""
    client = make_client(config(etcd_plain))
    lease, gone = await client.grant(30), await client.grant(30)
    await client.revoke(gone)
    assert await client.txn([], [Put(prefix + "taken", b"other", expect_lease=0)])

    def put(name: str, on: int = lease) -> list[Put]:
        return [Put(prefix + name, b"v", on, expect_lease=0)]

    answers = await asyncio.gather(
        client.txn([], put("a")), client.txn([], put("taken")), client.txn([], put("b")),
        client.txn([], put("c", gone)), client.txn([], put("d")), return_exceptions=True)
    assert answers[0] is True and answers[2] is True and answers[4] is True
    assert answers[1] is False
    assert isinstance(answers[3], EtcdLeaseNotFound)
    kvs, _ = await client.get_prefix(prefix)
    assert {kv.key.removeprefix(prefix): kv.value for kv in kvs} == {
        "a": b"v", "b": b"v", "d": b"v", "taken": b"other"}


async def test_large_unguarded_or_overlapping_transactions_go_alone(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """What could change a member's meaning in a shared request is sent on its own:
    an unguarded write (a failover may not replay it), two writes of one key, and a
    batch of an initial sync (etcd's limit on ops a request)."""
    client = make_client(config(etcd_plain))
    endpoint = etcd_plain.endpoints[0]
    big = [Put(f"{prefix}big/{i:03d}", b"v", expect_lease=0) for i in range(MAX_MEMBER_OPS + 1)]
    txns = grpc_started(endpoint, "Txn")
    answers = await asyncio.gather(
        client.txn([], big), client.txn([], [Put(prefix + "plain", b"v")]),
        client.txn([], [Put(prefix + "same", b"1", expect_lease=0)]),
        client.txn([], [Put(prefix + "same", b"2", expect_lease=0)]))
    assert answers[:2] == [True, True]
    assert sorted(answers[2:]) == [False, True]  # one "same" found the other's written
    assert grpc_started(endpoint, "Txn") - txns == 4
    kvs, _ = await client.get_prefix(prefix + "same")
    assert [kv.value for kv in kvs] == [b"1" if answers[2] else b"2"]


async def test_a_transaction_not_yet_sent_when_the_client_closes_fails(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """Closing the client fails what waits to share a request; nothing is sent after."""
    client = make_client(config(etcd_plain))
    await client.get_prefix(prefix)  # connected
    waiting = asyncio.create_task(client.txn([], [Put(prefix + "k", b"v", expect_lease=0)]))
    await asyncio.sleep(0)  # the transaction is queued for the next loop turn
    await client.close()
    with pytest.raises(EtcdUnavailable, match="client stopped"):
        await waiting
    assert (await make_client(config(etcd_plain)).get_prefix(prefix))[0] == []


async def test_a_range_of_ten_thousand_keys_beyond_grpcs_default_4_mib(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(config(etcd_plain))
    value = b"x" * 600
    keys = [f"{prefix}{i:05d}" for i in range(10_000)]
    for start in range(0, len(keys), 128):  # etcd's default limit of ops per txn
        assert await client.txn([], [Put(k, value) for k in keys[start:start + 128]])
    kvs, _ = await client.get_prefix(prefix)
    assert [kv.key for kv in kvs] == keys
    assert sum(len(kv.key) + len(kv.value) for kv in kvs) > 4 * 1024 * 1024


async def test_status_names_the_member_and_its_version(
        etcd_plain: EtcdCluster, make_client: MakeClient) -> None:
    status = await make_client(config(etcd_plain)).status()
    assert status["version"] == "3.6.16"
    assert status["leader"] == status["member_id"] != 0
    assert status["endpoint"] == etcd_plain.endpoints[0].split("://")[1]


async def collect(client: EtcdClient, prefix: str, start: int, into: list[WatchEvent]) -> None:
    async for event in client.watch_prefix(prefix, start_revision=start):
        into.append(event)


async def test_watch_sees_puts_and_deletes_in_order_from_a_revision(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(config(etcd_plain))
    _, revision = await client.get_prefix(prefix)
    lease = await client.grant(30)
    assert await client.txn([], [Put(prefix + "a", b"1", lease)])  # before the watch starts
    events: list[WatchEvent] = []
    task = asyncio.create_task(collect(client, prefix, revision + 1, events))
    try:
        assert await client.txn([], [Put(prefix + "b", b"2")])
        assert await client.txn([], [Delete(prefix + "a")])
        assert await client.txn([], [Put(prefix.rstrip("/") + "-sibling", b"no")])

        async def three() -> bool:
            return len(events) >= 3

        await async_wait_for(three, timeout=10, what="three watch events")
        assert [(e.kind, e.key, e.value) for e in events] == [
            ("PUT", prefix + "a", b"1"), ("PUT", prefix + "b", b"2"),
            ("DELETE", prefix + "a", b"")]
        assert events[0].lease == lease
        assert [e.revision for e in events] == sorted({e.revision for e in events})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_watch_from_compacted_history_says_to_list_again(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(config(etcd_plain))
    assert await client.txn([], [Put(prefix + "a", b"1")])
    _, old = await client.get_prefix(prefix)
    assert await client.txn([], [Put(prefix + "a", b"2")])
    _, now = await client.get_prefix(prefix)
    etcd_plain.etcdctl("compaction", str(now))
    with pytest.raises(EtcdCompacted, match="list again") as caught:
        await collect(client, prefix, old, [])
    assert caught.value.compact_revision == now


async def test_a_response_past_the_cap_is_a_typed_error(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """A range someone filled with junk must not be read whole into the operator:
    past ``--etcd-max-response-size`` the read fails with an error naming the cap."""
    from kitex_etcd_operator.etcd import EtcdRequestError
    from kitex_etcd_operator.etcd.channel import MAX_MESSAGE, max_response, set_max_response

    writer = make_client(config(etcd_plain))
    junk = b"x" * (512 * 1024)
    for n in range(3):  # 1.5 MiB in all, past a 1 MiB cap
        assert await writer.txn([], [Put(f"{prefix}junk{n}", junk)])
    set_max_response(1024 * 1024)
    try:
        capped = make_client(config(etcd_plain))
        with pytest.raises(EtcdRequestError, match="--etcd-max-response-size"):
            await capped.get_prefix(prefix)
        kvs, _ = await capped.get_prefix(f"{prefix}junk0")  # within the cap: fine
        assert len(kvs) == 1
    finally:
        set_max_response(MAX_MESSAGE)
    assert max_response() == MAX_MESSAGE


async def test_requests_on_a_channel_closed_under_them_fail_over(
        etcd_plain: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """One request failing over closes the channel others are still waiting on; grpc
    ends those with a bare CancelledError, which silently ended the binding workers
    that made them (the soak found three services never written again). Now they are
    sent again on a new channel, as any replay-safe request after a failover."""
    client = make_client(config(etcd_plain))
    assert await client.txn([], [Put(f"{prefix}big", b"x" * 1_000_000)])
    channel = await client._connect()
    reads = [asyncio.create_task(client.get_prefix(prefix)) for _ in range(20)]
    for _ in range(3):
        await asyncio.sleep(0)  # let the reads go out on the channel
    await client._drop(channel)  # what a failing request does
    results = await asyncio.gather(*reads, return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert all(len(kvs) == 1 for kvs, _ in results)  # type: ignore[misc]
