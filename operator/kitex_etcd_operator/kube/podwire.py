"""Pod lists and watch events decoded straight into the few fields registration reads.

A pod as the API server sends it is 3 to 4 KB of JSON, most of it
``managedFields``, volumes and container details nobody here reads. Parsed
with ``json`` into dicts, every byte of it became Python objects, only to be
reduced to a ``PodView`` and dropped: 38 % of the operator's time in a
10,000-pod initial sync. ``msgspec`` decodes into the typed structs below and
skips every field they do not name without building anything for it (see
docs/dependencies.md for the measurement against ``orjson``).

The structs are strict where ``pod_view`` is lenient: a field of an unexpected
type fails the whole page or event. The API server validates pods, so that
never happens with a real one; if it does, that page or event alone is read
again with ``json`` and ``pod_view``, which read odd fields as absent.

Every struct is ``gc=False``: a decoded page is a tree, never a cycle, and
500 pods of structs no longer count toward the collector's next pass (a
third of the collections of an initial sync went to them).
"""

from __future__ import annotations

import msgspec

from . import wire
from .pods import ContainerPort, PodView, assemble, pod_view
from .wire import json_codec


class _Meta(msgspec.Struct, gc=False):
    uid: str = ""
    namespace: str = ""
    name: str = ""
    resourceVersion: str = ""  # the API server's own (camelCase) names
    creationTimestamp: str = ""
    deletionTimestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class _Port(msgspec.Struct, gc=False):
    containerPort: int = 0
    name: str = ""
    protocol: str = ""


class _Container(msgspec.Struct, gc=False):
    ports: list[_Port] | None = None


class _Gate(msgspec.Struct, gc=False):
    conditionType: str = ""


class _Spec(msgspec.Struct, gc=False):
    containers: list[_Container] | None = None
    readinessGates: list[_Gate] | None = None
    hostNetwork: bool = False


class _IP(msgspec.Struct, gc=False):
    ip: str = ""


class _Condition(msgspec.Struct, gc=False):
    type: str = ""
    status: str = ""


class _Status(msgspec.Struct, gc=False):
    podIP: str = ""
    podIPs: list[_IP] | None = None
    hostIP: str = ""
    phase: str = ""
    conditions: list[_Condition] | None = None


class Pod(msgspec.Struct, gc=False):
    """The part of a pod body that ``assemble`` reads; the rest is skipped unparsed."""

    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)
    status: _Status = msgspec.field(default_factory=_Status)

    def view(self) -> PodView:
        meta, spec, status = self.metadata, self.spec, self.status
        return assemble(
            uid=meta.uid, namespace=meta.namespace, name=meta.name,
            labels=(meta.labels or {}).items(), annotations=(meta.annotations or {}).items(),
            pod_ip=status.podIP, pod_ips=(item.ip for item in status.podIPs or ()),
            host_ip=status.hostIP,
            conditions={c.type: c.status for c in status.conditions or ()},
            gates=(g.conditionType for g in spec.readinessGates or ()),
            ports=_ports(spec), host_network=spec.hostNetwork, phase=status.phase,
            deleting=meta.deletionTimestamp is not None, created=meta.creationTimestamp)


def _ports(spec: _Spec) -> list[ContainerPort]:
    return [(port.name, port.containerPort, port.protocol or "TCP")
            for container in spec.containers or () for port in container.ports or ()
            if port.containerPort]


class _ListMeta(msgspec.Struct, gc=False):
    resourceVersion: str = ""
    # "continue" is a Python keyword: renamed on the wire.
    continue_: str = msgspec.field(default="", name="continue")


class PodList(msgspec.Struct, gc=False):
    """One page of a pod list."""

    items: list[Pod] | None = None
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


class WatchEvent(msgspec.Struct, gc=False):
    """One line of a watch stream; ``object`` is decoded once ``type`` says what it is."""

    type: str = ""
    object: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


_lists = msgspec.json.Decoder(PodList)
_events = msgspec.json.Decoder(WatchEvent)
_pods = msgspec.json.Decoder(Pod)
_lenient = json_codec(pod_view)  # bodies of unexpected types: read as pod_view reads them


def decode_page(data: bytes) -> wire.Page:
    """One page of a pod list: each pod's view, the list's resourceVersion, its token."""
    try:
        page = _lists.decode(data)
    except msgspec.DecodeError:  # a field of an unexpected type: read the page leniently
        return _lenient.page(data)
    return ([_item(pod) for pod in page.items or ()],
            page.metadata.resourceVersion, page.metadata.continue_)


def decode_event(line: bytes) -> wire.Event:
    """One line of a pod watch stream."""
    try:
        event = _events.decode(line)  # type and raw object: no field here can mistype
        if event.type == "ERROR":
            return _lenient.event(line)
        pod = _pods.decode(event.object)
    except msgspec.DecodeError:
        return _lenient.event(line)
    return wire.Event(event.type, _item(pod), pod.metadata.resourceVersion)


def _item(pod: Pod) -> wire.Item:
    return wire.Item(pod.metadata.uid, wire.number(pod.metadata.resourceVersion), pod.view())


CODEC = wire.Codec(decode_page, decode_event)
