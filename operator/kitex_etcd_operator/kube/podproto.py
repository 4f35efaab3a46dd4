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
fields. Labels, the operator's annotations and container ports are read as
raw bytes: the pods of one Deployment carry byte-identical ones, so each
distinct encoding is decoded once and its view shared (``pods._shared``);
reading them through message objects cost more than the rest of a pod
together.

A body that is not protobuf (an API server or proxy answering JSON for all
that was asked) is read by ``podwire``. A protobuf body the parser refuses
raises ``wire.Undecodable``: ``kubeapi`` asks for that page again as JSON.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from . import podwire, wire
from .names import ANNOTATION_PREFIX
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
                   ("creationTimestamp", 8, "Time", False),
                   ("deletionTimestamp", 9, "Time", False),
                   ("labels", 11, _BYTES, True), ("annotations", 12, _BYTES, True)),
    "Time": (("seconds", 1, _INT64, False),),
    "MapEntry": (("key", 1, _STRING, False), ("value", 2, _STRING, False)),
    # k8s.io/api/core/v1
    "PodList": (("metadata", 1, "ListMeta", False), ("items", 2, "Pod", True)),
    "Pod": (("metadata", 1, "ObjectMeta", False), ("spec", 2, "PodSpec", False),
            ("status", 3, "PodStatus", False)),
    "PodSpec": (("containers", 2, "Container", True), ("hostNetwork", 11, _BOOL, False),
                ("readinessGates", 28, "PodReadinessGate", True)),
    "Container": (("ports", 6, _BYTES, True),),
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
_Unknown, _PodList, _ListMeta, _Entry, _Port = (
    _M["Unknown"], _M["PodList"], _M["ListMeta"], _M["MapEntry"], _M["ContainerPort"])

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
                        for port in map(_Port.FromString, encoded) if port.containerPort)


@functools.lru_cache(maxsize=4096)
def _created(seconds: int) -> str:
    """A ``metav1.Time`` as its JSON form (RFC 3339, UTC, to the second): ``created``
    is compared between pods, and watch events bring it as JSON. Pods made in one
    burst share their second: the cache spares most of the formatting."""
    return sys.intern(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)))


_OURS = ANNOTATION_PREFIX.encode()
_OURS_END = len(_OURS) + 2
_EMPTY: dict[str, str] = interned_labels(())
_NO_PORTS: tuple[ContainerPort, ...] = shared_ports(())


def _view(pod: Any) -> PodView:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    labels = meta.labels
    # Ours alone: other tools' annotations can differ from pod to pod (a CNI's
    # pod IP, a container ID) and weigh kilobytes. A key of ours is under 128
    # bytes (a DNS prefix and a name of at most 63), so it starts each entry
    # at its third byte; the rest of an entry that matches there is checked
    # once decoded.
    annotations = [entry for entry in meta.annotations if _OURS in entry[:_OURS_END]]
    # Ports alone: a container's own bytes differ from pod to pod (the service
    # account token's volume mount has a name of its own in each).
    ports = [port for container in spec.containers for port in container.ports]
    return shared_view(
        uid=meta.uid, namespace=meta.namespace, name=meta.name,
        labels=_cached(11, labels, _labels) if labels else _EMPTY,
        annotations=_cached(12, annotations, _annotations) if annotations else _EMPTY,
        pod_ip=status.podIP, pod_ips=[ip.ip for ip in status.podIPs],
        host_ip=status.hostIP,
        conditions={condition.type: condition.status for condition in status.conditions},
        gates=[gate.conditionType for gate in spec.readinessGates],
        ports=_cached(6, ports, _ports) if ports else _NO_PORTS,
        host_network=spec.hostNetwork, phase=status.phase,
        deleting=meta.HasField("deletionTimestamp"),
        created=(_created(meta.creationTimestamp.seconds)
                 if meta.HasField("creationTimestamp") else ""))


def decode_page(data: bytes) -> wire.Page:
    """One page of a pod list, protobuf or (if the server answered so) JSON."""
    if not data.startswith(MAGIC):
        return podwire.decode_page(data)
    try:
        page = _PodList.FromString(_Unknown.FromString(memoryview(data)[len(MAGIC):]).raw)
    except message.DecodeError as exc:
        raise wire.Undecodable(f"a protobuf pod list page: {exc}") from None
    return _items(page), page.metadata.resourceVersion, getattr(page.metadata, "continue")


def _items(page: Any) -> list[wire.Item]:
    """A parsed ``PodList``'s pods, each as its item, its view read when the feed asks
    (``wire.Item.view``): not for a resync's copy of a pod held at the same version."""
    return [wire.Item(pod.metadata.uid, wire.number(pod.metadata.resourceVersion), pod, _view)
            for pod in page.items]


def _varint(data: memoryview | bytearray, at: int) -> tuple[int, int]:
    """A varint and where it ends; ``IndexError`` if the bytes end first."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _field(data: memoryview, number: int) -> memoryview | None:
    """The first length-delimited field ``number`` of a message, without copying;
    None at anything else than the length-delimited fields an envelope holds."""
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        if tag & 7 != 2:
            return None
        size, at = _varint(data, at)
        if tag >> 3 == number:
            return data[at:at + size]
        at += size
    return None


def page_token(data: bytes) -> str | None:
    """A protobuf page's continue token, read ahead of its pods (the list's
    ``ListMeta`` comes first, and each pod is stepped over by its length, unread).
    None when it cannot tell (JSON, or an odd body):
    the page is decoded first, as any other.
    """
    if not data.startswith(MAGIC):
        return None
    try:
        raw = _field(memoryview(data)[len(MAGIC):], 2)
        meta = _field(raw, 1) if raw is not None else None
        if meta is None:
            return None
        return str(getattr(_ListMeta.FromString(meta), "continue"))
    except (IndexError, message.DecodeError):
        return None


class _Short(Exception):
    """The bytes so far end inside a varint or a field: wait for more."""


class ListStream:
    """A whole pod list read as its bytes arrive.

    The API server answers a list from its watch cache in one body: 210 MB
    for 100,000 pods. Read whole, it would be held twice (bytes and parse);
    here only the bytes of pods not yet complete are kept. The envelope
    (``runtime.Unknown``) and the ``PodList`` are walked by their tags and
    lengths, and the pods complete in each chunk are parsed together: a
    run of a ``PodList``'s fields is a ``PodList`` itself, so upb parses
    it in one call (one call a pod cost twice the CPU). The list's
    ``ListMeta`` comes before its items (fields are written in the order of
    their numbers), so the resourceVersion is known before the first pod.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._at = 0
        self._stage = 0  # 0: the magic, 1: the envelope, 2: the PodList, 3: after it
        self._left = 0  # bytes of the PodList not read yet (stage 2)
        self.resource_version = ""
        self.token = ""

    def feed(self, chunk: bytes) -> list[wire.Item]:
        """The pods whose last byte is in ``chunk``; ``wire.Undecodable`` for a body that
        is not a protobuf pod list."""
        self._data += chunk
        items: list[wire.Item] = []
        try:
            while self._stage < 3:
                self._step(items)
        except (_Short, IndexError):  # IndexError: the bytes end inside a varint
            pass
        except (message.DecodeError, ValueError) as exc:
            raise wire.Undecodable(f"a protobuf pod list: {exc}") from None
        if self._at > 1 << 20:  # drop what was read, now and then (not at every pod)
            del self._data[:self._at]
            self._at = 0
        return items

    def finish(self) -> None:
        """The body ended: raise if the list was cut short."""
        if self._stage < 3:
            raise wire.Undecodable("a protobuf pod list ended before its last pod")

    def _field_at(self, at: int) -> tuple[int, int, int]:
        """The length-delimited field at ``at``: (number, start, end); its header in hand."""
        tag, at = _varint(self._data, at)
        if tag & 7 != 2:
            raise ValueError(f"field {tag >> 3} of wire type {tag & 7} where only "
                             "length-delimited fields are")
        size, at = _varint(self._data, at)
        return tag >> 3, at, at + size

    def _step(self, items: list[wire.Item]) -> None:
        if self._stage == 0:
            if len(self._data) < len(MAGIC):
                raise _Short
            if bytes(self._data[:len(MAGIC)]) != MAGIC:
                raise ValueError("not the API server's protobuf")
            self._at, self._stage = len(MAGIC), 1
        elif self._stage == 1:  # runtime.Unknown: step to its raw bytes (field 2)
            number, start, end = self._field_at(self._at)
            if number == 2:
                self._at, self._left, self._stage = start, end - start, 2
            elif end <= len(self._data):
                self._at = end
            else:
                raise _Short
        else:  # the PodList: every field wholly in hand, parsed at once (upb, not Python)
            start = at = self._at
            left = self._left
            try:
                while left > 0:
                    _, _, end = self._field_at(at)
                    if end > len(self._data):
                        break
                    left -= end - at
                    at = end
            except IndexError:  # the bytes end inside a field's header
                pass
            if left < 0:
                raise ValueError("a field runs past the end of the list")
            if at == start:
                if left == 0:
                    self._stage = 3
                    return
                raise _Short
            # A run of a PodList's fields is a PodList itself.
            page = _PodList.FromString(bytes(self._data[start:at]))
            self._at, self._left = at, left
            if page.HasField("metadata"):
                self.resource_version = page.metadata.resourceVersion
                self.token = getattr(page.metadata, "continue")
            items += _items(page)


CODEC = wire.Codec(decode_page, podwire.decode_event,
                   page_types=f"{MEDIA_TYPE}, application/json", peek=page_token,
                   page_size=2000, stream=ListStream)
"""Pods: list pages asked for as protobuf, 2,000 pods a page (the API server's cost
is mostly per request: 100,000 pods listed 2,000 at a time took half as long as
500 at a time, for 4 MB more held, docs/benchmarks.md), each page's token read
ahead; watch events read as JSON by ``podwire``."""
