"""The kopf glue, kept thin: watch events in, nothing written by kopf.

kopf is used for the watch streams of KitexServices, the admin's policies
and registries, and namespaces only: the ``on.event`` handlers write
nothing, and the finalizer is the controller's (``finalizers.py``), so only
the leader may release it. Pods are not
kopf's: its unpaginated list and per-object workers held every pod body at
once (560 MiB at 10,000 pods), so ``listwatch`` lists them (and Services and
EndpointSlices), reducing each object to its view as it arrives.
Nothing is written on pods, so they delete freely while the operator is down
(kopf #686).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from . import supervisor
from .controller import Controller
from .kube.names import GROUP
from .kubeapi import PLURAL, POLICY_PLURAL, REGISTRY_PLURAL, VERSION

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

    for group, version, plural, kind, sink in event_sinks(controller):
        kopf.on.event(group, version, plural, id=kind, registry=registry)(_forward(kind, sink))

    return registry


EventSink = Callable[[str | None, Mapping[str, Any]], None]


def event_sinks(controller: Controller) -> list[tuple[str, str, str, str, EventSink]]:
    """(group, version, plural, kind, sink) of each resource kopf watches.

    KitexServices, and the admin's objects and namespace labels, which decide what
    tenants may register (the controller lists them completely before it admits
    anything). Each event goes to one controller method; nothing is written back.
    The kind names the handler and its crashes' label: one of ``supervisor.KINDS``.
    """
    return [
        (GROUP, VERSION, PLURAL, "kitexservice-event", controller.on_kitexservice),
        (GROUP, VERSION, POLICY_PLURAL, "policy-event", controller.on_policy),
        (GROUP, VERSION, REGISTRY_PLURAL, "registry-event", controller.on_registry),
        ("", "v1", "namespaces", "namespace-event", controller.on_namespace),
    ]


def _forward(kind: str, sink: EventSink) -> Callable[..., Awaitable[None]]:
    """An ``on.event`` handler that hands the raw event to ``sink`` and returns None
    (a result would land in the object's status)."""
    async def handler(event: kopf.RawEvent, **_: Any) -> None:
        try:
            sink(event.get("type"), event["object"])
        except Exception as exc:
            # Bad input is a SpecError, handled inside: this is a bug. kopf would only log
            # it; the supervisor logs, counts it and lets it weigh on /healthz.
            meta = (event.get("object") or {}).get("metadata") or {}
            name = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
            supervisor.default().crashed(kind, name, exc)
    return handler
