"""Leader election on a coordination.k8s.io Lease, so that one replica writes at a time.

kopf's peering is not leader election: after a crash a standby waits about
a minute before it takes over. Here a standby takes over ``lease_duration``
after the leader's last renewal (15 s by default), well inside the etcd lease
TTL (60 s), so that no entry expires during a takeover: the new leader finds
the old leader's leases through the ownership records and keeps them alive.

Expiry is judged by the standby's own clock, from when it last saw the Lease
change, as client-go does, so clock skew between nodes does not matter.
A leader that cannot renew before ``renew_deadline`` steps down by exiting:
the Deployment restarts it as a standby. That deadline bounds each attempt
too (a hung call to the API server is cut off there), and an unexpected error
while leading steps down the same way. A leader that stops on purpose (a
rollout, a drain) releases the Lease once it has stopped writing, so the
standby takes over within ``retry_period`` instead of ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass
from typing import Any

from .kubeapi import API_ERRORS, ApiError, KubeApi, describe_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    namespace: str
    name: str = "kitex-etcd-operator"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LostLeadership(Exception):
    """Raised in the leader when it could not renew in time."""


class LeaderElector:
    """Acquires and renews the Lease; ``leading`` is set while we hold it."""

    def __init__(self, kube: KubeApi, config: ElectionConfig) -> None:
        self.kube = kube
        self.config = config
        self.leading = asyncio.Event()
        self._observed: tuple[str, float] | None = None  # (resourceVersion, local time seen)

    async def run(self) -> None:
        """Try until leading, then renew until it fails; raises ``LostLeadership``.

        While leading, no attempt may outlast the renew deadline: a call to a
        black-holed API server would otherwise keep this replica writing for two
        ``CALL_TIMEOUT``s, long after the standby took over. A renewal counts from
        when it was sent, not answered: the standby's clock starts when it sees the
        write, never before it was sent.
        """
        cfg = self.config
        last_renew = 0.0
        while True:
            started = time.monotonic()
            left = cfg.renew_deadline - (started - last_renew)
            bound = asyncio.timeout(left if self.leading.is_set() else None)
            try:
                async with bound:
                    held = await self._try_acquire_or_renew()
            except API_ERRORS as exc:
                # The API server unreachable (restarting, the network cut) is not renewing,
                # no more: past renew_deadline the leader steps down below. It used to end
                # this task, and with it the process, at the first refused connection.
                # Our own deadline's TimeoutError is an OSError: it lands here too.
                log.warning("Leader election: %s", "no answer within the renew deadline"
                            if bound.expired() else describe_error(exc))
                held = False
            except Exception as exc:
                if not self.leading.is_set():
                    raise  # a standby writes nothing: the supervisor counts it and restarts
                # A bug while leading: restarted by the supervisor after its backoff, the
                # election would leave ``leading`` set with nobody renewing the Lease.
                self.leading.clear()
                raise LostLeadership(f"renewing the Lease failed: "
                                     f"{type(exc).__name__}: {exc}") from exc
            now = time.monotonic()
            if held:
                last_renew = started
                if not self.leading.is_set():
                    log.info("Became the leader (%s)", cfg.identity)
                    self.leading.set()
            elif self.leading.is_set() and (bound.expired()
                                            or now - last_renew > cfg.renew_deadline):
                self.leading.clear()
                raise LostLeadership(f"could not renew the Lease for "
                                     f"{cfg.renew_deadline:g}s")
            await asyncio.sleep(cfg.retry_period)

    def _path(self, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.config.namespace}/leases"
        return f"{path}/{name}" if name else path

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        now = _now()
        try:
            lease = await self.kube.request("GET", self._path(cfg.name))
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = self._body(now, transitions=0, acquire_time=now)
            await self.kube.request("POST", self._path(), body)
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        observed = self._observed
        if observed is None or observed[0] != version:
            observed = self._observed = (version, time.monotonic())
        if holder and holder != cfg.identity:
            expired = time.monotonic() - observed[1] > cfg.lease_duration
            if not expired:
                return False
            log.info("Lease held by %s expired; taking over", holder)
        transitions = (spec.get("leaseTransitions") or 0) + (holder != cfg.identity)
        acquire = spec.get("acquireTime") if holder == cfg.identity else now
        body = self._body(now, transitions=transitions, acquire_time=acquire or now)
        body["metadata"]["resourceVersion"] = version  # lose the race rather than overwrite
        await self.kube.request("PUT", self._path(cfg.name), body)
        return True

    async def release(self) -> None:
        """Hand the Lease over at once; only after this replica stopped writing.

        An empty holder is free for anyone; the resourceVersion guard makes a
        Lease someone else already took a conflict, never a theft.
        """
        if not self.leading.is_set():
            return
        self.leading.clear()
        cfg = self.config
        try:
            lease = await self.kube.request("GET", self._path(cfg.name))
            spec = lease.get("spec")
            if not spec or spec.get("holderIdentity") != cfg.identity:
                return
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            await self.kube.request("PUT", self._path(cfg.name), lease)
            log.info("Released the leader Lease (%s)", cfg.identity)
        except API_ERRORS as exc:
            log.warning("Could not release the leader Lease (the standby takes over "
                        "after %gs): %s", cfg.lease_duration, describe_error(exc))

    def _body(self, now: datetime.datetime, *, transitions: int,
              acquire_time: datetime.datetime | str) -> dict[str, Any]:
        cfg = self.config
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {"holderIdentity": cfg.identity,
                     "leaseDurationSeconds": int(cfg.lease_duration),
                     "acquireTime": _micro(acquire_time), "renewTime": _micro(now),
                     "leaseTransitions": transitions}}



def _micro(stamp: datetime.datetime | str) -> str:
    """A MicroTime as the API server writes it; one read back is kept as it is."""
    if isinstance(stamp, str):
        return stamp
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
