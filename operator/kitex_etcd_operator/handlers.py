"""The kopf glue, kept thin: events in, nothing written on Pods.

kopf is used for its watch streams only: ``on.event`` handlers write
nothing, so pods delete freely while the operator is down and a large
cluster costs no write per pod (kopf #686). The KitexService finalizer is
the controller's (``finalizers.py``): only the leader may release it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .controller import Controller
from .kubeapi import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


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

    return registry
