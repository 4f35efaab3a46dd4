"""Pod list pages in the API server's protobuf encoding, read into ``PodView``s.

Why not JSON for lists: at 100,000 pods the API server spends most of a
list encoding JSON (each pod is 4 to 7 KB of it, ``managedFields`` mostly),
and a list is a chain of pages, each asked for once the one before it
named its continue token. Asked for protobuf, the server sends the same
pods in a third of the bytes for much less CPU: the whole list takes half
the time (docs/benchmarks.md). client-go asks for protobuf for the same
reason.

The schema is not generated: the few messages and fields registration
reads are declared below with their numbers from ``k8s.io/api`` (core/v1)
and ``k8s.io/apimachinery`` (meta/v1, runtime), whose numbers never change
(protobuf compatibility is part of the Kubernetes API's deprecation policy).
Every other field is skipped by the parser, as msgspec skips unnamed JSON
fields. Labels, annotations, the containers and the creation time are
declared as raw bytes: the pods of one Deployment carry byte-identical ones,
so each distinct encoding is decoded once and its view shared
(``pods._shared``); reading them through message objects cost more than the
rest of a pod together.

A body that is not protobuf (an API server or proxy answering JSON for all
that was asked) is read by ``podwire``. A protobuf body the parser refuses
raises ``wire.Undecodable``: ``kubeapi`` asks for that page again as JSON.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from . import podwire, wire
from .pods import (
    ContainerPort,
    PodView,
    interned_labels,
    kept_annotations,
    shared_ports,
    shared_view,
)

MAGIC = b"k8s\x00"  # what every protobuf body of the API server starts with
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _INT32, _INT64, _BOOL = (_F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_INT32,
                                          _F.TYPE_INT64, _F.TYPE_BOOL)
_PACKAGE = "kitex_etcd_operator.k8s"

# message: (field name, number, type: a scalar or another message's name, repeated)
_SCHEMA: dict[str, tuple[tuple[str, int, int | str, bool], ...]] = {
    # k8s.io/apimachinery/pkg/runtime: the envelope of every protobuf body
    "Unknown": (("raw", 2, _BYTES, False),),
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "ListMeta": (("resourceVersion", 2, _STRING, False), ("continue", 3, _STRING, False)),
    "ObjectMeta": (("name", 1, _STRING, False), ("namespace", 3, _STRING, False),
                   ("uid", 5, _STRING, False), ("resourceVersion", 6, _STRING, False),
                   ("creationTimestamp", 8, _BYTES, False),
                   ("deletionTimestamp", 9, _BYTES, False),
                   ("labels", 11, _BYTES, True), ("annotations", 12, _BYTES, True)),
    "Time": (("seconds", 1, _INT64, False),),
    "MapEntry": (("key", 1, _STRING, False), ("value", 2, _STRING, False)),
    # k8s.io/api/core/v1
    "PodList": (("metadata", 1, "ListMeta", False), ("items", 2, "Pod", True)),
    "Pod": (("metadata", 1, "ObjectMeta", False), ("spec", 2, "PodSpec", False),
            ("status", 3, "PodStatus", False)),
    "PodSpec": (("containers", 2, _BYTES, True), ("hostNetwork", 11, _BOOL, False),
                ("readinessGates", 28, "PodReadinessGate", True)),
    "Container": (("ports", 6, "ContainerPort", True),),
    "ContainerPort": (("name", 1, _STRING, False), ("containerPort", 3, _INT32, False),
                      ("protocol", 4, _STRING, False)),
    "PodReadinessGate": (("conditionType", 1, _STRING, False),),
    "PodStatus": (("phase", 1, _STRING, False), ("conditions", 2, "PodCondition", True),
                  ("hostIP", 5, _STRING, False), ("podIP", 6, _STRING, False),
                  ("podIPs", 12, "PodIP", True)),
    "PodCondition": (("type", 1, _STRING, False), ("status", 2, _STRING, False)),
    "PodIP": (("ip", 1, _STRING, False),),
}


def _classes() -> dict[str, Any]:
    """The message classes of ``_SCHEMA``, in a pool of their own (proto2: presence kept)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="kitex_etcd_operator/k8s_pods.proto", package=_PACKAGE, syntax="proto2")
    for name, fields in _SCHEMA.items():
        declared = file.message_type.add(name=name)
        for field, number, kind, repeated in fields:
            entry = declared.field.add(
                name=field, number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if isinstance(kind, str):
                entry.type, entry.type_name = _F.TYPE_MESSAGE, f".{_PACKAGE}.{kind}"
            else:
                entry.type = cast("descriptor_pb2.FieldDescriptorProto.Type.ValueType", kind)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(
        f"{_PACKAGE}.{name}")) for name in _SCHEMA}


_M = _classes()
_Unknown, _PodList, _Entry, _Container, _Time = (
    _M["Unknown"], _M["PodList"], _M["MapEntry"], _M["Container"], _M["Time"])

_BY_BYTES: dict[tuple[int, bytes], Any] = {}
_BY_BYTES_MAX = 16_384


def _cached(field: int, encoded: Sequence[bytes], read: Any) -> Any:
    """``read(encoded)``, once per distinct encoding; emptied when full, like ``_shared``."""
    key = (field, b"".join(encoded)) if len(encoded) != 1 else (field, encoded[0])
    found = _BY_BYTES.get(key)
    if found is None:
        if len(_BY_BYTES) >= _BY_BYTES_MAX:
            _BY_BYTES.clear()
        found = _BY_BYTES[key] = read(encoded)
    return found


def _entries(encoded: Sequence[bytes]) -> list[tuple[str, str]]:
    return [(entry.key, entry.value) for entry in map(_Entry.FromString, encoded)]


def _labels(encoded: Sequence[bytes]) -> dict[str, str]:
    return interned_labels(_entries(encoded))


def _annotations(encoded: Sequence[bytes]) -> dict[str, str]:
    return kept_annotations(_entries(encoded))


def _ports(encoded: Sequence[bytes]) -> tuple[ContainerPort, ...]:
    return shared_ports((port.name, port.containerPort, port.protocol or "TCP")
                        for container in map(_Container.FromString, encoded)
                        for port in container.ports if port.containerPort)


def _created(encoded: Sequence[bytes]) -> str:
    """A ``metav1.Time`` as its JSON form (RFC 3339, UTC, to the second): ``created``
    is compared between pods, and watch events bring it as JSON."""
    seconds = _Time.FromString(encoded[0]).seconds
    return sys.intern(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)))


_EMPTY: dict[str, str] = interned_labels(())
_NO_PORTS: tuple[ContainerPort, ...] = shared_ports(())


def _view(pod: Any) -> PodView:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    labels, annotations, containers = meta.labels, meta.annotations, spec.containers
    return shared_view(
        uid=meta.uid, namespace=meta.namespace, name=meta.name,
        labels=_cached(11, labels, _labels) if labels else _EMPTY,
        annotations=_cached(12, annotations, _annotations) if annotations else _EMPTY,
        pod_ip=status.podIP, pod_ips=[ip.ip for ip in status.podIPs],
        host_ip=status.hostIP,
        conditions={condition.type: condition.status for condition in status.conditions},
        gates=[gate.conditionType for gate in spec.readinessGates],
        ports=_cached(2, containers, _ports) if containers else _NO_PORTS,
        host_network=spec.hostNetwork, phase=status.phase,
        deleting=meta.HasField("deletionTimestamp"),
        created=(_cached(8, (meta.creationTimestamp,), _created)
                 if meta.HasField("creationTimestamp") else ""))


def decode_page(data: bytes) -> wire.Page:
    """One page of a pod list, protobuf or (if the server answered so) JSON."""
    if not data.startswith(MAGIC):
        return podwire.decode_page(data)
    try:
        page = _PodList.FromString(_Unknown.FromString(memoryview(data)[len(MAGIC):]).raw)
    except message.DecodeError as exc:
        raise wire.Undecodable(f"a protobuf pod list page: {exc}") from None
    items = [wire.Item(pod.metadata.uid, wire.number(pod.metadata.resourceVersion), _view(pod))
             for pod in page.items]
    return items, page.metadata.resourceVersion, getattr(page.metadata, "continue")


CODEC = wire.Codec(decode_page, podwire.decode_event,
                   page_types=f"{MEDIA_TYPE}, application/json")
"""Pods: list pages asked for as protobuf, watch events read as JSON by ``podwire``."""
