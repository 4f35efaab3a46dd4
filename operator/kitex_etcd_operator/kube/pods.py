"""A pod reduced to what registration needs, and the rule for when it counts.

The operator holds every pod in scope in memory (10k and more), so the view
keeps only the few fields any rule reads: labels for selectors, the
operator's own annotations (not the others: a ``last-applied-configuration``
can weigh kilobytes), addresses, readiness and ports.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import msgspec

from .names import ANNOTATION_PREFIX

ContainerPort = tuple[str, int, str]  # (name, containerPort, protocol)


class PodView(msgspec.Struct, frozen=True, gc=False):
    """The registration-relevant part of one pod; built by ``pod_view``.

    A msgspec struct rather than a dataclass: 100,000 of them are held, and
    untracked by the garbage collector (``gc=False``: it holds strings, tuples
    and shared mappings, never a cycle) they cost 16 bytes less each and no
    collector pass walks them; a frozen struct is also built several times
    faster than a frozen dataclass.
    """

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


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    return ((k, v) for k, v in _mapping(value).items() if isinstance(k, str) and isinstance(v, str))


def _ports(spec: Mapping[str, Any]) -> Iterator[ContainerPort]:
    for container in _list(spec.get("containers")):
        for port in _list(_mapping(container).get("ports")):
            port = _mapping(port)
            number = port.get("containerPort")
            if isinstance(number, int) and not isinstance(number, bool):
                yield _text(port.get("name")), number, _text(port.get("protocol")) or "TCP"


_SHARED: dict[object, Any] = {}
_SHARED_MAX = 100_000
S = TypeVar("S", dict[str, str], tuple[ContainerPort, ...])


def _shared(value: S) -> S:
    """One copy of each distinct label set, annotation set and port list.

    The operator holds every pod in scope (100,000 and more) and the pods of
    one Deployment carry the same labels, annotations and ports: one dict per
    pod cost ~330 bytes of a pod's ~2 KB. Views never change what they hold
    (``PodView`` is frozen, its mappings read-only by contract), so equal values
    can be the same object. Keys and values are interned too: selectors
    compare them constantly. The table is emptied when it grows past
    ``_SHARED_MAX`` distinct values, so it cannot grow without bound.
    """
    key = ("labels", *value.items()) if isinstance(value, dict) else ("ports", *value)
    found = _SHARED.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[key] = value
    return value


def interned_labels(labels: Iterable[tuple[str, str]]) -> dict[str, str]:
    return _shared({sys.intern(k): sys.intern(v) for k, v in labels})


def _labels(value: Any) -> dict[str, str]:
    """The labels of any object's metadata, interned and shared (``_shared``)."""
    return interned_labels(_strings(value))


def assemble(*, uid: str, namespace: str, name: str, labels: Iterable[tuple[str, str]],
             annotations: Iterable[tuple[str, str]], pod_ip: str, pod_ips: Iterable[str],
             host_ip: str, conditions: Mapping[str, object], gates: Iterable[str],
             ports: Iterable[ContainerPort], host_network: bool, phase: str, deleting: bool,
             created: str) -> PodView:
    """A ``PodView`` out of a pod's fields, however they were decoded.

    Three readers feed the rules below: ``pod_view`` over a parsed JSON body,
    lenient about every field; ``podwire``, which decodes JSON list pages and
    watch events straight into typed structs; and ``podproto``, which reads
    the API server's protobuf list pages (and shares labels, annotations and
    ports by their encoded bytes, calling ``shared_view`` itself). All go
    through ``shared_view`` so that they cannot disagree on readiness, address
    order or which annotations are kept.
    """
    return shared_view(
        uid=uid, namespace=namespace, name=name, labels=interned_labels(labels),
        annotations=kept_annotations(annotations), pod_ip=pod_ip, pod_ips=pod_ips,
        host_ip=host_ip, conditions=conditions, gates=gates, ports=shared_ports(ports),
        host_network=host_network, phase=phase, deleting=deleting, created=created)


def kept_annotations(annotations: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The operator's own annotations, shared (``_shared``): the others are never read."""
    return _shared({sys.intern(k): v for k, v in annotations if k.startswith(ANNOTATION_PREFIX)})


def shared_ports(ports: Iterable[ContainerPort]) -> tuple[ContainerPort, ...]:
    return _shared(tuple(ports))


def shared_view(*, uid: str, namespace: str, name: str, labels: dict[str, str],
                annotations: dict[str, str], pod_ip: str, pod_ips: Iterable[str],
                host_ip: str, conditions: Mapping[str, object], gates: Iterable[str],
                ports: tuple[ContainerPort, ...], host_network: bool, phase: str,
                deleting: bool, created: str) -> PodView:
    """The rules, over labels, kept annotations and ports already shared.

    ``ready``: Ready True, and every readiness gate True as well. The kubelet
    folds the gates into Ready already; checking them again costs nothing and
    keeps a pod out during the instant between a gate turning False and the
    kubelet updating Ready. Addresses: status.podIPs in order, the primary
    first even when only status.podIP carries it (an API server older than
    dual stack, or a partial body).
    """
    ips = [ip for ip in pod_ips if ip]
    if pod_ip and pod_ip not in ips:
        ips.insert(0, pod_ip)
    ready = conditions.get("Ready") == "True" and all(
        conditions.get(gate) == "True" for gate in gates if gate)
    return PodView(
        uid=uid,
        namespace=sys.intern(namespace),
        name=name,
        labels=labels,
        annotations=annotations,
        pod_ips=tuple(ips),
        host_ip=sys.intern(host_ip) if host_ip else None,
        ready=ready,
        terminating=deleting,
        container_ports=ports,
        host_network=host_network,
        finished=phase in ("Succeeded", "Failed"),
        created=sys.intern(created),
    )


def pod_view(body: Mapping[str, Any]) -> PodView:
    """Read a pod body; never raises, odd fields read as absent.

    One malformed pod must not stop the event stream for the others, and the
    API server has validated pods already: anything odd here is a partial body
    (a DELETED event, a test fixture), best read as "not ready".
    """
    meta = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    status = _mapping(body.get("status"))
    return assemble(
        uid=_text(meta.get("uid")),
        namespace=_text(meta.get("namespace")),
        name=_text(meta.get("name")),
        labels=_strings(meta.get("labels")),
        annotations=_strings(meta.get("annotations")),
        pod_ip=_text(status.get("podIP")),
        pod_ips=(_text(_mapping(item).get("ip")) for item in _list(status.get("podIPs"))),
        host_ip=_text(status.get("hostIP")),
        conditions={_text(_mapping(c).get("type")): _mapping(c).get("status")
                    for c in _list(status.get("conditions"))},
        gates=(_text(_mapping(g).get("conditionType")) for g in _list(spec.get("readinessGates"))),
        ports=_ports(spec),
        host_network=spec.get("hostNetwork") is True,
        phase=_text(status.get("phase")),
        deleting=meta.get("deletionTimestamp") is not None,
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
