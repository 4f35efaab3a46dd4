"""The one place long-lived tasks are started, so that none of them dies unseen.

A bare ``asyncio.create_task`` whose coroutine raises keeps the exception
until someone awaits the task; nobody does for a loop meant to run for ever,
so a programming error (a ``KeyError``, an ``AttributeError``) silently
stopped status reporting, a binding's writes or the lease keepalives, while
``/healthz`` kept saying "ok". Under the supervisor an unexpected exception
is logged with its traceback, counted in
``kitex_etcd_operator_task_crashes_total{kind}``, handed to the task's
``on_crash`` (which shows it where the user looks: an Event and a condition on
the KitexService concerned), and the task starts again after a backoff. A
task that keeps crashing (``crash_limit`` times within ``window`` seconds)
turns ``/healthz`` false: a restart of the pod is then the better repair,
and Kubernetes does it.

Expected failures are handled inside the tasks, typed (``EtcdError``,
``RegistryError``, ``EtcdAccessError``, API errors); what reaches the supervisor
is a bug or an unforeseen failure, which must be seen and counted, never
swallowed into a silent retry loop. Exceptions listed as ``fatal`` (losing
leadership) end the task with that exception, for its owner to act on.

For tests only: ``KITEX_ETCD_OPERATOR_INJECT_CRASH=kind:n[,kind:n]`` makes the
first ``n`` runs of tasks of that kind raise ``InjectedCrash`` when they
start, so an operator-level test can prove the whole path (log, metric,
Event, restart, health) on a real process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import metrics

log = logging.getLogger(__name__)

KINDS = frozenset({
    "binding",  # one per (etcd, prefix, service): the writes
    "status-writer",  # KitexService status and Events
    "pod-watch",  # list + watch of pods, per namespace or cluster-wide
    "service-watch",  # list + watch of Services, likewise
    "endpointslice-watch",  # list + watch of EndpointSlices, likewise
    "keepalive",  # lease keepalives, per etcd
    "leader-election",
    "startup",  # initial lists, then letting the workers write
    "initial-sync",  # the progress report of the first sync
    "metrics",  # the event loop's lag, measured for its histogram
    "finalizer",  # one per KitexService being finalized
    # kopf's handlers (handlers.event_sinks): not restarted by us, but seen and counted
    "kitexservice-event",
    "policy-event",
    "registry-event",
    "namespace-event",
})
"""The label values of the crash metric: fixed in code, so its cardinality is bounded."""

CRASH_LIMIT = 5
CRASH_WINDOW = 300.0
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
INJECT_ENV = "KITEX_ETCD_OPERATOR_INJECT_CRASH"

def _asked_to_stop() -> bool:
    """Whether this task's ``cancel()`` was called, as opposed to a stray CancelledError."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class InjectedCrash(RuntimeError):
    """The test-only fault of ``KITEX_ETCD_OPERATOR_INJECT_CRASH``."""


def _injections(spec: str | None) -> dict[str, int]:
    """``kind:n,kind:n`` -> counts; an unknown kind is a mistake in the test, said loudly."""
    result: dict[str, int] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        kind, _, count = item.strip().partition(":")
        if kind not in KINDS:
            raise ValueError(f"{INJECT_ENV}: unknown task kind {kind!r}")
        result[kind] = int(count or "1")
    return result


@dataclass(slots=True)
class _History:
    """Recent crashes of one kind: what decides the backoff and the health."""

    times: deque[float] = field(default_factory=deque)

    def add(self, now: float, window: float) -> int:
        self.times.append(now)
        while self.times and now - self.times[0] > window:
            self.times.popleft()
        return len(self.times)

    def recent(self, now: float, window: float) -> int:
        return sum(1 for t in self.times if now - t <= window)


class Supervisor:
    """Starts, watches and restarts tasks; ``healthy`` is what ``/healthz`` reports."""

    def __init__(self, *, crash_limit: int = CRASH_LIMIT, window: float = CRASH_WINDOW,
                 backoff_initial: float = BACKOFF_INITIAL, backoff_max: float = BACKOFF_MAX,
                 inject: str | None = None) -> None:
        self.crash_limit = crash_limit
        self.window = window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._history: dict[tuple[str, str], _History] = {}
        self._inject = _injections(inject if inject is not None else os.environ.get(INJECT_ENV))
        self.crash_count = 0

    def spawn(self, kind: str, name: str, run: Callable[[], Awaitable[Any]], *,
              on_crash: Callable[[BaseException], None] | None = None,
              fatal: tuple[type[BaseException], ...] = ()) -> asyncio.Task[None]:
        """Run ``run()`` in a task, again after each crash; the task ends when a run returns.

        ``run`` is called anew for every restart (a coroutine runs only once).
        Cancelling the returned task stops it, as with ``asyncio.create_task``.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}: add it to supervisor.KINDS")
        return asyncio.create_task(self._supervise(kind, name, run, on_crash, fatal),
                                   name=f"{kind} {name}")

    async def _supervise(self, kind: str, name: str, run: Callable[[], Awaitable[Any]],
                         on_crash: Callable[[BaseException], None] | None,
                         fatal: tuple[type[BaseException], ...]) -> None:
        while True:
            try:
                if self._inject.get(kind, 0) > 0:
                    self._inject[kind] -= 1
                    raise InjectedCrash(f"fault injected into a {kind} task by {INJECT_ENV}")
                await run()
                return
            except asyncio.CancelledError as exc:
                if _asked_to_stop():
                    raise
                # A CancelledError nobody asked for: grpc raises one from a call whose
                # channel another request closed. Re-raised, it ended the task as if
                # stopped, silently (the soak found binding workers gone that way).
                crash: BaseException = exc
            except fatal:
                raise
            except Exception as exc:
                crash = exc
            recent = self.crashed(kind, name, crash)
            if on_crash is not None:
                try:
                    on_crash(crash)
                except Exception:
                    log.exception("Reporting the crash of %s task %s failed", kind, name)
            delay = self.backoff(recent)
            log.warning("Restarting %s task %s in %.1fs (%d crash(es) in the last %.0fs)",
                        kind, name, delay, recent, self.window)
            await asyncio.sleep(delay)

    def backoff(self, recent: int) -> float:
        """Seconds before a restart after the ``recent``-th crash within the window:
        doubling, capped, so a crash loop neither spins nor waits for ever."""
        return float(min(self.backoff_max, self.backoff_initial * 2 ** max(0, recent - 1)))

    def crashed(self, kind: str, name: str, exc: BaseException) -> int:
        """Log, count and remember one crash; how many of this task within the window.

        Also the entry point for code that cannot be restarted by us (kopf's
        handlers): the crash is seen, counted and weighs on health all the same.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}: add it to supervisor.KINDS")
        now = time.monotonic()
        history = self._history.setdefault((kind, name), _History())
        recent = history.add(now, self.window)
        self.crash_count += 1
        metrics.task_crashes.labels(kind).inc()
        log.error("%s task %s crashed (%s: %s)", kind, name, type(exc).__name__, exc,
                  exc_info=exc, extra={"task": f"{kind} {name}"})
        self._export(now)
        return recent

    def _export(self, now: float) -> None:
        for key in [k for k, h in self._history.items() if not h.recent(now, self.window)]:
            del self._history[key]  # a task that crashed long ago weighs nothing any more
        metrics.tasks_failing.set(len(self.failing_tasks(now)))

    def failing_tasks(self, now: float | None = None) -> list[str]:
        """Tasks past the crash limit within the window: they keep dying."""
        now = time.monotonic() if now is None else now
        return [f"{kind} {name}" for (kind, name), history in self._history.items()
                if history.recent(now, self.window) >= self.crash_limit]

    @property
    def healthy(self) -> bool:
        failing_now = self.failing_tasks()
        metrics.tasks_failing.set(len(failing_now))
        return not failing_now


_default: Supervisor | None = None


def default() -> Supervisor:
    """The process's supervisor: modules deep in the stack (a registry's keepalive loop)
    start their tasks through it without every constructor passing it along."""
    global _default
    if _default is None:
        _default = Supervisor()
    return _default


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most ``seconds`` for ``event``; whether it was set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 a cancel
    that lands as the event is set is swallowed there (the wait returns True
    and the loop goes round again), so a loop woken just before its stop was
    never stopped: a registry closed right after its first write hung in its
    keepalive loop.
    """
    try:
        async with asyncio.timeout(seconds):
            return await event.wait()
    except TimeoutError:
        return False


def spawn(kind: str, name: str, run: Callable[[], Awaitable[Any]], *,
          on_crash: Callable[[BaseException], None] | None = None,
          fatal: tuple[type[BaseException], ...] = ()) -> asyncio.Task[None]:
    """``default().spawn(...)``: what call sites use in place of ``asyncio.create_task``."""
    return default().spawn(kind, name, run, on_crash=on_crash, fatal=fatal)
