"""The loops that keep etcd in line with Kubernetes, one per binding.

Pod events (``podwatch``) and KitexService events (kopf) update
``DesiredState`` and wake the binding's worker. A worker waits a few
milliseconds to gather a burst, then writes only the keys that changed;
every ``observeDelay`` (or ``retryDelay`` after a failure) it reads its
whole range and repairs it, as registry-etcd does. Nothing is deleted
before the initial lists of pods and KitexServices are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from . import metrics, supervisor
from .desired import ANNOTATIONS, BindingConfig, Defaults, DesiredState, SpecKey, TargetRef
from .etcd.errors import EtcdError
from .finalizers import Finalizers
from .kube.pods import pod_view
from .kube.spec import SpecError, parse_kitexservice
from .kubeapi import API_ERRORS, CrdMissing, KubeApi
from .plan import Binding, Policy
from .podwatch import PodWatch
from .registry import RegistryError, SyncResult
from .retry import RetryState
from .settings import Settings
from .status import StatusReporter
from .targets import TargetError, Targets

log = logging.getLogger(__name__)
RECOVERABLE = (EtcdError, RegistryError, TargetError, OSError)
LIST_RETRY = 5.0


class Controller:
    """Owns the desired state, the etcd targets and the binding workers."""

    def __init__(self, settings: Settings, kube: KubeApi | None) -> None:
        self.settings = settings
        self.kube = kube
        self.state = DesiredState(Defaults(settings.prefix, settings.lease_ttl, settings.retry))
        self.targets = Targets(settings, kube, on_lease_lost=self._lease_lost)
        self.status = StatusReporter(kube, self.state)
        self.finalizers = Finalizers(kube, self.wait_removed)
        self.synced = asyncio.Event()
        self.workers: dict[Binding, BindingWorker] = {}
        self._versions: dict[str, int] = {}  # pod uid -> resourceVersion seen
        self._tombstones: dict[str, float] = {}  # pod uid -> when it was deleted
        self._seen_at: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spec_bindings: dict[SpecKey, Binding] = {}
        self._watching = False
        self.pod_watches = [] if kube is None else [
            PodWatch(kube, ns, self, resync_period=settings.resync_period)
            for ns in settings.namespaces or (None,)]

    # --- events from kopf or from lists -------------------------------------

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        uid = str(body.get("metadata", {}).get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            self._tombstones[uid] = time.monotonic()
            self._versions.pop(uid, None)
            self._seen_at.pop(uid, None)
            self.state.remove_pod(uid)
        else:
            if uid in self._tombstones:
                return
            version = _version(body)
            if version is not None and version < self._versions.get(uid, -1):
                return  # an older copy than one we already hold (list vs watch)
            if version is not None:
                self._versions[uid] = version
            self._seen_at[uid] = time.monotonic()
            self.state.upsert_pod(pod_view(body))
        metrics.pods_seen.set(len(self.state.pods))
        self._wake_dirty()

    def on_kitexservice(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        key: SpecKey = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        self.finalizers.observe(key, body, deleted=event_type == "DELETED")
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            if key not in self.state.specs and event_type != "DELETED":
                self._forget_unseen_spec(key, body)
            self.state.remove_spec(key)
            self.status.forget(key) if event_type == "DELETED" else None
        else:
            try:
                spec = parse_kitexservice(body)
            except SpecError as err:
                self.state.remove_spec(key)
                self.status.spec_invalid(key, body, err)
            else:
                self.state.upsert_spec(key, spec, _selector(body))
                self._spec_bindings[key] = self.state.binding_of(spec, key[0])[0]
                self.status.spec_valid(key, body)
        self._wake_dirty()

    def _forget_unseen_spec(self, key: SpecKey, body: Mapping[str, Any]) -> None:
        """A KitexService deleted while we were down: still take its entries out."""
        try:
            spec = parse_kitexservice(body)
        except SpecError:
            return
        binding, config = self.state.binding_of(spec, key[0])
        self._spec_bindings[key] = binding
        self.state.configs.setdefault(binding, config)
        self.state.dirty[binding]

    def _wake_dirty(self) -> None:
        for binding, keys in self.state.take_dirty().items():
            worker = self.workers.get(binding)
            if worker is None or worker.done:
                worker = self.workers[binding] = BindingWorker(self, binding)
            worker.poke(keys)

    async def _lease_lost(self, binding: Binding) -> None:
        worker = self.workers.get(binding)
        if worker is not None:
            worker.lease_lost()

    # --- life cycle -----------------------------------------------------------

    def watch_pods(self) -> None:
        """Start the pod watches; before leadership too, so a standby holds a warm view."""
        if self._watching or self.kube is None:
            return
        self._watching = True
        for watch in self.pod_watches:
            self._tasks.append(supervisor.spawn("pod-watch", watch.scope, watch.run))

    async def start(self) -> None:
        """Load the full lists, then let workers write and clean up what vanished."""
        while self.kube is not None:
            try:
                await self._list_kitexservices()
                break
            except API_ERRORS as exc:
                log.error("Listing KitexServices failed, retrying in %gs: %s", LIST_RETRY, exc)
                await asyncio.sleep(LIST_RETRY)
        self.watch_pods()
        await asyncio.gather(*(watch.listed.wait() for watch in self.pod_watches))
        self.synced.set()
        self.finalizers.start()
        metrics.initial_sync_done.set(1)
        await self._adopt_orphans()
        started = time.monotonic()
        self._tasks.append(supervisor.spawn("initial-sync", "report",
                                            lambda: self._report_initial_sync(started)))
        self.status.start()
        log.info("Initial sync started: %d pod(s), %d KitexService(s), %d binding(s)",
                 len(self.state.pods), len(self.state.specs), len(self.workers))

    async def _list_kitexservices(self) -> None:
        """The complete list, or an exception: a failed list is never read as empty.

        A missing KitexService CRD is the one exception that is not retried:
        annotation mode works without it, and kopf starts watching the CRD's
        objects once it is installed. Pods come from ``podwatch``, whose first
        complete list ``start`` waits for.
        """
        assert self.kube is not None
        try:
            specs = await self.kube.list_kitexservices(self.settings.namespaces)
        except CrdMissing:
            log.error("The KitexService CRD is not installed: annotated pods are registered, "
                      "KitexServices will be once `kubectl apply -k crds/` has run")
            specs = []
        for body in specs:
            self.on_kitexservice(None, body)

    def pods_listed(self, namespace: str | None, uids: set[str], started: float) -> None:
        """A complete list of pods: those we hold that it lacks were deleted unseen.

        A pod heard of after the list began (a watch event racing the list) is
        kept: its absence may only mean the list's snapshot predates it.
        """
        for uid, pod in list(self.state.pods.items()):
            if uid in uids or (namespace is not None and pod.namespace != namespace):
                continue
            if self._seen_at.get(uid, 0) < started:
                log.info("Pod %s/%s vanished without a delete event; removing it",
                         pod.namespace, pod.name)
                self.on_pod("DELETED", {"metadata": {"uid": uid}})
        cutoff = started - self.settings.resync_period
        self._tombstones = {u: t for u, t in self._tombstones.items() if t > cutoff}

    async def _adopt_orphans(self) -> None:
        """Bindings we own leases for that nothing asks for any more: empty them.

        Only the default target is known without a spec; other targets'
        orphans are found once a spec names them again.
        """
        try:
            registry = await self.targets.get(TargetRef())
        except RECOVERABLE as exc:
            log.warning("Default etcd target not reachable yet: %s", exc)
            return
        for prefix, service in registry.bindings_on_record():
            binding = Binding(TargetRef().id, prefix, service)
            if binding not in self.workers:
                self.state.configs.setdefault(binding, self._default_config())
                self.workers[binding] = BindingWorker(self, binding)
                self.workers[binding].poke(set())

    def _default_config(self) -> BindingConfig:
        return BindingConfig(TargetRef(), self.settings.lease_ttl, self.settings.retry)

    async def _report_initial_sync(self, started: float) -> None:
        """Progress of the first sync, which takes seconds with thousands of pods."""
        while not self.ready:
            done = sum(1 for w in self.workers.values() if w.attempted)
            log.info("Initial sync: %d of %d service(s) written", done, len(self.workers))
            await asyncio.sleep(2)
        instances = sum(self.state.instance_count(b) for b in self.workers)
        log.info("Initial sync complete: %d instance(s) in %d service(s) in %.1f s", instances,
                 len(self.workers), time.monotonic() - started)

    async def wait_removed(self, key: SpecKey) -> None:
        """Until the entries of a deleted KitexService are gone (for its finalizer).

        The spec has already left the desired state; its binding's worker is
        settled once it wrote that (or revoked the binding's lease).
        """
        binding = self._spec_bindings.get(key)
        worker = self.workers.get(binding) if binding is not None else None
        if worker is not None and not worker.done:
            await worker.settled()
        self._spec_bindings.pop(key, None)

    def last_error(self, key: SpecKey) -> str | None:
        binding = self._spec_bindings.get(key)
        worker = self.workers.get(binding) if binding is not None else None
        return worker.retry.last_error if worker is not None else None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for worker in self.workers.values():
            worker.cancel()
        await asyncio.gather(*self._tasks, *(w.task for w in self.workers.values() if w.task),
                             return_exceptions=True)
        await self.status.stop()
        await self.finalizers.stop()
        await self.targets.close()

    @property
    def warm(self) -> bool:
        """Every pod watch has delivered a complete list: a standby could take over now."""
        return all(watch.listed.is_set() for watch in self.pod_watches)

    @property
    def ready(self) -> bool:
        """After the initial lists, once every service was tried: a target that keeps
        failing shows as Degraded on its KitexService, it must not hold up a rollout."""
        return self.synced.is_set() and all(w.attempted for w in self.workers.values())


class BindingWorker:
    """Keeps one binding in line: debounced incremental writes plus periodic observation."""

    def __init__(self, controller: Controller, binding: Binding) -> None:
        self.c = controller
        self.binding = binding
        self.dirty: set[str] = set()
        self.full = True
        self.retry = RetryState()
        self.attempted = False
        self.last: SyncResult | None = None
        self.capped_deletes = 0  # deletes --max-deletes held back in the last cycle
        self.last_sync_time: float | None = None
        self.done = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._not_before = 0.0
        self._changed_since: float | None = None  # first change not yet in etcd
        self.task: asyncio.Task[None] | None = supervisor.spawn(
            "binding", str(binding), self._run, on_crash=self._crashed)

    @property
    def _log_extra(self) -> dict[str, str]:
        """Fields of the JSON log format: which service a line is about."""
        return {"service": self.binding.service, "binding": str(self.binding)}

    def poke(self, keys: set[str]) -> None:
        if keys and self._changed_since is None:
            self._changed_since = time.monotonic()
        self.dirty |= keys
        self._idle.clear()
        self._wake.set()

    def lease_lost(self) -> None:
        self.full = True
        self._wake.set()

    def _crashed(self, exc: BaseException) -> None:
        """A bug ended this worker's loop: say so on its KitexServices; the restart
        starts with a full sync, and readiness does not wait for a worker that crashes."""
        message = (f"internal error in the operator ({type(exc).__name__}: {exc}); the "
                   "worker restarts, see the operator's log")
        self.retry = self.retry.failed(message, "InternalError")
        self.full, self.attempted = True, True
        self.c.status.task_crashed(self.binding, message)
        self.c.status.binding_synced(self.binding, self)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def settled(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        await self.c.synced.wait()
        while True:
            await self._wait_for_work()
            await asyncio.sleep(self.c.settings.debounce)
            config = self.c.state.configs.get(self.binding)
            if config is None:
                log.warning("No configuration for %s; dropping it", self.binding)
                self.done = True
                return
            keys = None if self.full else self.dirty
            self.dirty, self.full = set(), False
            changed, self._changed_since = self._changed_since, None
            if not self.c.state.sources.get(self.binding) \
                    and not self.c.state.instance_count(self.binding):
                if await self._remove(config.target):
                    return
                continue
            if await self._sync(config, keys):
                if changed is not None:
                    metrics.change_seconds.observe(time.monotonic() - changed)
            elif changed is not None:  # still pending: the retry carries it
                self._changed_since = min(changed, self._changed_since or changed)

    async def _wait_for_work(self) -> None:
        config = self.c.state.configs.get(self.binding)
        delay = self.retry.next_delay(config.retry) if config else 30.0
        deadline = (self.last_sync_time or time.monotonic()) + delay
        while not (self.dirty or self.full):
            self._idle.set()
            self._wake.clear()
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                self.full = True
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        wait = self._not_before - time.monotonic()
        if wait > 0:  # after a failure, changes wait for retryDelay like everything else
            await asyncio.sleep(wait)
        self._idle.clear()

    async def _sync(self, config: Any, keys: set[str] | None) -> bool:
        started = time.monotonic()
        try:
            registry = await self.c.targets.get(config.target)
            if keys is None:
                await self.c.targets.refresh(config.target)
            result = await registry.sync(
                self.binding, self.c.state.view(self.binding), ttl=config.ttl, keys=keys,
                policy=self.c.settings.policy, max_deletes=self.c.settings.max_deletes,
                dry_run=self.c.settings.dry_run)
        except RECOVERABLE as exc:
            self.retry = self.retry.failed(str(exc), failure_reason(exc))
            self.full = True
            self._not_before = time.monotonic() + self.retry.next_delay(config.retry)
            metrics.etcd_errors.labels("sync").inc()
            log.warning("Sync of %s failed (%d in a row): %s", self.binding,
                        self.retry.failures, exc, extra=self._log_extra)
        else:
            metrics.writes.labels("put").inc(result.puts)
            metrics.writes.labels("delete").inc(result.deletes)
            self.retry = self.retry.succeeded()
            self.last = result
            # Under upsert-only every delete is withheld by design; only the cap is news.
            self.capped_deletes = (result.withheld_deletes
                                   if self.c.settings.policy is Policy.SYNC else 0)
            if self.capped_deletes:
                # The cap slows a wipe down so that a person can notice it; the rest
                # follows cycle by cycle, observeDelay apart.
                metrics.deletes_withheld.labels(self.binding.prefix, self.binding.service).inc(
                    self.capped_deletes)
                log.warning("Held back %d deletion(s) of %s (--max-deletes %s)",
                            self.capped_deletes, self.binding, self.c.settings.max_deletes,
                            extra=self._log_extra)
            self._not_before = 0.0
            if result.puts or result.deletes or result.conflicts:
                log.info("Synced %s: %d put, %d deleted, %d unchanged, %d conflict(s), %d txn(s)"
                         " in %.0f ms%s", self.binding, result.puts, result.deletes,
                         result.unchanged, len(result.conflicts), result.txns,
                         (time.monotonic() - started) * 1000,
                         " (dry run)" if self.c.settings.dry_run else "", extra=self._log_extra)
        self.last_sync_time = time.monotonic()
        self.attempted = True
        self._export(config, "full" if keys is None else "incremental", started)
        self.c.status.binding_synced(self.binding, self)
        return self.retry.failures == 0

    def _export(self, config: Any, kind: str, started: float) -> None:
        labels = (self.binding.prefix, self.binding.service)
        metrics.sync_seconds.labels(kind).observe(time.monotonic() - started)
        desired = self.c.state.instance_count(self.binding)
        conflicts = len(self.last.conflicts) if self.last else 0
        metrics.desired_instances.labels(*labels).set(desired)
        metrics.conflicts.labels(*labels).set(conflicts)
        metrics.consecutive_failures.labels(*labels).set(self.retry.failures)
        metrics.degraded.labels(*labels).set(int(self.retry.degraded(config.retry)))
        if self.retry.failures == 0:
            metrics.instances.labels(*labels).set(desired - conflicts)

    async def _remove(self, target: TargetRef) -> bool:
        """Take the binding out of etcd; True once it is gone (or cannot be ours any more).

        A target we cannot even connect to (its Secret deleted, unreadable,
        or malformed) has had no keepalive from us since: whatever we wrote
        there expires within one lease TTL on its own, so the binding is let
        go rather than holding a KitexService's finalizer forever.
        """
        self.attempted = True
        try:
            registry = await self.c.targets.get(target)
            await registry.remove(self.binding, policy=self.c.settings.policy,
                                  dry_run=self.c.settings.dry_run)
        except TargetError as exc:
            log.warning("Letting %s go without removing its entries (they expire within "
                        "their lease TTL): %s", self.binding, exc, extra=self._log_extra)
        except RECOVERABLE as exc:
            self.retry = self.retry.failed(str(exc), failure_reason(exc))
            self._not_before = time.monotonic() + self.retry.next_delay(self.c.settings.retry)
            self.full = True
            log.warning("Removing %s failed: %s", self.binding, exc, extra=self._log_extra)
            self.c.status.removal_failed(
                [key for key, b in self.c._spec_bindings.items() if b == self.binding],
                f"the entries of {self.binding} could not be removed, retrying: {exc}")
            return False
        else:
            log.info("Removed %s", self.binding, extra=self._log_extra)
        metrics.forget_service(self.binding.prefix, self.binding.service)
        self.done = True
        self._idle.set()
        self.c.workers.pop(self.binding, None)
        self.c.state.configs.pop(self.binding, None)
        return True


def failure_reason(exc: BaseException) -> str:
    """The condition reason for a failed sync: etcd errors name their cause
    (EtcdOutOfSpace, EtcdPermissionDenied, ClientCertificateExpired, ...)."""
    if isinstance(exc, EtcdError):
        return exc.reason
    if isinstance(exc, TargetError):
        return "InvalidEtcdTarget"
    return "SyncFailed"


def _version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", ""))
    except ValueError:
        return None


def _selector(body: Mapping[str, Any]) -> Mapping[str, object]:
    selector = (body.get("spec") or {}).get("selector") or {}
    return selector if isinstance(selector, Mapping) else {}


__all__ = ["ANNOTATIONS", "BindingWorker", "Controller"]
