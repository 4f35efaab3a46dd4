"""A 3-member cluster losing members: requests and watches carry on elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import (
    Compare,
    EtcdClient,
    EtcdConfig,
    EtcdError,
    EtcdUnavailable,
    WatchEvent,
)
from kitex_etcd_operator.writes import Put
from tests.support.helpers import async_wait_for

MakeClient = Callable[[EtcdConfig], EtcdClient]


def member_of(cluster: EtcdCluster, address: str) -> int:
    return [e.split("://", 1)[1] for e in cluster.endpoints].index(address)


class Writer:
    """Guarded creates, one after another, timing each, until told to stop."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.done: list[tuple[float, str]] = []  # (finished at, endpoint that served it)
        self.latencies: list[float] = []
        self.errors: list[EtcdError] = []
        self.replayed = 0
        self.slow: list[tuple[float, str, str]] = []  # (seconds, endpoint before, after)
        self.stop = asyncio.Event()

    async def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"{self.prefix}{i:05d}"
            started, before = time.monotonic(), self.client.current_endpoint
            try:
                if not await self.client.txn([Compare.absent(key)], [Put(key, b"v")]):
                    # A replay of a create that had landed fails its compare: harmless.
                    kvs, _ = await self.client.get_prefix(key)
                    assert [kv.value for kv in kvs] == [b"v"]
                    self.replayed += 1
            except EtcdError as exc:
                self.errors.append(exc)
                continue
            now = time.monotonic()
            self.latencies.append(now - started)
            if now - started > 0.5:
                self.slow.append((now - started, before, self.client.current_endpoint))
            self.done.append((now, self.client.current_endpoint))
            i += 1

    def written_since(self, moment: float) -> int:
        return sum(1 for at, _ in self.done if at > moment)


async def test_writes_and_a_watch_carry_on_when_the_current_member_stops(
        etcd_three: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(EtcdConfig(tuple(etcd_three.endpoints), dial_timeout=1))
    _, revision = await client.get_prefix(prefix)
    lease = await client.grant(30)
    events: list[WatchEvent] = []
    watcher = make_client(EtcdConfig(tuple(etcd_three.endpoints), dial_timeout=1))

    async def watch() -> None:
        async for event in watcher.watch_prefix(prefix, start_revision=revision + 1):
            events.append(event)

    writer = Writer(client, prefix)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(watch())]
    try:
        def written(n: int, since: float = 0.0) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return writer.written_since(since) >= n
            return check

        async def watching() -> bool:
            return bool(events)

        await async_wait_for(written(50), timeout=20, what="50 writes")
        await async_wait_for(watching, timeout=10, what="the watch's first event")
        first = client.current_endpoint
        # Stop the member both the writer and the watch use (same first endpoint).
        assert watcher.current_endpoint == first
        stopped_at = time.monotonic()
        await asyncio.to_thread(etcd_three.stop_member, member_of(etcd_three, first))
        await async_wait_for(written(100, stopped_at), timeout=30,
                             what="100 writes after the member stopped")
        assert client.current_endpoint != first
        assert await client.keepalive(lease) == 30  # the lease lives in the cluster
        writer.stop.set()
        await tasks[0]
        total = len(writer.done)

        async def all_seen() -> bool:
            return len(events) >= total

        await async_wait_for(all_seen, timeout=20, what=f"{total} watch events")
    finally:
        writer.stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert writer.errors == []
    kvs, _ = await client.get_prefix(prefix)
    assert len(kvs) == total
    # Exactly once, in order, across the switch of member: resumed from the next revision.
    assert [e.key for e in events] == [kv.key for kv in kvs]
    assert watcher.current_endpoint != first
    before = [at for at, endpoint in writer.done if endpoint == first]
    after = [at for at, endpoint in writer.done if endpoint != first]
    gap = min(after) - max(max(before), stopped_at)
    print(f"\nfailover: {total} guarded writes, 0 errors, {writer.replayed} replays; "
          f"first write on the next member {gap * 1000:.0f} ms after the stop; "
          f"slowest write {max(writer.latencies) * 1000:.0f} ms, "
          f"median {sorted(writer.latencies)[len(writer.latencies) // 2] * 1000:.1f} ms; "
          f"slow writes (s, from, to): {writer.slow}")


async def test_every_member_in_turn_then_none(
        etcd_three: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(EtcdConfig(tuple(etcd_three.endpoints), dial_timeout=1))
    lease = await client.grant(60)
    for turn in range(3):
        assert await client.txn([Compare.absent(f"{prefix}{turn}")],
                                [Put(f"{prefix}{turn}", b"v", lease)])
        current = member_of(etcd_three, client.current_endpoint)
        etcd_three.stop_member(current)
        assert len((await client.get_prefix(prefix))[0]) == turn + 1
        assert await client.keepalive(lease) == 60
        assert member_of(etcd_three, client.current_endpoint) != current
        etcd_three.start_member(current)  # same data, same ports: back in the quorum
    assert client.failovers == 3
    for i in range(3):
        etcd_three.stop_member(i)
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match="no etcd endpoint answered"):
        await client.get_prefix(prefix)
    assert time.monotonic() - started < 3 * 1 + 1  # at most a dial timeout per endpoint


async def test_a_member_without_quorum_refuses_rather_than_hangs(
        etcd_three: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(EtcdConfig(tuple(etcd_three.endpoints), dial_timeout=1,
                                    request_timeout=30))
    assert (await client.get_prefix(prefix))[0] == []
    survivor = member_of(etcd_three, client.current_endpoint)
    for i in range(3):
        if i != survivor:
            etcd_three.stop_member(i)

    async def refused_at_once() -> bool:
        """Once the survivor has noticed (etcd times out the first request, ~7 s), it
        refuses at once instead of leaving requests waiting out their 30 s timeout."""
        started = time.monotonic()
        try:
            await client.get_prefix(prefix)
        except EtcdUnavailable as exc:
            return "no leader" in str(exc) and time.monotonic() - started < 5
        return False

    started = time.monotonic()
    await async_wait_for(refused_at_once, timeout=20, what="'no leader' from the survivor")
    print(f"\nquorum lost: requests refused with 'no leader' "
          f"{time.monotonic() - started:.1f} s after the second member stopped")
