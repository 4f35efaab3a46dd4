"""Where users look: KitexService status conditions and Kubernetes Events.

Workers report what happened; this module turns it into conditions (Ready,
Degraded, Conflict, InvalidPods) and Events, writing a status only when it
changed and at most once a second per object, so a churning service does not
turn into a stream of status patches.
"""

from __future__ import annotations

import asyncio
import datetime
import heapq
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import metrics, supervisor
from .desired import KITEXSERVICE, DesiredState, Source, SpecKey
from .fair_queue import FairQueue
from .kube.spec import SpecError
from .kubeapi import KIND, KubeApi, ObjectRef
from .plan import Binding
from .policy import ANNOTATIONS, SERVICE, describe_group
from .report import SyncReport

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
MAX_ADDRESSES = 50
FLUSH_INTERVAL = 1.0
# Events posted between two rounds of status patches: a backlog of Events (one
# tenant's 10,000 malformed pods) must not hold every status behind it.
EVENTS_PER_ROUND = 50


@dataclass(slots=True)
class _ObjectStatus:
    """One KitexService as the status writer keeps it: conditions, and the status to send."""

    ref: ObjectRef
    generation: int
    spec_error: SpecError | None = None
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None
    pods_checked: tuple[int, int] | None = None  # (pod errors' version, generation) last read


class StatusReporter:
    """Collects per-object status and posts it in the background."""

    def __init__(self, kube: KubeApi | None, state: DesiredState) -> None:
        self.kube = kube
        self.state = state
        self.objects: dict[SpecKey, _ObjectStatus] = {}
        self._task: asyncio.Task[None] | None = None
        # by namespace, taken in turn: one tenant's backlog does not delay another's Events
        self._events: FairQueue[str, tuple[ObjectRef, str, str, bool]] = FairQueue()
        self._pod_errors_reported: dict[str, str] = {}
        self._reported_bound = 1000  # entries of _pod_errors_reported before a cleanup
        self._service_errors_reported: dict[SpecKey, str] = {}
        self._service_reported_bound = 1000  # entries before a cleanup
        self._kick = asyncio.Event()

    # --- inputs --------------------------------------------------------------

    def spec_valid(self, key: SpecKey, body: Mapping[str, Any]) -> None:
        obj = self._object(key, body)
        obj.spec_error = None

    def spec_invalid(self, key: SpecKey, body: Mapping[str, Any], err: SpecError) -> None:
        self._refuse(self._object(key, body), err)

    def spec_refused(self, key: SpecKey, err: SpecError) -> None:
        """A valid spec the admin's policy (or an unknown registry) keeps out."""
        obj = self.objects.get(key)
        if obj is not None:
            self._refuse(obj, err)

    def spec_admitted(self, key: SpecKey) -> None:
        obj = self.objects.get(key)
        if obj is not None:
            obj.spec_error = None

    def _refuse(self, obj: _ObjectStatus, err: SpecError) -> None:
        reason = getattr(err, "reason", "InvalidSpec")
        obj.spec_error = err
        self._set(obj, "Ready", False, reason, str(err))
        obj.pending = self._render(obj, None, None)
        self.event(obj.ref, reason, str(err))

    def forget(self, key: SpecKey) -> None:
        self.objects.pop(key, None)

    def binding_synced(self, binding: Binding, report: SyncReport) -> None:
        """A worker finished a cycle: refresh every object that feeds this binding."""
        for source, group in self.state.sources(binding).items():
            refusal = report.refusal or self._not_owner(binding, report, group)
            if source.kind == KITEXSERVICE:
                obj = self.objects.get((source.namespace, source.name))
                if obj is None or obj.spec_error is not None:
                    continue
                if refusal is None:
                    self._update(obj, binding, report)
                else:
                    self._refused_claim(obj, binding, refusal,
                                        "RangeConflict" if report.refusal else "NotOwner")
            elif source.kind == ANNOTATIONS and refusal is not None:
                self._refused_pods(binding, source.namespace, refusal,
                                   "RangeConflict" if report.refusal else "NotOwner")
            elif source.kind == SERVICE:
                self._service_outcome((source.namespace, source.name), refusal,
                                      "RangeConflict" if report.refusal else "NotOwner")
        self._report_pod_errors()

    @staticmethod
    def _not_owner(binding: Binding, report: SyncReport, group: str) -> str | None:
        if report.owner is None or group == report.owner:
            return None
        return (f"service {binding.service} (prefix {binding.prefix}, etcd "
                f"{report.etcd}) belongs to "
                f"{describe_group(report.owner)}, which registered it first: nothing of "
                "this is registered (a cluster admin can share the name with "
                "sharedServiceNames of a KitexRegistrationPolicy)")

    def _refused_claim(self, obj: _ObjectStatus, binding: Binding, message: str,
                       reason: str) -> None:
        """A KitexService that may not write its service: Conflict, Ready False, one Event."""
        was = obj.conditions.get("Conflict", {})
        self._set(obj, "Ready", False, reason, message)
        self._set(obj, "Conflict", True, reason, message)
        if was.get("status") != "True" or was.get("message") != message:
            self.event(obj.ref, reason, message)
        obj.pending = self._render(obj, None, None)
        obj.pending.update(serviceName=binding.service, prefix=binding.prefix,
                           readyInstances=0, registeredAddresses=[], lastError=message)

    def _refused_pods(self, binding: Binding, namespace: str, message: str,
                      reason: str) -> None:
        """Annotated pods that may not register: a Warning Event on each, where their
        owners look (``kubectl describe pod``), once per pod and message."""
        for uid in self.state.annotated_pods(binding, namespace):
            pod = self.state.pods.get(uid)
            if pod is None or self._pod_errors_reported.get(uid) == message:
                continue
            self._pod_errors_reported[uid] = message
            log.warning("Pod %s/%s is not registered: %s", pod.namespace, pod.name, message,
                        extra={"pod": pod.name, "namespace": pod.namespace})
            self.event(ObjectRef("Pod", "v1", pod.namespace, pod.name, pod.uid), reason,
                       message)

    def report_service_errors(self) -> None:
        """One Warning Event per Service and problem (malformed annotation, no such port,
        refused by a policy, yielding to an explicit registration), on the Service."""
        errors, services = self.state.service_errors, self.state.index.services
        # Only the Services whose error came, changed or went: this runs after every pod
        # event, and walking every Service error there let one tenant's malformed
        # Services slow every pod event of the cluster.
        for key in errors.take_changed():
            err = errors.get(key)
            if err is not None:
                self._service_outcome(key, str(err), getattr(err, "reason",
                                                             "InvalidKitexRegistration"))
            elif key not in services:
                self._service_errors_reported.pop(key, None)
        if len(self._service_errors_reported) > self._service_reported_bound:
            # refusals reported of Services since deleted
            self._service_reported_bound = _forget(
                self._service_errors_reported, lambda k: k in errors or k in services)

    def _service_outcome(self, key: SpecKey, message: str | None, reason: str) -> None:
        service = self.state.index.services.get(key)
        if message is None and key in self.state.service_errors:
            message = str(self.state.service_errors[key])
        if service is None or not message:
            self._service_errors_reported.pop(key, None)
            return
        if self._service_errors_reported.get(key) == message:
            return
        self._service_errors_reported[key] = message
        log.warning("Service %s/%s is not registered: %s", *key, message,
                    extra={"namespace": key[0]})
        self.event(ObjectRef("Service", "v1", key[0], key[1], service.uid), reason, message)

    def removal_failed(self, keys: list[SpecKey], message: str) -> None:
        """A deleted KitexService whose entries are still in etcd: its status must not
        keep saying Synced while the finalizer waits (its spec has left the state,
        so ``binding_synced`` no longer reaches it)."""
        for key in keys:
            obj = self.objects.get(key)
            if obj is None:
                continue
            if obj.conditions.get("Ready", {}).get("message") != message:
                self.event(obj.ref, "RemovalFailed", message)
            self._set(obj, "Ready", False, "RemovalFailed", message)
            obj.pending = self._render(obj, None, None)
        self._kick.set()

    def task_crashed(self, binding: Binding, message: str) -> None:
        """A Warning Event on every KitexService of a binding whose worker crashed."""
        for source in self.state.sources(binding):
            obj = self.objects.get((source.namespace, source.name))
            if source.kind == KITEXSERVICE and obj is not None:
                self.event(obj.ref, "InternalError", message)

    def event(self, ref: ObjectRef, reason: str, message: str, warning: bool = True) -> None:
        self._events.put(ref.namespace, (ref, reason, message, warning))
        self._kick.set()

    # --- rendering -----------------------------------------------------------

    def _object(self, key: SpecKey, body: Mapping[str, Any]) -> _ObjectStatus:
        meta = body.get("metadata", {})
        ref = ObjectRef(KIND, str(body.get("apiVersion", "")), key[0], key[1],
                        str(meta.get("uid", "")))
        obj = self.objects.get(key)
        if obj is None or obj.ref.uid != ref.uid:
            obj = self.objects[key] = _ObjectStatus(ref, int(meta.get("generation") or 0))
        obj.generation = int(meta.get("generation") or 0)
        return obj

    def _update(self, obj: _ObjectStatus, binding: Binding, report: SyncReport) -> None:
        """Every condition of a KitexService whose binding was written, and its Events."""
        self._sync_conditions(obj, binding, report)
        if report.withheld_deletes:
            self.event(obj.ref, "DeletesWithheld",
                       f"{report.withheld_deletes} deletion(s) of {binding} held back by "
                       f"--max-deletes {report.max_deletes}: they follow in later cycles, at "
                       f"most {report.max_deletes} per cycle")
        self._conflict_condition(obj, report.conflicts)
        self._pods_condition(obj)
        obj.pending = self._render(obj, binding, report)

    def _sync_conditions(self, obj: _ObjectStatus, binding: Binding,
                         report: SyncReport) -> None:
        """Ready (the last write) and Degraded (failures past maxAttemptTimes), with an
        Event when a failure is new, once per outage, and when writes recover."""
        retry, degraded = report.retry, report.degraded
        if retry.failures == 0:
            self._set(obj, "Ready", True, "Synced", f"entries in etcd match the pods ({binding})")
        else:
            message = retry.last_error or "sync failed"
            if obj.conditions.get("Ready", {}).get("message") != message:
                self.event(obj.ref, "SyncFailed", message)
            self._set(obj, "Ready", False, "SyncFailed", message)
        was_degraded = obj.conditions.get("Degraded", {})
        cause = retry.reason or "SyncFailed"
        self._set(obj, "Degraded", degraded, cause if degraded else "Healthy",
                  f"{retry.last_error} ({retry.failures} consecutive failures; the operator "
                  "keeps retrying)" if degraded else "writes succeed")
        if degraded and (was_degraded.get("status") != "True"
                         or was_degraded.get("reason") != cause):
            # Once per outage, and again when its cause changes (etcd back but full, say).
            self.event(obj.ref, "Degraded", f"{binding} cannot be written "
                       f"({retry.failures} consecutive failures): {retry.last_error}")
        elif not degraded and was_degraded.get("status") == "True":
            self.event(obj.ref, "Recovered", f"{binding}: writes succeed again", warning=False)

    def _conflict_condition(self, obj: _ObjectStatus, conflicts: tuple[str, ...]) -> None:
        """Keys another writer holds: named in the condition, one Event when they appear."""
        was_conflict = obj.conditions.get("Conflict", {}).get("status") == "True"
        self._set(obj, "Conflict", bool(conflicts), "ForeignKeys" if conflicts else "NoConflict",
                  (f"{len(conflicts)} key(s) are held by another writer and left alone: "
                   + ", ".join(conflicts[:5])) if conflicts else "no foreign key in the way")
        if conflicts and not was_conflict:
            self.event(obj.ref, "Conflict", obj.conditions["Conflict"]["message"])

    def _pods_condition(self, obj: _ObjectStatus) -> None:
        """Selected pods that cannot be an instance (a bad port name, no IP of the family).

        Read again only when an error of its own pods came, changed or went, and
        then only the first five by name are formatted: formatting and sorting
        10,000 of them at each of its cycles let a tenant spend the event loop
        everyone shares by churning its pods.
        """
        source = Source(KITEXSERVICE, obj.ref.namespace, obj.ref.name)
        errors = self.state.pod_errors
        checked = (errors.version_of(source), obj.generation)
        if obj.pods_checked == checked and "InvalidPods" in obj.conditions:
            return
        obj.pods_checked = checked
        pods, mine = self.state.pods, errors.of(source)
        first = heapq.nsmallest(5, (uid for uid in mine if uid in pods),
                                key=lambda uid: pods[uid].name)
        self._set(obj, "InvalidPods", bool(first), "PodErrors" if first else "AllPodsValid",
                  "; ".join(f"pod {pods[uid].name}: {mine[uid]}" for uid in first) if first
                  else "every selected pod is usable")

    def _render(self, obj: _ObjectStatus, binding: Binding | None,
                report: SyncReport | None) -> dict[str, Any]:
        status: dict[str, Any] = {"observedGeneration": obj.generation,
                                  "conditions": list(obj.conditions.values())}
        if obj.spec_error is not None:
            status.update(readyInstances=0, registeredAddresses=[],
                          lastError=str(obj.spec_error))
            return status
        if binding is not None and report is not None:
            # Only this object's own instances: a shared name must not show one
            # team the addresses of another's pods.
            conflicts = set(report.conflicts)
            own = Source(KITEXSERVICE, obj.ref.namespace, obj.ref.name)
            keys = sorted(k for b, k in self.state.source_keys(own)
                          if b == binding and k not in conflicts)
            status.update(
                serviceName=binding.service, prefix=binding.prefix,
                readyInstances=len(keys),
                registeredAddresses=[k[len(binding.range):] for k in keys[:MAX_ADDRESSES]],
                lastError=report.retry.last_error)
            if report.retry.failures == 0:
                status["lastSyncTime"] = _now()
        return status

    def _set(self, obj: _ObjectStatus, kind: str, value: bool, reason: str, message: str) -> None:
        status = "True" if value else "False"
        old = obj.conditions.get(kind)
        if old and old["status"] == status and old["reason"] == reason \
                and old["message"] == message:
            return
        stamp = old["lastTransitionTime"] if old and old["status"] == status else _now()
        obj.conditions[kind] = {"type": kind, "status": status, "reason": reason,
                                "message": message[:1024], "lastTransitionTime": stamp,
                                "observedGeneration": obj.generation}

    def _report_pod_errors(self) -> None:
        """One Event per pod and problem: on the pod itself, where its owner looks.

        Called after every write cycle: it reads only the pods whose error came,
        changed or went since. Walking every pod error each cycle made one
        tenant's malformed pods slow every tenant's registrations.
        """
        errors, pods = self.state.pod_errors, self.state.pods
        for uid in errors.take_changed():
            pod, found = pods.get(uid), errors.get(uid)
            if pod is None:
                self._pod_errors_reported.pop(uid, None)
                continue
            if found is None or self._pod_errors_reported.get(uid) == str(found[1]):
                continue
            err = found[1]
            self._pod_errors_reported[uid] = str(err)
            log.warning("Pod %s/%s cannot be registered: %s", pod.namespace, pod.name, err,
                        extra={"pod": pod.name, "namespace": pod.namespace})
            self.event(ObjectRef("Pod", "v1", pod.namespace, pod.name, pod.uid),
                       getattr(err, "reason", "InvalidKitexRegistration"), str(err))
        if len(self._pod_errors_reported) > self._reported_bound:
            # refused pods' entries, of pods since deleted
            self._reported_bound = _forget(self._pod_errors_reported, pods.__contains__)

    # --- output ----------------------------------------------------------------

    def start(self) -> None:
        if self.kube is not None and self._task is None:
            self._task = supervisor.spawn("status-writer", "status", self._loop)

    async def _loop(self) -> None:
        assert self.kube is not None
        while True:
            for key, obj in list(self.objects.items()):
                pending = obj.pending
                if pending is None:
                    continue
                comparable = {k: v for k, v in pending.items() if k != "lastSyncTime"}
                if comparable == obj.written:
                    obj.pending = None
                    continue
                try:
                    await self.kube.patch_status(key[0], key[1], pending)
                    obj.written = comparable
                    if obj.pending is pending:  # a newer status that came meanwhile goes next
                        obj.pending = None
                except Exception as exc:  # any error: the next object, and this one next round
                    metrics.status_errors.labels("status").inc()
                    log.warning("Could not write status of %s/%s: %s", *key, exc)
            for ref, reason, message, warning in self._events.take(EVENTS_PER_ROUND):
                try:
                    await self.kube.post_event(ref, reason=reason, message=message,
                                               warning=warning)
                except Exception as exc:  # one lost Event must not end the reporting
                    metrics.status_errors.labels("event").inc()
                    log.warning("Could not post event %s on %s/%s: %s", reason, ref.namespace,
                                ref.name, exc)
            self._kick.clear()
            if self._events:  # more Events: the next round at once, status patches first
                await asyncio.sleep(0)
                continue
            await supervisor.wait_set(self._kick, FLUSH_INTERVAL)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _forget(reported: dict[K, str], alive: Callable[[K], bool]) -> int:
    """Drop what was reported of objects that are gone; the size at which to walk again:
    at most twice the live entries (and 1,000) accumulate in between."""
    for key in [k for k in reported if not alive(k)]:
        del reported[key]
    return 2 * len(reported) + 1000


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
