"""Retry, the registry-etcd way and better: repair within observeDelay, degrade, never give up.

The controller runs in this process with no Kubernetes (pods are fed as the
API server would send them), against an etcd of its own that the tests stop
and start.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kitex_etcd_operator.controller import Controller
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.retry import RetryConfig
from kitex_etcd_operator.settings import DefaultEtcd, Settings
from tests.support.etcd_probe import EtcdProbe
from tests.support.factories import pod
from tests.support.helpers import async_wait_for

OBSERVE, RETRY, ATTEMPTS = 1.0, 0.3, 3


@pytest.fixture
async def controller(etcd: Any) -> AsyncIterator[Controller]:
    settings = Settings(
        etcd=DefaultEtcd(endpoints=tuple(etcd.endpoints), dial_timeout=0.5),
        retry=RetryConfig(max_attempt_times=ATTEMPTS, observe_delay=OBSERVE, retry_delay=RETRY),
        cluster_id=f"c-{uuid.uuid4().hex[:6]}", lease_ttl=10)
    c = Controller(settings, kube=None)
    await c.start()
    yield c
    await c.stop()


def feed(controller: Controller, service: str, count: int) -> dict[str, str]:
    ips = {}
    for i in range(count):
        ip = f"10.2.0.{i + 1}"
        controller.on_pod(None, pod(f"{service}-{i}", ip, annotations={
            "kitex.cloudwego.io/service": service, "kitex.cloudwego.io/port": "8888"}))
        ips[ip] = f"kitex/registry-etcd/{service}/{ip}:8888"
    return ips


async def test_a_key_deleted_by_hand_is_back_within_observe_delay(
        controller: Controller, etcd: Any, tools: Any) -> None:
    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    keys = feed(controller, "repair", 3)
    await async_wait_for(_has(probe, "kitex/registry-etcd/repair/", 3), what="3 keys")
    victim = next(iter(keys.values()))
    probe.delete(victim)
    deleted_at = time.monotonic()
    await async_wait_for(_has(probe, "kitex/registry-etcd/repair/", 3), timeout=OBSERVE * 3,
                         what="the deleted key put back")
    print(f"key restored {time.monotonic() - deleted_at:.2f}s after a manual delete "
          f"(observeDelay {OBSERVE}s)")


async def test_etcd_down_degrades_then_everything_comes_back(
        controller: Controller, etcd: Any, tools: Any) -> None:
    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    feed(controller, "outage", 4)
    await async_wait_for(_has(probe, "kitex/registry-etcd/outage/", 4), what="4 keys")
    binding = Binding("default", "kitex/registry-etcd", "outage")
    worker = controller.workers[binding]
    config = worker.config

    etcd.stop_member(0)
    # Changes while etcd is down: one pod leaves, two arrive.
    controller.on_pod("DELETED", pod("outage-0"))
    feed_more = {f"10.2.1.{i}": f"kitex/registry-etcd/outage/10.2.1.{i}:8888" for i in (1, 2)}
    for i, ip in enumerate(feed_more):
        controller.on_pod(None, pod(f"late-{i}", ip, annotations={
            "kitex.cloudwego.io/service": "outage", "kitex.cloudwego.io/port": "8888"}))
    await async_wait_for(_true(lambda: worker.retry.degraded(config.retry)),
                         timeout=RETRY * ATTEMPTS * 10 + 10, what="the service reported degraded")
    assert worker.retry.failures >= ATTEMPTS and worker.retry.last_error
    failures_when_degraded = worker.retry.failures
    await async_wait_for(_true(lambda: worker.retry.failures > failures_when_degraded),
                         timeout=OBSERVE * 5 + 10, what="still trying after degraded")

    etcd.start_member(0)
    back = time.monotonic()
    want = {f"kitex/registry-etcd/outage/10.2.0.{i}:8888" for i in (2, 3, 4)} | set(
        feed_more.values())
    await async_wait_for(_equals(probe, "kitex/registry-etcd/outage/", want),
                         timeout=OBSERVE * 3 + 10, what="exactly the desired keys after recovery")
    await async_wait_for(_true(lambda: worker.retry.failures == 0), what="healthy again")
    print(f"recovered {time.monotonic() - back:.2f}s after etcd came back "
          f"(observeDelay {OBSERVE}s)")


async def test_a_lost_lease_is_replaced_and_entries_rewritten(
        controller: Controller, etcd: Any, tools: Any) -> None:
    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    feed(controller, "lease", 2)
    await async_wait_for(_has(probe, "kitex/registry-etcd/lease/", 2), what="2 keys")
    old = {kv.lease for kv in probe.get_prefix("kitex/registry-etcd/lease/").values()}
    probe.run("lease", "revoke", f"{old.pop():x}")  # as if the lease expired
    await async_wait_for(_has(probe, "kitex/registry-etcd/lease/", 2), timeout=OBSERVE * 3 + 10,
                         what="entries back on a new lease")
    new = {kv.lease for kv in probe.get_prefix("kitex/registry-etcd/lease/").values()}
    assert len(new) == 1 and not new & old


def _has(probe: EtcdProbe, prefix: str, count: int) -> Any:
    async def check() -> bool:
        return len(probe.values(prefix)) == count
    return check


def _equals(probe: EtcdProbe, prefix: str, keys: set[str]) -> Any:
    async def check() -> bool:
        return set(probe.values(prefix)) == keys
    return check


def _true(fn: Any) -> Any:
    async def check() -> bool:
        return bool(fn())
    return check


async def test_a_lease_revoked_by_hand_is_replaced_at_the_next_write(
        etcd: Any, tools: Any) -> None:
    """With a 60 s TTL the next keepalive is 20 s away: before, every observation in
    between failed ("requested lease not found"), the service turned Degraded, and the
    entries stayed missing until the keepalive noticed. Now the failed write itself
    replaces the lease, and no sync fails."""
    settings = Settings(
        etcd=DefaultEtcd(endpoints=tuple(etcd.endpoints), dial_timeout=0.5),
        retry=RetryConfig(max_attempt_times=ATTEMPTS, observe_delay=OBSERVE, retry_delay=RETRY),
        cluster_id=f"c-{uuid.uuid4().hex[:6]}", lease_ttl=60)
    controller = Controller(settings, kube=None)
    await controller.start()
    try:
        probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
        feed(controller, "revoked", 2)
        await async_wait_for(_has(probe, "kitex/registry-etcd/revoked/", 2), what="2 keys")
        worker = controller.workers[Binding("default", "kitex/registry-etcd", "revoked")]
        old = {kv.lease for kv in probe.get_prefix("kitex/registry-etcd/revoked/").values()}
        probe.run("lease", "revoke", f"{next(iter(old)):x}")
        failures: list[int] = []

        async def back() -> bool:
            failures.append(worker.retry.failures)
            return len(probe.values("kitex/registry-etcd/revoked/")) == 2

        await async_wait_for(back, timeout=60, what="entries back on a new lease")
        new = {kv.lease for kv in probe.get_prefix("kitex/registry-etcd/revoked/").values()}
        assert len(new) == 1 and not new & old
        assert max(failures) == 0, "a sync failed on the revoked lease"
    finally:
        await controller.stop()


async def test_workers_racing_for_a_new_etcd_share_one_registry(etcd: Any) -> None:
    """The soak saw "Adopted 4 lease(s)" five times at each start: every worker made
    its own registry, two of them granted a lease for one service, and each took
    the other's keys for a conflict, so a gone pod's key stayed. One registry now."""
    import asyncio

    from kitex_etcd_operator.connections import EtcdConnections
    from kitex_etcd_operator.desired import EtcdAccess

    connections = EtcdConnections(Settings(etcd=DefaultEtcd(endpoints=tuple(etcd.endpoints))), None)
    try:
        registries = await asyncio.gather(*(connections.get(EtcdAccess()) for _ in range(5)))
        assert len({id(r) for r in registries}) == 1
    finally:
        await connections.close()


async def test_a_lease_whose_revoke_failed_is_never_written_again(
        etcd: Any, tools: Any) -> None:
    """The 30-minute soak saw a whole service's keys deleted in one revision the
    moment etcd came back from an outage, while their pods stayed ready: the last
    pod had gone, the service's removal revoked its lease as etcd went down (the
    call failed, but etcd may still apply such a request when its members return),
    a new pod came, and its key was written on that same lease, which the late
    revoke then took away. A lease once asked to be revoked is given up for good."""
    from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig, EtcdError
    from kitex_etcd_operator.model import Instance, instance_key
    from kitex_etcd_operator.registry import BindingRegistry

    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    prefix, service = "kitex/registry-etcd", "late-revoke"
    binding = Binding("default", prefix, service)
    address = Instance.make("10.3.0.1", 8888)
    want = {instance_key(prefix, service, address.address): address.encode()}
    client = EtcdClient(EtcdConfig(tuple(etcd.endpoints), dial_timeout=0.5,
                                   request_timeout=1.0))
    registry = BindingRegistry(client, cluster_id=f"c-{uuid.uuid4().hex[:6]}")
    try:
        await registry.load_ownership()
        await registry.sync(binding, want, ttl=60)
        (old,) = {kv.lease for kv in probe.get_prefix(f"{prefix}/{service}/").values()}

        etcd.stop_member(0)
        with pytest.raises(EtcdError):
            await registry.remove(binding)  # the last pod gone; etcd answers nothing
        etcd.start_member(0)

        await registry.sync(binding, want, ttl=60)  # a pod of the service again
        (new,) = {kv.lease for kv in probe.get_prefix(f"{prefix}/{service}/").values()}
        assert new != old, "the entry was written on the lease being revoked"
        try:  # the lost revoke, applied late (unless the sync revoked the drained lease)
            probe.run("lease", "revoke", f"{old:x}")
        except RuntimeError as exc:
            assert "lease not found" in str(exc)
        assert set(probe.values(f"{prefix}/{service}/")) == set(want)
        assert old not in registry.owned_leases(), "the old lease is still kept as ours"
    finally:
        await registry.close()
        await client.close()


async def test_orphans_are_removed_when_the_default_etcd_is_down_at_the_start(
        etcd: Any, tools: Any) -> None:
    """A service deleted while the operator was down, and its etcd down too as the
    operator started: the one connection at the start failed, and the first worker
    to connect later put the orphan's lease on the keepalive schedule for good."""
    from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
    from kitex_etcd_operator.model import Instance, instance_key
    from kitex_etcd_operator.registry import BindingRegistry

    probe = EtcdProbe(tools.etcdctl, etcd.endpoints)
    cluster, prefix = f"c-{uuid.uuid4().hex[:6]}", "kitex/registry-etcd"
    address = Instance.make("10.4.0.1", 8888)
    client = EtcdClient(EtcdConfig(tuple(etcd.endpoints)))
    earlier = BindingRegistry(client, cluster_id=cluster)  # the operator before it stopped
    try:
        await earlier.load_ownership()
        await earlier.sync(Binding("default", prefix, "gone"),
                           {instance_key(prefix, "gone", address.address): address.encode()},
                           ttl=60)
    finally:
        await earlier.close()
        await client.close()

    etcd.stop_member(0)
    settings = Settings(
        etcd=DefaultEtcd(endpoints=tuple(etcd.endpoints), dial_timeout=0.5),
        retry=RetryConfig(max_attempt_times=ATTEMPTS, observe_delay=OBSERVE, retry_delay=RETRY),
        cluster_id=cluster, lease_ttl=10)
    controller = Controller(settings, kube=None)
    await controller.start()
    try:
        assert not controller.connections.scopes(), "the default etcd was reachable"
        etcd.start_member(0)
        feed(controller, "alive", 1)
        await async_wait_for(_has(probe, f"{prefix}/alive/", 1), timeout=30, what="alive written")
        # Well within the orphan's 60 s TTL: revoked, not left to expire (or kept alive).
        await async_wait_for(_has(probe, f"{prefix}/gone/", 0), timeout=20,
                             what="the orphan's entry removed")
        assert Binding("default", prefix, "gone") not in controller.workers
    finally:
        await controller.stop()
