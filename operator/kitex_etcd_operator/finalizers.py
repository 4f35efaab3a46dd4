"""The KitexService finalizer: its entries leave etcd before the object goes.

Managed here rather than by kopf's ``on.delete``: with several replicas only
the leader may release a finalizer (a standby has not removed anything), and
kopf would also write its progress annotations from every replica. The
leader adds the finalizer to every KitexService it sees, and removes it once
the service's binding has been written without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import supervisor
from .desired import SpecKey
from .kube.names import GROUP
from .kubeapi import API_ERRORS, KubeApi

log = logging.getLogger(__name__)
FINALIZER = f"{GROUP}/entries"
RETRY = 5.0


class Finalizers:
    """Tracks each KitexService's finalizers and deletion, and acts when leading."""

    def __init__(self, kube: KubeApi | None,
                 wait_removed: Callable[[SpecKey], Awaitable[None]]) -> None:
        self.kube = kube
        self.wait_removed = wait_removed
        self.active = False  # only the leader writes
        self._seen: dict[SpecKey, tuple[list[str], bool]] = {}
        self._tasks: dict[SpecKey, asyncio.Task[None]] = {}

    def observe(self, key: SpecKey, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        if deleted:
            self._seen.pop(key, None)
            return
        self._seen[key] = (list(meta.get("finalizers") or []),
                           bool(meta.get("deletionTimestamp")))
        if self.active:
            self._ensure(key)

    def start(self) -> None:
        """Become the writer: catch up on everything seen so far."""
        self.active = True
        for key in list(self._seen):
            self._ensure(key)

    def _ensure(self, key: SpecKey) -> None:
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = supervisor.spawn("finalizer", "/".join(key),
                                                lambda: self._reconcile(key))

    async def _reconcile(self, key: SpecKey) -> None:
        if self.kube is None:
            return
        while key in self._seen:
            finalizers, deleting = self._seen[key]
            try:
                if deleting:
                    if FINALIZER not in finalizers:
                        return
                    await self.wait_removed(key)
                    await self.kube.set_finalizer(*key, finalizers, False, FINALIZER)
                    log.info("Entries of KitexService %s/%s removed; finalizer released", *key)
                elif FINALIZER not in finalizers:
                    await self.kube.set_finalizer(*key, finalizers, True, FINALIZER)
                return
            except API_ERRORS as exc:  # anything else is a bug: the supervisor's to see
                log.warning("Finalizer of %s/%s: %s; retrying", *key, exc)
                await asyncio.sleep(RETRY)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
