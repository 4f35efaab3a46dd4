"""A binding worker's life: what reaches it while it removes a service, what may start
after the controller stops, and what a Secret the API server cannot hand over does.

The controller runs with no Kubernetes and a registry that only records what it
is asked to write (no etcd): these are decisions of the worker, not of etcd.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from kitex_etcd_operator.controller import Controller
from kitex_etcd_operator.desired import EtcdAccess
from kitex_etcd_operator.kubeapi import ApiError
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.registry import SyncResult
from kitex_etcd_operator.retry import RetryConfig
from kitex_etcd_operator.settings import DefaultEtcd, Settings
from tests.support.factories import ANNOTATED, pod
from tests.support.helpers import FailingSecrets, async_wait_for

ECHO = Binding("default", "kitex/registry-etcd", "echo")


class Registry:
    """What a worker asks of an etcd, recorded; ``remove`` waits for ``gate``."""

    owner_prefix = "kitex-etcd-operator"

    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.removed: list[Binding] = []
        self.on_record: set[tuple[str, str]] = set()
        self.removing = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    def recorded_owner(self, binding: Binding) -> str | None:
        return None

    def recorded(self, binding: Binding) -> bool:
        return True

    def nesting_on_record(self, binding: Binding) -> list[Binding]:
        return []

    async def sync(self, binding: Binding, desired: Mapping[str, bytes], **kw: Any) -> SyncResult:
        self.written.append(sorted(desired))
        return SyncResult(puts=len(desired))

    def bindings_on_record(self) -> set[tuple[str, str]]:
        return self.on_record

    async def remove(self, binding: Binding, **kw: Any) -> int:
        self.removing.set()
        await self.gate.wait()
        self.removed.append(binding)
        return 1


def faked(registry: Registry, asked: list[EtcdAccess] | None = None) -> Controller:
    """A controller whose every etcd is ``registry``; ``asked`` collects the accesses."""
    c = Controller(Settings(debounce=0.0), kube=None)

    async def get(access: EtcdAccess) -> Registry:
        if asked is not None:
            asked.append(access)
        return registry

    async def refresh(access: EtcdAccess) -> bool:
        return False

    c.connections.get = get  # type: ignore[assignment,method-assign]
    c.connections.refresh = refresh  # type: ignore[method-assign]
    return c


@pytest.fixture
async def controller() -> AsyncIterator[tuple[Controller, Registry]]:
    registry = Registry()
    c = faked(registry)
    c.synced.set()
    yield c, registry
    await c.stop()


def _true(fn: Any) -> Any:
    async def check() -> bool:
        return bool(fn())
    return check


async def test_a_pod_ready_during_the_removal_is_written(
        controller: tuple[Controller, Registry]) -> None:
    """The removal's worker was poked by the new pod and forgot it: nothing wrote it."""
    c, registry = controller
    c.on_pod(None, pod("a", "10.0.0.1", annotations=ANNOTATED))
    await async_wait_for(_true(lambda: registry.written), what="pod a written")
    registry.gate.clear()
    c.on_pod("DELETED", pod("a", "10.0.0.1", annotations=ANNOTATED))  # the last one: removal
    await asyncio.wait_for(registry.removing.wait(), 5)
    c.on_pod("ADDED", pod("b", "10.0.0.2", annotations=ANNOTATED))  # ready while revoking
    registry.gate.set()
    await async_wait_for(_true(lambda: registry.written[-1] == [
        "kitex/registry-etcd/echo/10.0.0.2:8888"]), timeout=5, what="pod b written")
    assert ECHO in c.workers and not c.workers[ECHO].done


async def test_a_removal_with_nothing_new_lets_the_worker_go(
        controller: tuple[Controller, Registry]) -> None:
    c, registry = controller
    c.on_pod(None, pod("a", "10.0.0.1", annotations=ANNOTATED))
    await async_wait_for(_true(lambda: registry.written), what="pod a written")
    c.on_pod("DELETED", pod("a", "10.0.0.1", annotations=ANNOTATED))
    await async_wait_for(_true(lambda: ECHO not in c.workers), timeout=5, what="worker gone")


async def test_orphans_wait_for_the_complete_view_and_only_the_default_etcds() -> None:
    """Records of the default etcd read before the initial lists are complete wait for
    them. Those read through another scope are not adopted: records are keyed by the
    cluster, not the scope, and a tenant's endpoints naming another registry's etcd
    would have its live services removed as orphans."""
    registry, asked = Registry(), []
    registry.on_record = {("kitex/registry-etcd", "gone")}
    c = faked(registry, asked)
    team = EtcdAccess(scope="etcd-b:2379", registry=None, endpoints=("etcd-b:2379",),
                      namespace="team-b")
    try:
        c._ownership_loaded(EtcdAccess(), registry)  # type: ignore[arg-type]
        assert not c.workers, "judged orphaned before the lists were complete"
        await c.start()
        await async_wait_for(_true(lambda: len(registry.removed) == 1 and not c.workers),
                             timeout=5, what="the default etcd's orphan removed")
        c._ownership_loaded(team, registry)  # type: ignore[arg-type]
        assert not c.workers, "another scope's records were adopted"
        assert registry.removed == [Binding("default", "kitex/registry-etcd", "gone")]
    finally:
        await c.stop()


async def test_no_worker_starts_once_stopped(controller: tuple[Controller, Registry]) -> None:
    """kopf delivers events until the Lease is released, after the controller's stop:
    a worker started then connected again and wrote while the standby took over."""
    c, registry = controller
    c.on_pod(None, pod("a", "10.0.0.1", annotations=ANNOTATED))
    await async_wait_for(_true(lambda: registry.written), what="pod a written")
    await c.stop()
    other = dict(ANNOTATED, **{"kitex.cloudwego.io/service": "payment"})
    c.on_pod("ADDED", pod("b", "10.0.0.2", annotations=other))
    assert not [w for w in c.workers.values() if w.task is not None and not w.task.done()]
    assert registry.written == [["kitex/registry-etcd/echo/10.0.0.1:8888"]]


@pytest.mark.parametrize("error", [
    ApiError(503, "Service Unavailable"), ApiError(429, "Too Many Requests"),
    aiohttp.ServerDisconnectedError(), aiohttp.ClientPayloadError("cut"),
])
async def test_a_secret_the_api_server_cannot_hand_over_is_a_retried_failure(
        error: Exception) -> None:
    """A 503 from an upgrading API server crashed every worker reading a Secret (an
    InternalError Event each time, /healthz false after five): now a failed sync,
    retried with backoff, whose reason says what is missing."""
    settings = Settings(etcd=DefaultEtcd(secret="ops/etcd-creds"),
                        retry=RetryConfig(retry_delay=1.0))
    c = Controller(settings, kube=None)
    c.connections.kube = FailingSecrets(error)  # type: ignore[assignment]
    c.synced.set()
    try:
        c.on_pod(None, pod("a", "10.0.0.1", annotations=ANNOTATED))
        worker = c.workers[ECHO]
        await async_wait_for(_true(lambda: worker.retry.failures), timeout=5,
                             what="the sync failed")
        assert worker.retry.reason == "CredentialsUnavailable"
        assert worker.retry.last_error is not None
        assert "--etcd-secret: the Secret could not be read" in worker.retry.last_error
        assert worker.task is not None and not worker.task.done()
    finally:
        await c.stop()
