"""The supervisor, on a real event loop: crashes are seen, counted, reported and
restarted; a crash loop turns health false; stopping and fatal errors still work.

And the status writer, which used to die of the first connection error while
posting an Event: it runs against a real ``KubeApi`` whose API server does not
answer (a closed port), so every call fails the way a network failure does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any
from unittest.mock import Mock

import pytest
from prometheus_client import REGISTRY

from kitex_etcd_operator.desired import Defaults, DesiredState
from kitex_etcd_operator.kube.spec import SpecError
from kitex_etcd_operator.kubeapi import KubeApi, ObjectRef
from kitex_etcd_operator.kubeauth import Credentials
from kitex_etcd_operator.status import StatusReporter
from kitex_etcd_operator.supervisor import (
    KINDS,
    InjectedCrash,
    Supervisor,
    _injections,
    wait_set,
)
from tests.support.helpers import async_wait_for

FAST = {"backoff_initial": 0.01, "backoff_max": 0.02}


def crashes(kind: str) -> float:
    return REGISTRY.get_sample_value("kitex_etcd_operator_task_crashes_total",
                                     {"kind": kind}) or 0.0


async def test_a_crash_is_logged_counted_reported_and_restarted(
        caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(**FAST)
    runs: list[int] = []
    reported: list[BaseException] = []
    before = crashes("binding")

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise KeyError("a bug")

    with caplog.at_level(logging.ERROR):
        task = supervisor.spawn("binding", "b", work, on_crash=reported.append)
        await asyncio.wait_for(task, 10)
    assert runs == [0, 1, 2]  # two crashes, then a run that returned: the task ends
    assert [type(e) for e in reported] == [KeyError, KeyError]
    assert crashes("binding") == before + 2
    crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crash_logs) == 2
    assert all(r.exc_info and r.exc_info[0] is KeyError for r in crash_logs)  # the traceback
    assert supervisor.healthy  # two crashes are below the limit


async def test_a_task_that_keeps_dying_turns_health_false_until_the_window_passes() -> None:
    supervisor = Supervisor(crash_limit=3, window=0.5, **FAST)

    async def always() -> None:
        raise AttributeError("broken for good")

    task = supervisor.spawn("status-writer", "s", always)
    await async_wait_for(lambda: _false(supervisor.healthy), timeout=10,
                         what="health false after 3 crashes within the window")
    assert supervisor.failing_tasks() == ["status-writer s"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await async_wait_for(lambda: _true(supervisor.healthy), timeout=10,
                         what="health back once the crashes are older than the window")


async def _false(value: bool) -> bool:
    return not value


async def _true(value: bool) -> bool:
    return value


async def test_a_stop_that_lands_as_the_loop_is_woken_still_stops_it() -> None:
    """The keepalive, worker and status loops sleep in ``wait_set``. Woken and cancelled
    in the same turn (a registry closed right after its first write),
    ``asyncio.wait_for(event.wait(), ...)`` returned True and the loop ran on."""
    wake, asleep = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        while True:
            wake.clear()
            asleep.set()
            await wait_set(wake, 60)

    task = asyncio.create_task(loop())
    await asyncio.wait_for(asleep.wait(), 5)
    wake.set()
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
    assert task.cancelled()
    assert not await wait_set(asyncio.Event(), 0.01)  # a timeout is False, not an error


def test_backoff_doubles_and_is_capped() -> None:
    supervisor = Supervisor(backoff_initial=1, backoff_max=60)
    assert [supervisor.backoff(n) for n in (1, 2, 3, 4, 7, 8, 50)] == [1, 2, 4, 8, 60, 60, 60]


async def test_fatal_exceptions_end_the_task_and_cancel_stops_it() -> None:
    supervisor = Supervisor(**FAST)

    class Fatal(Exception):
        pass

    async def step_down() -> None:
        raise Fatal("lost the lease")

    task = supervisor.spawn("leader-election", "me", step_down, fatal=(Fatal,))
    with pytest.raises(Fatal):
        await asyncio.wait_for(task, 10)
    assert supervisor.crash_count == 0  # expected, not a crash

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = supervisor.spawn("pod-watch", "all", forever)
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert supervisor.crash_count == 0


async def test_a_crash_in_the_crash_report_does_not_stop_the_restart() -> None:
    supervisor = Supervisor(**FAST)
    runs: list[int] = []

    async def once_broken() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first run")

    def broken_report(exc: BaseException) -> None:
        raise RuntimeError("the report is broken too")

    await asyncio.wait_for(supervisor.spawn("finalizer", "ns/a", once_broken,
                                            on_crash=broken_report), 10)
    assert len(runs) == 2


async def test_injected_crashes_go_through_the_same_path() -> None:
    supervisor = Supervisor(inject="keepalive:2", **FAST)
    reported: list[BaseException] = []
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)

    await asyncio.wait_for(supervisor.spawn("keepalive", "etcd", work,
                                            on_crash=reported.append), 10)
    assert [type(e) for e in reported] == [InjectedCrash, InjectedCrash]
    assert runs == [1]


def test_kinds_are_a_fixed_set() -> None:
    supervisor = Supervisor()
    with pytest.raises(ValueError, match="unknown task kind"):
        supervisor.crashed("tenant-chosen", "x", RuntimeError())
    with pytest.raises(ValueError, match="unknown task kind"):
        _injections("nope:1")
    assert _injections("binding:3, status-writer") == {"binding": 3, "status-writer": 1}


async def test_every_kopf_handler_kind_is_a_task_kind_and_its_crashes_are_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, only ``kitexservice-event`` was in KINDS: a bug in ``on_policy``,
    ``on_registry`` or ``on_namespace`` made ``crashed()`` itself raise, so kopf only
    logged it, never counted and never weighing on /healthz. The kinds are read from
    the handlers' own table."""
    from kitex_etcd_operator import handlers
    from kitex_etcd_operator import supervisor as module
    from kitex_etcd_operator.controller import Controller

    monkeypatch.setattr(module, "_default", Supervisor())

    def bug(kind: str | None, body: Any) -> None:
        raise KeyError("a bug")

    kinds = [kind for _, _, _, kind, _ in handlers.event_sinks(Mock(spec=Controller))]
    assert len(kinds) == 4
    for kind in kinds:
        assert kind in KINDS
        before = crashes(kind)
        await handlers._forward(kind, bug)(
            event={"type": "ADDED", "object": {"metadata": {"namespace": "ns", "name": "x"}}})
        assert crashes(kind) == before + 1
    assert module.default().crash_count == len(kinds)


def _unreachable_kube() -> KubeApi:
    """A real client whose API server refuses connections (nothing listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return KubeApi(Credentials(server=f"http://127.0.0.1:{port}"), component="test")


def errors(kind: str) -> float:
    return REGISTRY.get_sample_value("kitex_etcd_operator_status_write_errors_total",
                                     {"kind": kind}) or 0.0


async def test_the_status_writer_survives_an_unreachable_api_server() -> None:
    kube = _unreachable_kube()
    reporter = StatusReporter(kube, DesiredState(Defaults()))
    before = errors("event")
    reporter.start()
    assert reporter._task is not None
    try:
        for n in range(3):
            reporter.event(ObjectRef("Pod", "v1", "ns", f"p{n}", f"uid-{n}"), "Test", "m")
        await async_wait_for(lambda: _true(errors("event") >= before + 3), timeout=30,
                             what="three failed Event posts counted")
        assert not reporter._task.done()  # it died at the first one before
    finally:
        await reporter.stop()
        await kube.close()


class GatedKube:
    """Status patches recorded; the first one held until ``gate`` is set."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.gate = asyncio.Event()

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append(status)
        if len(self.patches) == 1:
            await self.gate.wait()

    async def post_event(self, *_: Any, **__: Any) -> None:
        pass


async def test_a_status_that_arrives_mid_patch_is_written_after_it() -> None:
    """Before, the writer cleared ``pending`` after its patch without looking: a newer
    status (generation 2's invalid spec) set during the patch was never written."""
    kube = GatedKube()
    reporter = StatusReporter(kube, DesiredState(Defaults()))  # type: ignore[arg-type]
    body: dict[str, Any] = {"apiVersion": "kitex.cloudwego.io/v1alpha1", "metadata": {
        "namespace": "ns", "name": "svc", "uid": "u1", "generation": 1}}
    reporter.spec_invalid(("ns", "svc"), body, SpecError("spec.a", "first problem"))
    reporter.start()
    try:
        await async_wait_for(lambda: _true(len(kube.patches) == 1), timeout=10,
                             what="the first patch in flight", interval=0.01)
        body["metadata"]["generation"] = 2
        reporter.spec_invalid(("ns", "svc"), body, SpecError("spec.b", "second problem"))
        kube.gate.set()
        await async_wait_for(lambda: _true(len(kube.patches) == 2), timeout=10,
                             what="the newer status written", interval=0.01)
        assert kube.patches[1]["observedGeneration"] == 2
        assert "spec.b" in kube.patches[1]["lastError"]
        await async_wait_for(lambda: _true(reporter.objects[("ns", "svc")].pending is None),
                             timeout=10, what="nothing left to write", interval=0.01)
    finally:
        await reporter.stop()


async def test_leader_election_survives_an_unreachable_api_server(
        caplog: pytest.LogCaptureFixture) -> None:
    """Before, the first refused connection ended the election task, and the runner
    then the whole process: an API server restart killed every replica."""
    from kitex_etcd_operator.leader import ElectionConfig, LeaderElector

    kube = _unreachable_kube()
    elector = LeaderElector(kube, ElectionConfig(namespace="ns", identity="me",
                                                 retry_period=0.05))
    task = asyncio.create_task(elector.run())
    try:
        with caplog.at_level(logging.WARNING):
            await async_wait_for(
                lambda: _true(sum("Leader election:" in r.getMessage()
                                  for r in caplog.records) >= 3),
                timeout=30, what="three failed rounds of leader election")
        assert not task.done()
        assert not elector.leading.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_a_stray_cancelled_error_is_a_crash_not_a_stop() -> None:
    """grpc raises CancelledError in a call whose channel was closed by another
    request; the task was not asked to stop, so it must not end in silence."""
    supervisor = Supervisor(**FAST)
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise asyncio.CancelledError()

    await asyncio.wait_for(supervisor.spawn("binding", "stray", work), 10)
    assert len(runs) == 2
    assert supervisor.crash_count == 1
