"""The kopf glue, kept thin: KitexService events in, nothing written by kopf.

kopf is used for the KitexService watch stream only: the ``on.event``
handler writes nothing, and the finalizer is the controller's
(``finalizers.py``), so only the leader may release it. Pods are not
kopf's: its unpaginated list and per-object workers held every pod body at
once (560 MiB at 10,000 pods), so ``podwatch`` lists them a page at a time.
Nothing is written on pods, so they delete freely while the operator is down
(kopf #686).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from .controller import Controller
from .kubeapi import GROUP, PLURAL, POLICY_PLURAL, REGISTRY_PLURAL, VERSION

log = logging.getLogger(__name__)


def make_registry(controller: Controller,
                  on_startup: Callable[[], None] | None = None) -> kopf.OperatorRegistry:
    """Handlers bound to one controller, in a registry of their own (no import side effects).

    ``on_startup`` runs once kopf has started (the runner takes the signal
    handlers back there: kopf installs its own on start).
    """
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
        if on_startup is not None:
            on_startup()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def kitexservice_event(event: kopf.RawEvent, **_: Any) -> None:
        try:
            controller.on_kitexservice(event.get("type"), event["object"])
        except Exception:
            log.exception("Could not process a KitexService event")

    # The admin's objects and namespace labels decide what tenants may register;
    # the controller lists them completely before it admits anything.
    @kopf.on.event(GROUP, VERSION, POLICY_PLURAL, registry=registry)
    async def policy_event(event: kopf.RawEvent, **_: Any) -> None:
        try:
            controller.on_policy(event.get("type"), event["object"])
        except Exception:
            log.exception("Could not process a KitexRegistrationPolicy event")

    @kopf.on.event(GROUP, VERSION, REGISTRY_PLURAL, registry=registry)
    async def registry_event(event: kopf.RawEvent, **_: Any) -> None:
        try:
            controller.on_registry(event.get("type"), event["object"])
        except Exception:
            log.exception("Could not process a KitexEtcdRegistry event")

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(event: kopf.RawEvent, **_: Any) -> None:
        try:
            controller.on_namespace(event.get("type"), event["object"])
        except Exception:
            log.exception("Could not process a Namespace event")

    return registry
