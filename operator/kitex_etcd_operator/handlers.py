"""The kopf glue, kept thin: events in, nothing written on Pods.

Pods are watched with ``on.event`` only: no kopf annotations, no finalizers,
no patches, so pods delete freely while the operator is down and a large
cluster costs no write per pod (kopf #686). KitexServices get a finalizer
through ``on.delete``, so that their entries leave etcd before they go.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from .controller import Controller
from .kubeapi import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
REMOVAL_WAIT = 30.0  # seconds one delete handler call waits before kopf retries it


def make_registry(controller: Controller) -> kopf.OperatorRegistry:
    """Handlers bound to one controller, in a registry of their own (no import side effects)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if controller.kube is None or controller.kube.in_cluster:
            return kopf.login_with_service_account(**kwargs)
        info: kopf.ConnectionInfo = controller.kube.connection_info()
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/entries"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration")
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.batching.worker_limit = None

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        # Async, so it runs on the loop (kopf runs sync handlers in threads); returns
        # None, as a result of an on.event handler would be written to the object.
        try:
            controller.on_pod(event.get("type"), event["object"])
        except Exception:  # one odd pod must never stop the stream for the others
            log.exception("Could not process a pod event")

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def kitexservice_event(event: kopf.RawEvent, **_: Any) -> None:
        try:
            controller.on_kitexservice(event.get("type"), event["object"])
        except Exception:
            log.exception("Could not process a KitexService event")

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    async def kitexservice_deleted(namespace: str | None, name: str, **_: Any) -> None:
        """Hold the finalizer until the service's entries are out of etcd.

        If etcd cannot be reached, kopf retries; the object stays (Terminating)
        rather than leaving entries behind that nobody owns any more.
        """
        key = (namespace or "", name)
        try:
            await asyncio.wait_for(controller.wait_removed(key), REMOVAL_WAIT)
        except TimeoutError:
            raise kopf.TemporaryError(
                f"entries not yet removed from etcd: {controller.last_error(key)}",
                delay=10) from None

    return registry
