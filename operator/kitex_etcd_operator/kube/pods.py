"""A pod reduced to what registration needs, and the rule for when it counts.

The operator holds every pod in scope in memory (10k and more), so the view
keeps only the few fields any rule reads: labels for selectors, the
operator's own annotations (not the others: a ``last-applied-configuration``
can weigh kilobytes), addresses, readiness and ports.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .names import ANNOTATION_PREFIX

ContainerPort = tuple[str, int, str]  # (name, containerPort, protocol)


@dataclass(frozen=True, slots=True)
class PodView:
    """The registration-relevant part of one pod; built by ``pod_view``."""

    uid: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]  # only those under ANNOTATION_PREFIX
    pod_ips: tuple[str, ...]  # status.podIPs in order: the first is the primary family
    host_ip: str | None
    ready: bool  # Ready is True and so is every readiness gate's condition
    terminating: bool  # deletionTimestamp set
    container_ports: tuple[ContainerPort, ...]
    host_network: bool
    finished: bool = False  # phase Succeeded or Failed: no server left to call
    created: str = ""  # metadata.creationTimestamp (RFC 3339): who claimed a name first


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _labels(value: Any) -> dict[str, str]:
    # Interned: ten thousand pods of one Deployment share the same few keys
    # and values, and selectors compare them constantly.
    return {sys.intern(k): sys.intern(v) for k, v in _mapping(value).items()
            if isinstance(k, str) and isinstance(v, str)}


def _ips(status: Mapping[str, Any]) -> tuple[str, ...]:
    ips = [_text(_mapping(item).get("ip")) for item in _list(status.get("podIPs"))]
    ips = [ip for ip in ips if ip]
    primary = _text(status.get("podIP"))
    if primary and primary not in ips:
        ips.insert(0, primary)  # an API server older than dual stack, or a partial body
    return tuple(ips)


def _ready(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Ready True, and every readiness gate True as well.

    The kubelet folds the gates into Ready already; checking them again costs
    nothing and keeps a pod out during the instant between a gate turning
    False and the kubelet updating Ready.
    """
    conditions = {_text(_mapping(c).get("type")): _mapping(c).get("status")
                  for c in _list(status.get("conditions"))}
    if conditions.get("Ready") != "True":
        return False
    gates = [_text(_mapping(g).get("conditionType")) for g in _list(spec.get("readinessGates"))]
    return all(conditions.get(gate) == "True" for gate in gates if gate)


def _ports(spec: Mapping[str, Any]) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    for container in _list(spec.get("containers")):
        for port in _list(_mapping(container).get("ports")):
            port = _mapping(port)
            number = port.get("containerPort")
            if isinstance(number, int) and not isinstance(number, bool):
                ports.append((_text(port.get("name")), number,
                              _text(port.get("protocol")) or "TCP"))
    return tuple(ports)


def pod_view(body: Mapping[str, Any]) -> PodView:
    """Read a pod body; never raises, odd fields read as absent.

    One malformed pod must not stop the event stream for the others, and the
    API server has validated pods already: anything odd here is a partial body
    (a DELETED event, a test fixture), best read as "not ready".
    """
    meta = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    status = _mapping(body.get("status"))
    annotations = {k: v for k, v in _mapping(meta.get("annotations")).items()
                   if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX)
                   and isinstance(v, str)}
    return PodView(
        uid=_text(meta.get("uid")),
        namespace=sys.intern(_text(meta.get("namespace"))),
        name=_text(meta.get("name")),
        labels=_labels(meta.get("labels")),
        annotations=annotations,
        pod_ips=_ips(status),
        host_ip=_text(status.get("hostIP")) or None,
        ready=_ready(spec, status),
        terminating=meta.get("deletionTimestamp") is not None,
        container_ports=_ports(spec),
        host_network=spec.get("hostNetwork") is True,
        finished=status.get("phase") in ("Succeeded", "Failed"),
        created=_text(meta.get("creationTimestamp")),
    )


def is_eligible(pod: PodView, publish_not_ready: bool = False) -> bool:
    """Whether a pod may be an instance at all: an IP, ready, alive, not going away.

    ``publish_not_ready`` relaxes readiness only: a terminating pod is never
    published, since clients would keep calling it for seconds after it
    stops (see docs/wire-format.md, "What clients do").
    """
    if not pod.pod_ips or pod.terminating or pod.finished:
        return False
    return pod.ready or publish_not_ready
