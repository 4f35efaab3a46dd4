"""Helpers shared by the tests: waiting with a deadline, pod readiness.

Tests never sleep for a fixed time: they wait for the condition they need,
with a deadline, and fail saying what they were waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.1,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that.

    An exception from ``predicate`` counts as "not yet" (the resource may not
    exist yet) and is reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = 30.0,  # noqa: ASYNC109 - the same signature as wait_for
    what: str = "condition",
    interval: float = 0.1,
) -> T:
    """:func:`wait_for` for coroutines: awaits ``predicate()`` each round."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await predicate()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def pod_is_ready(pod: Any) -> bool:
    """The pod's Ready condition, as the EndpointSlice controller reads it."""
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def set_pod_ready(core: Any, name: str, namespace: str, ready: bool) -> Any:
    """Set a kwok pod's Ready (and ContainersReady) condition through the
    status subresource, like a kubelet whose readiness probe flips.

    This holds: kwok's default ``pod-ready`` Stage only selects pods whose
    phase is Pending, so once a pod is Running kwok never rewrites its
    conditions again. Call again with ``ready=True`` to make it ready.
    """
    status = "True" if ready else "False"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"type": t, "status": status, "lastTransitionTime": now, "reason": "Test"}
        for t in ("Ready", "ContainersReady")
    ]
    # Strategic merge: conditions merge by type, the others are kept.
    return core.patch_namespaced_pod_status(name, namespace, {"status": {"conditions": conditions}})


def create_namespace(core: Any, name: str, labels: dict[str, str] | None = None) -> str:
    """A namespace with its default ServiceAccount, usable for pods at once.

    Pods are refused until the namespace has its default ServiceAccount. The
    controller-manager creates it, but after an API server restart (a fault test)
    it may take minutes to do so: create it here, the controller's copy is the same.
    """
    from kubernetes import client

    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    try:
        core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    return name


@contextlib.contextmanager
def sampled(measure: Callable[[], T]) -> Iterator[list[T]]:
    """Call ``measure`` over and over in a thread while the block runs; the values taken
    (a rolling update's instance counts, say: never zero)."""
    values: list[T] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            values.append(measure())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield values
    finally:
        stop.set()
        sampler.join()


class FailingSecrets:
    """An API server that answers every Secret read with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def read_secret(self, namespace: str, name: str, *,
                          secret_type: str | None = None) -> dict[str, bytes]:
        raise self.error
