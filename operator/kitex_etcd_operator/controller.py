"""The loops that keep etcd in line with Kubernetes, one per binding.

Pod, Service and EndpointSlice events (``listwatch``, ``feeds``) and
KitexService events (kopf) update
``DesiredState`` and wake the binding's worker. A worker writes a change at
once, and gathers whatever arrives within ``debounce`` of its last write
into the next one, writing only the keys that changed;
every ``observeDelay`` (or ``retryDelay`` after a failure) it reads its
whole range and repairs it, as registry-etcd does. Nothing is deleted
before the initial lists of pods and KitexServices are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Mapping
from typing import Any

from . import metrics, supervisor
from .alarms import Alarms
from .collector import QuietCollector
from .connections import (
    ConnectionsClosed,
    CredentialsUnavailable,
    EtcdAccessError,
    EtcdConnections,
)
from .desired import (
    ANNOTATIONS,
    DEFAULT_SCOPE,
    BindingConfig,
    Defaults,
    DesiredState,
    EtcdAccess,
    SpecKey,
)
from .etcd.errors import EtcdAuthError, EtcdError, EtcdTLSError, summary
from .feeds import Feed, Held
from .finalizers import Finalizers
from .kube.errors import unexpected
from .kube.pods import pod_view
from .kube.services import service_view, slice_view
from .kube.spec import SpecError, parse_kitexservice
from .kube.tenancy import RegistryDef, parse_policy, parse_registry
from .kubeapi import (
    API_ERRORS,
    POLICY_KIND,
    POLICY_PLURAL,
    REGISTRY_KIND,
    REGISTRY_PLURAL,
    VERSION,
    CrdMissing,
    KubeApi,
    ObjectRef,
)
from .listwatch import ENDPOINT_SLICES, PODS, SERVICES, ListWatch, Resource
from .plan import Binding, Policy
from .policy import (
    PolicySet,
    RangeClaim,
    Rule,
    decide_owner,
    describe_group,
    nesting_winner,
    ranges_nest,
    single_team_rule,
)
from .registry import BindingRegistry, RegistryError, SyncResult, etcd_wait
from .report import SyncReport
from .retry import RetryState
from .settings import Settings
from .status import StatusReporter

log = logging.getLogger(__name__)
RECOVERABLE = (EtcdError, RegistryError, EtcdAccessError, CredentialsUnavailable,
               ConnectionsClosed, OSError)
LIST_RETRY = 5.0
OBSERVE_SPREAD = 0.25  # how much earlier than observeDelay a healthy binding may check etcd


class Controller:
    """Owns the desired state, the etcd connections and the binding workers."""

    def __init__(self, settings: Settings, kube: KubeApi | None) -> None:
        self.settings = settings
        self.kube = kube
        self.state = DesiredState(
            Defaults(settings.prefix, settings.lease_ttl, settings.retry, settings.etcd.endpoints),
            policies=PolicySet(default=single_team_rule(
                allow_custom_endpoints=settings.allow_custom_endpoints)))
        self.connections = EtcdConnections(settings, kube,
                                           registries=lambda: self.state.registries,
                                           on_lease_lost=self._lease_lost,
                                           on_ownership_loaded=self._ownership_loaded)
        self.rules: dict[str, Rule] = {}
        self.invalid_policies: set[str] = set()
        self.registry_defs: dict[str, RegistryDef] = {}
        self.status = StatusReporter(kube, self.state)
        self.finalizers = Finalizers(kube, self.wait_removed)
        self.synced = asyncio.Event()
        self.stopping = False  # set by stop(): no new worker, no new connection
        # Etcds whose records were read before the view was complete: their orphans wait.
        self._unadopted: list[BindingRegistry] = []
        self.alarms = Alarms()  # the workers' periodic checks
        # Started by the runner once the heap is frozen; workers say when they are busy.
        self.collector = QuietCollector(settings.gc_patience)
        self.workers: dict[Binding, BindingWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spec_bindings: dict[SpecKey, Binding] = {}
        self._watching = False
        self.pods = Feed("Pod", upsert=self.state.upsert_pod, read=pod_view,
                         remove=self.state.remove_pod, held=self._held_pods,
                         changed=self._pods_changed, resync_period=settings.resync_period)
        self.services = Feed("Service", upsert=lambda body: self.state.upsert_service(
            service_view(body)), remove=self._remove_service, held=self._held_services,
            changed=self._services_changed, resync_period=settings.resync_period)
        self.slices = Feed("EndpointSlice", upsert=lambda body: self.state.upsert_slice(
            slice_view(body)), remove=self.state.remove_slice, held=self._held_slices,
            changed=self._services_changed, resync_period=settings.resync_period)
        feeds: list[tuple[Resource, Feed]] = [(PODS, self.pods)]
        if settings.service_source:
            feeds += [(SERVICES, self.services), (ENDPOINT_SLICES, self.slices)]
        self.watches = [] if kube is None else [
            ListWatch(kube, ns, feed, resource=resource, resync_period=settings.resync_period)
            for ns in settings.namespaces or (None,) for resource, feed in feeds]

    # --- events from kopf or from lists -------------------------------------

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.pods.on_event(event_type, body)

    def pods_listed(self, namespace: str | None, uids: set[str], started: float) -> None:
        self.pods.listed(namespace, uids, started)

    def _held_pods(self) -> Held:
        return ((uid, pod.namespace, pod.name) for uid, pod in list(self.state.pods.items()))

    def _held_services(self) -> Held:
        return [(s.uid, s.namespace, s.name) for s in self.state.index.services.values()]

    def _held_slices(self) -> Held:
        return [(uid, s.namespace, s.service) for uid, s in self.state.index.slices.items()]

    def _remove_service(self, uid: str) -> None:
        key = self.state.index.uid_of(uid)
        if key is not None:
            self.state.remove_service(key)

    def _pods_changed(self) -> None:
        metrics.pods_seen.set(len(self.state.pods))
        self._services_changed()

    def _services_changed(self) -> None:
        metrics.services_seen.set(len(self.state.index.services))
        metrics.endpoints_seen.set(self.state.index.endpoints)
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
            except Exception as exc:  # a bug must not stop the startup list or the watch
                self.state.remove_spec(key)
                self.status.spec_invalid(key, body, unexpected(
                    "spec", f"KitexService {key[0]}/{key[1]}", exc))
            else:
                self.status.spec_valid(key, body)
                self.state.upsert_spec(key, spec, _selector(body),
                                       str(meta.get("creationTimestamp") or ""))
                self._report_admission(key)
        self._wake_dirty()

    def _report_admission(self, key: SpecKey) -> None:
        """A valid KitexService is either refused (policy, unknown registry) or bound."""
        error = self.state.spec_errors.get(key)
        if error is not None:
            self.status.spec_refused(key, error)
            return
        self.status.spec_admitted(key)
        with contextlib.suppress(SpecError):
            self._spec_bindings[key] = self.state.binding_of(self.state.specs[key], key[0])[0]

    # --- the admin's objects and namespaces -----------------------------------

    def _policy_set(self, rules: dict[str, Rule]) -> PolicySet:
        default = single_team_rule(allow_custom_endpoints=self.settings.allow_custom_endpoints)
        # An invalid policy grants nothing, but it still means the admin wants
        # policies: it must never open the permissive single-team default.
        return PolicySet(rules.values(), default=default,
                         enforcing=bool(rules or self.invalid_policies))

    def on_policy(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A KitexRegistrationPolicy changed: every admission is decided again."""
        name = str((body.get("metadata") or {}).get("name", ""))
        self.rules.pop(name, None)
        self.invalid_policies.discard(name)
        if event_type != "DELETED":
            try:
                self.rules[name] = parse_policy(body)
            except SpecError as err:
                # An invalid policy grants nothing; the others still apply.
                self.invalid_policies.add(name)
                self._admin_object_invalid(POLICY_KIND, body, err)
        self._readmit(policies=self._policy_set(self.rules))

    def on_registry(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A KitexEtcdRegistry changed: bindings naming it move with it."""
        name = str((body.get("metadata") or {}).get("name", ""))
        self.registry_defs.pop(name, None)
        if event_type != "DELETED":
            try:
                self.registry_defs[name] = parse_registry(body)
            except SpecError as err:
                self._admin_object_invalid(REGISTRY_KIND, body, err)
        self._readmit(registries=dict(self.registry_defs))

    def on_namespace(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        labels = None if event_type == "DELETED" else dict(meta.get("labels") or {})
        before = dict(self.state.spec_errors)
        self.state.set_namespace(name, labels)
        self._after_readmit(before)

    def _readmit(self, **changes: Any) -> None:
        before = dict(self.state.spec_errors)
        self.state.set_tenancy(**changes)
        self._after_readmit(before)

    def _after_readmit(self, before: Mapping[SpecKey, SpecError]) -> None:
        for key in set(before) | set(self.state.spec_errors):
            if str(before.get(key)) != str(self.state.spec_errors.get(key)):
                self._report_admission(key)
        self._wake_dirty()

    def _admin_object_invalid(self, kind: str, body: Mapping[str, Any], err: SpecError) -> None:
        meta = body.get("metadata") or {}
        log.error("%s %s is invalid and ignored: %s", kind, meta.get("name"), err)
        self.status.event(ObjectRef(kind, f"kitex.cloudwego.io/{VERSION}", "",
                                    str(meta.get("name", "")), str(meta.get("uid", ""))),
                          "InvalidSpec", f"ignored: {err}")

    def _forget_unseen_spec(self, key: SpecKey, body: Mapping[str, Any]) -> None:
        """A KitexService deleted while we were down: still take its entries out."""
        try:
            spec = parse_kitexservice(body)
            binding, _ = self.state.binding_of(spec, key[0])
        except SpecError:
            return
        self._spec_bindings[key] = binding
        self.state.dirty[binding]

    def _wake_dirty(self) -> None:
        if self.stopping:
            # kopf delivers events until the Lease is released: a worker started now
            # would connect again and write while the standby takes over.
            return
        self.status.report_service_errors()
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
        for watch in self.watches:
            self._tasks.append(supervisor.spawn(watch.resource.task, watch.scope,
                                                watch.run))

    async def start(self) -> None:
        """Load the full lists, then let workers write and clean up what vanished."""
        while self.kube is not None:
            try:
                await self._list_tenancy()
                await self._list_kitexservices()
                break
            except API_ERRORS as exc:
                log.error("Listing KitexServices failed, retrying in %gs: %s", LIST_RETRY, exc)
                await asyncio.sleep(LIST_RETRY)
        self.watch_pods()
        await asyncio.gather(*(watch.listed.wait() for watch in self.watches))
        # The default etcd is connected before any worker runs, so that no other
        # scope (a tenant's endpoints naming it another way) can be first there.
        await self._connect_default()
        self.synced.set()
        self.finalizers.start()
        metrics.initial_sync_done.set(1)
        unadopted, self._unadopted = self._unadopted, []
        for registry in unadopted:
            self._adopt_orphans(registry)
        started = time.monotonic()
        self._tasks.append(supervisor.spawn("initial-sync", "report",
                                            lambda: self._report_initial_sync(started)))
        self.status.start()
        log.info("Initial sync started: %d pod(s), %d KitexService(s), %d binding(s)",
                 len(self.state.pods), len(self.state.specs), len(self.workers))

    async def _list_tenancy(self) -> None:
        """Policies, registries and namespaces, complete, before anything is admitted.

        Until they are known the single-team default would apply, and a
        refused tenant could write for a moment; a missing CRD means that kind
        is not in use (nothing to enforce), any other error is retried.
        """
        assert self.kube is not None
        for plural, handler in ((POLICY_PLURAL, self.on_policy),
                                (REGISTRY_PLURAL, self.on_registry)):
            try:
                items = await self.kube.list_cluster_objects(plural)
            except CrdMissing:
                log.warning("The %s CRD is not installed: `kubectl apply -k crds/` adds it",
                            plural)
                items = []
            for body in items:
                handler(None, body)
        namespaces = await self.kube.list_namespaces()
        before = dict(self.state.spec_errors)
        self.state.set_namespaces({
            str((ns.get("metadata") or {}).get("name", "")):
                dict((ns.get("metadata") or {}).get("labels") or {}) for ns in namespaces})
        self._after_readmit(before)

    async def _list_kitexservices(self) -> None:
        """The complete list, or an exception: a failed list is never read as empty.

        A missing KitexService CRD is the one exception that is not retried:
        annotation mode works without it, and kopf starts watching the CRD's
        objects once it is installed. Pods come from ``listwatch``, whose first
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

    async def _connect_default(self) -> None:
        """Its ownership records, kept alive at once; an etcd down now is connected by
        the first worker that needs it (``_ownership_loaded`` then finds its orphans)."""
        try:
            await self.connections.get(EtcdAccess())
        except RECOVERABLE as exc:
            log.warning("Default etcd target not reachable yet: %s", exc)

    def _ownership_loaded(self, access: EtcdAccess, registry: BindingRegistry) -> None:
        """An etcd's records were read, whenever that is (the default etcd down at the
        start, another etcd first named by a spec): its leases are kept alive from now
        on, so the orphans among them are emptied, once the view is complete.

        The default etcd's only: the records are keyed by this cluster, not by the
        scope that read them, and a tenant's endpoints may name another registry's
        etcd (refused as a second scope, but only if connected second): adopted
        through that scope, the registry's live services would look orphaned and
        be removed. Other etcds' orphans are found once a spec names them again."""
        if access.scope != DEFAULT_SCOPE:
            return
        if self.synced.is_set():
            self._adopt_orphans(registry)
        else:
            self._unadopted.append(registry)

    def _adopt_orphans(self, registry: BindingRegistry) -> None:
        """The default etcd's bindings we own leases for that nothing asks for any
        more: empty them.

        A worker for each recorded binding that has none: one still claimed
        writes as usual, the others are removed. Only after the initial lists
        (``synced``), so that a service is never judged orphaned from an
        incomplete view.
        """
        if self.stopping:
            return
        for prefix, service in registry.bindings_on_record():
            binding = Binding(DEFAULT_SCOPE, prefix, service)
            if binding not in self.workers:
                self.workers[binding] = BindingWorker(self, binding)
                self.workers[binding].poke(set())

    def default_config(self) -> BindingConfig:
        return BindingConfig(EtcdAccess(), self.settings.lease_ttl, self.settings.retry)

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

    async def release_unused_connections(self) -> None:
        """Close the connections to etcds no binding uses any more (never the default)."""
        in_use = {b.etcd for b in self.workers} | {b.etcd for b in self.state.bindings()}
        for scope in self.connections.scopes() - in_use - {EtcdAccess().scope}:
            await self.connections.release(scope)

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for worker in self.workers.values():
            worker.cancel()
        await asyncio.gather(*self._tasks, *(w.task for w in self.workers.values() if w.task),
                             return_exceptions=True)
        await self.status.stop()
        await self.finalizers.stop()
        await self.connections.close()
        self.collector.stop()

    async def view_current(self) -> None:
        """Writes wait while a watch replays a past (a resumed stream, a relist's pages):
        a key deleted from such a view may belong to a pod that is ready now. Each watch
        bounds its own wait (``listwatch.CATCH_UP_MAX``)."""
        for watch in self.watches:
            await watch.current.wait()

    def view_versions(self) -> str:
        """Where each watch's view stands, for the log of a write: which pod events a
        deletion was decided on, to set beside the API server's history."""
        return ", ".join(f"{w.resource.name}{'/' + w.namespace if w.namespace else ''}"
                         f"@{w.version or '?'}" for w in self.watches)

    @property
    def warm(self) -> bool:
        """Every watch has delivered a complete list: a standby could take over now."""
        return all(watch.listed.is_set() for watch in self.watches)

    @property
    def ready(self) -> bool:
        """After the initial lists, once every service was tried: an etcd that keeps
        failing shows as Degraded on its KitexService, it must not hold up a rollout."""
        return self.synced.is_set() and all(w.attempted for w in self.workers.values())


def _observe_change(changed: float, woke: float, gathered: float, viewed: float,
                    written: float, etcd: float) -> None:
    """Where a change's time went: a p99 over target says which part to work on.
    ``etcd`` is what the write waited for etcd's answers: etcd's part, not the operator's."""
    metrics.change_seconds.observe(written - changed)
    # A change that arrives mid-cycle starts its clock in that phase; the phases add up.
    woke, gathered, viewed = (max(t, changed) for t in (woke, gathered, viewed))
    etcd = min(etcd, written - viewed)
    metrics.change_own_seconds.observe(written - changed - etcd)
    phases = metrics.change_phase_seconds
    phases.labels("queued").observe(woke - changed)
    phases.labels("gathered").observe(gathered - woke)
    phases.labels("view").observe(viewed - gathered)
    phases.labels("written").observe(written - viewed - etcd)
    phases.labels("etcd").observe(etcd)


class BindingWorker:
    """Keeps one binding in line: incremental writes, at most one a ``debounce``, plus
    periodic observation.

    Each cycle decides who owns the binding (the recorded owner group while
    it claims, else the first claimer), whether its range may coexist with
    the other ranges of its etcd, and then writes only the owner's
    instances, with the owner's settings.
    """

    def __init__(self, controller: Controller, binding: Binding) -> None:
        self.controller = controller
        self.binding = binding
        self.dirty: set[str] = set()
        self.full = True
        self.retry = RetryState()
        self.attempted = False
        self.last: SyncResult | None = None
        self.capped_deletes = 0  # deletes --max-deletes held back in the last cycle
        self.last_sync_time: float | None = None
        self.done = False
        self.config: BindingConfig = controller.default_config()  # the last one used
        self.trying = self.config  # the one the current cycle connects with
        self.owner: str | None = None  # the owner group written in the last cycle
        self.namespaces: set[str] = set()  # the owner's namespaces
        self.refusal: str | None = None  # why the whole binding is refused (nested range)
        self._owner_claimed_at = time.monotonic()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._not_before = 0.0
        self._changed_since: float | None = None  # first change not yet in etcd
        self._last_cycle = -math.inf  # when the last cycle began (monotonic)
        self._observed = False  # whether the check after the first sync was scheduled
        self.task: asyncio.Task[None] | None = supervisor.spawn(
            "binding", str(binding), self._run, on_crash=self._crashed)

    def report(self) -> SyncReport:
        """The last cycle as the status writer renders it."""
        return SyncReport(
            retry=self.retry, retry_config=self.config.retry,
            conflicts=tuple(self.last.conflicts) if self.last else (),
            withheld_deletes=self.capped_deletes,
            max_deletes=self.controller.settings.max_deletes, owner=self.owner,
            refusal=self.refusal, etcd=self.config.access.describe())

    @property
    def _log_extra(self) -> dict[str, str]:
        """Fields of the JSON log format: which service a line is about."""
        return {"service": self.binding.service, "binding": str(self.binding)}

    def poke(self, keys: set[str]) -> None:
        if keys and self._changed_since is None:
            self._changed_since = time.monotonic()
            if self.task is not None and not self.task.done():
                self.controller.collector.busy(self)
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
        self.controller.status.task_crashed(self.binding, message)
        self.controller.status.binding_synced(self.binding, self.report())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def settled(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        await self.controller.synced.wait()
        # A standby made this worker long ago: an absent owner's grace starts when
        # this replica can act on it, not when it first heard of the binding.
        self._owner_claimed_at = time.monotonic()
        # One accumulator for the task's life, zeroed each cycle: set in every cycle,
        # the context variable made new context nodes that outlived the young
        # generations of the garbage collector, a few per worker cycle.
        waited = [0.0]
        etcd_wait.set(waited)
        try:
            await self._cycles(waited)
        finally:
            self.controller.collector.idle(self)

    async def _cycles(self, waited: list[float]) -> None:
        collector = self.controller.collector
        while True:
            # Not busy once nothing came during the last write, or while a failure's
            # retryDelay holds what it carries.
            if self._changed_since is None or self.retry.failures:
                collector.idle(self)
            await self._wait_for_work()
            woke = time.monotonic()
            await self._gather()
            gathered = time.monotonic()
            await self.controller.view_current()
            viewed = time.monotonic()
            # The set is kept and emptied: a new one each cycle lived through the sleep
            # after it, one more object a worker for every young collection to walk.
            keys = None if self.full else set(self.dirty)
            self.dirty.clear()
            self.full = False
            changed, self._changed_since = self._changed_since, None
            state = self.controller.state
            if not state.claimed(self.binding) and not state.instance_count(self.binding):
                if await self._remove(self.config.access):
                    return
                continue
            waited[0] = 0.0
            if await self._sync(keys):
                if changed is not None:
                    _observe_change(changed, woke, gathered, viewed, time.monotonic(),
                                    waited[0])
            elif changed is not None:  # still pending: the retry carries it
                self._changed_since = min(changed, self._changed_since or changed)

    async def _gather(self) -> None:
        """Leading-edge debounce: a lone change goes out at once, a burst in few writes.

        A fixed wait after every change put its length under every churn
        event (the floor of the operator's share). Cycles start at most
        once per ``debounce`` instead: what arrives during a write or just
        after it is gathered into the next one. One turn of the loop first,
        so that the rest of a watch chunk already read joins this write.
        """
        await asyncio.sleep(0)
        wait = self._last_cycle + self.controller.settings.debounce - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_cycle = time.monotonic()

    async def _wait_for_work(self) -> None:
        delay = self.retry.next_delay(self.config.retry)
        if not self.retry.failures:
            # Up to a quarter early, at random: the services of one initial sync would
            # otherwise check etcd all in the same instant every observeDelay (1,000
            # full syncs at once held churn events back by 250 ms at the p99). The
            # first check after the initial sync anywhere in the whole delay: in a
            # quarter, 1,000 services still came 133 a second, and changes waited
            # behind them (p99 of the operator's share <= 250 ms, against <= 50 ms
            # once spread); the phases stay apart after that.
            first = not self._observed and self.last_sync_time is not None
            delay *= 1 - (1.0 if first else OBSERVE_SPREAD) * random.random()
            self._observed = self._observed or first
        deadline = (self.last_sync_time or time.monotonic()) + delay
        while not (self.dirty or self.full):
            self._idle.set()
            self._wake.clear()
            if deadline <= time.monotonic():
                self.full = True
                break
            # One timer for every worker's sleep (see alarms.py), not a timeout each.
            self.controller.alarms.set(self._wake, deadline)
            try:
                await self._wake.wait()
            finally:
                self.controller.alarms.cancel(self._wake)
        wait = self._not_before - time.monotonic()
        if wait > 0:  # after a failure, changes wait for retryDelay like everything else
            await asyncio.sleep(wait)
        self._idle.clear()

    # --- ownership ---------------------------------------------------------------

    def _decide_owner(self, registry: BindingRegistry | None) -> str | None:
        claims = self.controller.state.claims(self.binding)
        recorded = registry.recorded_owner(self.binding) if registry is not None else None
        now = time.monotonic()
        if registry is not None and (recorded is None or any(c.group == recorded
                                                             for c in claims)):
            self._owner_claimed_at = now
        return decide_owner(claims, recorded, recorded_absent_for=now - self._owner_claimed_at,
                            grace=self.controller.settings.claim_grace)

    async def _registry_and_owner(self) -> tuple[BindingRegistry, str | None, BindingConfig]:
        """Connect with the settings of the likely owner, then decide with etcd's record.

        The record is only known once connected; the owner it names, if other
        than the first guess, must reach this etcd with the same credentials
        (``EtcdConnections.get`` refuses otherwise).
        """
        state = self.controller.state
        owner = self._decide_owner(None)
        config = self.trying = state.config_for(self.binding, owner) or self.config
        registry = await self.controller.connections.get(config.access)
        recorded_owner = self._decide_owner(registry)
        if recorded_owner != owner:
            owner = recorded_owner
            config = self.trying = state.config_for(self.binding, owner) or config
            registry = await self.controller.connections.get(config.access)
        return registry, owner, config

    def _nesting_refusal(self, registry: BindingRegistry) -> str | None:
        """Why this binding's range may not be written, if another range nests with it.

        The Go resolver reads everything under ``{prefix}/{service}/``: a range
        inside another's (prefix ``kitex/registry-etcd/payment``, or Hertz's
        ``x`` and ``x/inner``) would add instances to the outer service that
        its owner never wrote. The range recorded first keeps its place.
        """
        state = self.controller.state
        owners_range = f"{registry.owner_prefix}/"
        if ranges_nest(self.binding.range, owners_range) or self.binding.range == owners_range:
            return (f"the range {self.binding.range} overlaps the operator's ownership "
                    f"records under {owners_range}")

        def created(binding: Binding) -> str:
            return min((c.created for c in state.claims(binding)), default="")

        mine = RangeClaim(registry.recorded(self.binding), created(self.binding),
                          self.binding.range)
        others: dict[Binding, RangeClaim] = {}
        for other in state.nesting(self.binding):
            others[other] = RangeClaim(registry.recorded(other), created(other), other.range)
        for other in registry.nesting_on_record(self.binding):
            if other not in others:
                others[other] = RangeClaim(True, "", other.range)
        winner = nesting_winner(mine, others.values())
        if winner is None:
            return None
        inside = self.binding.range.startswith(winner.range)
        return (f"the range {self.binding.range} lies {'inside' if inside else 'around'} "
                f"{winner.range}, which is registered already: Kitex clients of one would "
                "read the other's instances")

    # --- one cycle -----------------------------------------------------------------

    async def _attempt(self, keys: set[str] | None) -> tuple[SyncResult, BindingConfig]:
        """Decide owner and range, then write: one try, raising what went wrong."""
        registry, owner, config = await self._registry_and_owner()
        if owner != self.owner:
            keys = None  # another owner's instances: diff the whole range
        if keys is None:
            await self.controller.connections.refresh(config.access)
            self.refusal = self._nesting_refusal(registry)
        self.config, self.owner = config, owner
        namespaces = self.controller.state.namespaces_of(self.binding, owner)
        if namespaces != self.namespaces:  # the same kept: see _succeeded
            self.namespaces = namespaces
        settings = self.controller.settings
        if self.refusal is not None:
            if registry.recorded(self.binding):
                await registry.remove(self.binding, policy=settings.policy,
                                      dry_run=settings.dry_run)
            return SyncResult(), config
        result = await registry.sync(
            self.binding, self.controller.state.view(self.binding, self.namespaces),
            ttl=config.ttl, keys=keys, policy=settings.policy,
            max_deletes=settings.max_deletes, dry_run=settings.dry_run, owner=owner or "")
        return result, config

    async def _sync(self, keys: set[str] | None) -> bool:
        started = time.monotonic()
        config = self.config
        try:
            try:
                result, config = await self._attempt(keys)
            except (EtcdAuthError, EtcdTLSError):
                # Credentials refused: a rotated Secret is read again now, not one
                # retryDelay later after a failure users would see for nothing.
                if not await self.controller.connections.refresh(self.trying.access):
                    raise
                keys = None
                result, config = await self._attempt(keys)
        except RECOVERABLE as exc:
            self.retry = self.retry.failed(public_error(exc, self.trying.access),
                                           failure_reason(exc))
            self.full = True
            self._not_before = time.monotonic() + self.retry.next_delay(config.retry)
            metrics.etcd_errors.labels("sync").inc()
            log.warning("Sync of %s failed (%d in a row): %s", self.binding,
                        self.retry.failures, exc, extra=self._log_extra)
        else:
            self._succeeded(result, started)
        self.last_sync_time = time.monotonic()
        self.attempted = True
        self._export(config, "full" if keys is None else "incremental", started)
        self.controller.status.binding_synced(self.binding, self.report())
        return self.retry.failures == 0

    def _succeeded(self, result: SyncResult, started: float) -> None:
        metrics.writes.labels("put").inc(result.puts)
        metrics.writes.labels("delete").inc(result.deletes)
        self.retry = self.retry.succeeded()
        if result != self.last:
            # An equal result (a periodic check that found etcd as it left it, the
            # common cycle) keeps the one held: a new one each cycle outlived the
            # collector's young generations, two objects a worker every observeDelay.
            self.last = result
        # Under upsert-only every delete is withheld by design; only the cap is news.
        self.capped_deletes = (result.withheld_deletes
                               if self.controller.settings.policy is Policy.SYNC else 0)
        if self.capped_deletes:
            # The cap slows a wipe down so that a person can notice it; the rest
            # follows cycle by cycle, observeDelay apart.
            metrics.deletes_withheld.labels(self.binding.prefix, self.binding.service).inc(
                self.capped_deletes)
            log.warning("Held back %d deletion(s) of %s (--max-deletes %s)",
                        self.capped_deletes, self.binding, self.controller.settings.max_deletes,
                        extra=self._log_extra)
        self._not_before = 0.0
        if result.puts or result.deletes or result.conflicts:
            log.info("Synced %s for %s: %d put, %d deleted, %d unchanged, %d conflict(s), "
                     "%d txn(s) in %.0f ms%s; view %s", self.binding,
                     describe_group(self.owner) if self.owner else "nobody", result.puts,
                     result.deletes, result.unchanged, len(result.conflicts), result.txns,
                     (time.monotonic() - started) * 1000,
                     " (dry run)" if self.controller.settings.dry_run else "",
                     self.controller.view_versions(), extra=self._log_extra)
        if self.refusal is not None:
            log.warning("Not writing %s: %s", self.binding, self.refusal, extra=self._log_extra)

    def _export(self, config: BindingConfig, kind: str, started: float) -> None:
        labels = (self.binding.prefix, self.binding.service)
        metrics.sync_seconds.labels(kind).observe(time.monotonic() - started)
        desired = 0 if self.refusal else self.controller.state.instance_count(self.binding,
                                                                     self.namespaces)
        conflicts = len(self.last.conflicts) if self.last else 0
        metrics.desired_instances.labels(*labels).set(desired)
        metrics.conflicts.labels(*labels).set(conflicts)
        metrics.consecutive_failures.labels(*labels).set(self.retry.failures)
        metrics.degraded.labels(*labels).set(int(self.retry.degraded(config.retry)))
        if self.retry.failures == 0:
            metrics.instances.labels(*labels).set(desired - conflicts)

    async def _remove(self, access: EtcdAccess) -> bool:
        """Take the binding out of etcd; True once it is gone (or cannot be ours any more).

        An etcd we cannot even connect to (its Secret deleted, unreadable,
        or malformed) has had no keepalive from us since: whatever we wrote
        there expires within one lease TTL on its own, so the binding is let
        go rather than holding a KitexService's finalizer forever.
        """
        self.attempted = True
        if access.scope != self.binding.etcd:
            # Never connected to its own etcd (refused, unreachable credentials): nothing
            # there is ours, and another scope's leases of the same name are not its own.
            log.info("Letting %s go: it never wrote to its etcd", self.binding,
                     extra=self._log_extra)
            return await self._forget()
        try:
            registry = await self.controller.connections.get(access)
            if self.refusal is None:  # a refused binding wrote nothing that is its own
                await registry.remove(self.binding, policy=self.controller.settings.policy,
                                      dry_run=self.controller.settings.dry_run)
        except EtcdAccessError as exc:
            log.warning("Letting %s go without removing its entries (they expire within "
                        "their lease TTL): %s", self.binding, exc, extra=self._log_extra)
        except RECOVERABLE as exc:
            self.retry = self.retry.failed(public_error(exc, access), failure_reason(exc))
            self._not_before = time.monotonic() + self.retry.next_delay(
                self.controller.settings.retry)
            self.full = True
            log.warning("Removing %s failed: %s", self.binding, exc, extra=self._log_extra)
            self.controller.status.removal_failed(
                [key for key, b in self.controller._spec_bindings.items() if b == self.binding],
                f"the entries of {self.binding} could not be removed, retrying: "
                f"{public_error(exc, access)}")
            return False
        else:
            log.info("Removed %s", self.binding, extra=self._log_extra)
        state = self.controller.state
        if self.dirty or state.claimed(self.binding) or state.instance_count(self.binding):
            # Claimed again during the removal (a new KitexService, a pod turned ready):
            # the change poked this worker, still running, so this worker writes it.
            self.full = True
            return False
        return await self._forget()

    async def _forget(self) -> bool:
        metrics.forget_service(self.binding.prefix, self.binding.service)
        self.done = True
        self._idle.set()
        self.controller.workers.pop(self.binding, None)
        await self.controller.release_unused_connections()
        return True


def public_error(exc: BaseException, access: EtcdAccess) -> str:
    """The error as a tenant's status and Events show it.

    For endpoints a tenant named, only the operator's own summary: the
    remote side's words would make the operator a scanner of any address.
    """
    if isinstance(exc, EtcdError) and access.registry is None:
        return f"{summary(exc)} ({', '.join(access.endpoints)})"
    return str(exc)


def failure_reason(exc: BaseException) -> str:
    """The condition reason for a failed sync: etcd errors name their cause
    (EtcdOutOfSpace, EtcdPermissionDenied, ClientCertificateExpired, ...)."""
    if isinstance(exc, EtcdError):
        return exc.reason
    if isinstance(exc, EtcdAccessError):
        return "InvalidEtcdTarget"
    if isinstance(exc, CredentialsUnavailable):
        return "CredentialsUnavailable"
    return "SyncFailed"


def _selector(body: Mapping[str, Any]) -> Mapping[str, object]:
    selector = (body.get("spec") or {}).get("selector") or {}
    return selector if isinstance(selector, Mapping) else {}


__all__ = ["ANNOTATIONS", "BindingWorker", "Controller"]
