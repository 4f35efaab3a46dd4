"""Services and EndpointSlices reduced to what registration needs, and the instances they make.

The third source beside annotated pods and KitexServices: a Service names
the service and the port, its EndpointSlices (``discovery.k8s.io/v1``) list
the endpoints with the readiness Kubernetes already computed. Reading those
instead of re-deriving readiness from pods is what the Service's own
clients (kube-proxy) do, and it covers slices that custom controllers
write for endpoints that are not pods at all.

Like ``PodView``, the views keep only a few fields: a cluster holds many
more endpoints than Services, so an endpoint is one small tuple.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, NamedTuple

from ..model import Instance, InvalidInstance
from ..policy.rules import AutoRegister
from ..retry import RetryConfig
from .annotations import check_known, common_settings
from .checks import check_service_port
from .errors import SpecError
from .names import ANNOTATION_PREFIX, POD_ONLY, Annotation, annotation_field
from .pods import _labels, _list, _mapping, _text
from .spec import ServiceSpec, field_path

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
DEFAULT_PORT_NAME = "kitex"
OPT_OUT = frozenset({"disabled", "false", "no", "0"})
SERVICE_ANNOTATIONS = frozenset(a.value for a in Annotation) - POD_ONLY

ServicePort = tuple[str, int, str]  # (name, port, protocol) of the Service, or of a slice


class Endpoint(NamedTuple):
    """One endpoint of a slice: its first address (the one consumers use) and state."""

    address: str
    ready: bool
    serving: bool  # serving and not terminating: what publish-not-ready may register


@dataclass(frozen=True, slots=True)
class ServiceView:
    """The registration-relevant part of one Service; built by ``service_view``."""

    uid: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]  # only those under ANNOTATION_PREFIX
    ports: tuple[ServicePort, ...]
    created: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class SliceView:
    """One EndpointSlice: whose Service it serves, its target ports and its endpoints."""

    uid: str
    namespace: str
    service: str  # the kubernetes.io/service-name label; "" for a slice of no Service
    address_type: str  # IPv4, IPv6 or FQDN
    ports: tuple[ServicePort, ...]  # name is the Service port's, port the target port
    endpoints: tuple[Endpoint, ...]
    managed_by: str = ""

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.service)


def _ports(items: Any, number_field: str) -> tuple[ServicePort, ...]:
    ports: list[ServicePort] = []
    for item in _list(items):
        item = _mapping(item)
        number = item.get(number_field)
        if isinstance(number, int) and not isinstance(number, bool):
            ports.append((_text(item.get("name")), number, _text(item.get("protocol")) or "TCP"))
    return tuple(ports)


def service_view(body: Mapping[str, Any]) -> ServiceView:
    """Read a Service body; never raises (see ``pod_view`` for why)."""
    meta = _mapping(body.get("metadata"))
    return ServiceView(
        uid=_text(meta.get("uid")),
        namespace=sys.intern(_text(meta.get("namespace"))),
        name=_text(meta.get("name")),
        labels=_labels(meta.get("labels")),
        annotations={k: v for k, v in _mapping(meta.get("annotations")).items()
                     if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX)
                     and isinstance(v, str)},
        ports=_ports(_mapping(body.get("spec")).get("ports"), "port"),
        created=_text(meta.get("creationTimestamp")),
    )


def _condition(conditions: Mapping[str, Any], name: str, absent: bool) -> bool:
    value = conditions.get(name)
    return value if isinstance(value, bool) else absent


def slice_view(body: Mapping[str, Any]) -> SliceView:
    """Read an EndpointSlice body; never raises.

    Absent conditions read as the API documents them: ``ready`` and
    ``serving`` unknown mean ready, ``terminating`` unknown means not.
    """
    meta = _mapping(body.get("metadata"))
    labels = _mapping(meta.get("labels"))
    endpoints: list[Endpoint] = []
    for item in _list(body.get("endpoints")):
        item = _mapping(item)
        addresses = [a for a in _list(item.get("addresses")) if isinstance(a, str) and a]
        if not addresses:
            continue
        conditions = _mapping(item.get("conditions"))
        ready = _condition(conditions, "ready", True)
        serving = _condition(conditions, "serving", ready)
        terminating = _condition(conditions, "terminating", False)
        # With publishNotReadyAddresses the EndpointSlice controller sets ready on every
        # endpoint, terminating ones included: serving and terminating say what the pod is.
        endpoints.append(Endpoint(sys.intern(addresses[0]), ready and serving and not terminating,
                                  serving and not terminating))
    return SliceView(
        uid=_text(meta.get("uid")),
        namespace=sys.intern(_text(meta.get("namespace"))),
        service=sys.intern(_text(labels.get(SERVICE_NAME_LABEL))),
        address_type=sys.intern(_text(body.get("addressType"))),
        ports=_ports(body.get("ports"), "port"),
        endpoints=tuple(endpoints),
        managed_by=sys.intern(_text(labels.get(MANAGED_BY_LABEL))),
    )


# --- which Services register, under which name and port ---------------------------

def opted_out(service: ServiceView) -> bool:
    value = service.annotations.get(Annotation.AUTO_REGISTER.value)
    return value is not None and value.strip().lower() in OPT_OUT


def name_from_template(template: str, service: ServiceView) -> str:
    """``{name}`` and ``{namespace}`` replaced; nothing else is syntax (no format())."""
    return template.replace("{name}", service.name).replace("{namespace}", service.namespace)


def service_spec(service: ServiceView, auto: AutoRegister, retry: RetryConfig
                 ) -> ServiceSpec | None:
    """The spec a Service asks for, ``None`` when it is not registered; ``SpecError`` when
    its annotations are malformed.

    Registered when its namespace opts in (``auto.enabled``) or when it carries
    ``kitex.cloudwego.io/service``; never when it opts out. ``port`` holds what
    selects the Service port ("" for the default rule), resolved per Service
    by ``service_port``.
    """
    annotations = service.annotations
    if opted_out(service):
        return None
    if Annotation.SERVICE.value not in annotations and not auto.enabled:
        return None
    items = tuple(sorted(annotations.items()))
    return _parse(items, name_from_template(auto.name_template, service), tuple(
        sorted(service.labels.items())), auto, retry)


@lru_cache(maxsize=1024)
def _parse(items: tuple[tuple[str, str], ...], default_name: str,
           labels: tuple[tuple[str, str], ...], auto: AutoRegister, retry: RetryConfig
           ) -> ServiceSpec:
    annotations = dict(items)
    check_known(annotations, SERVICE_ANNOTATIONS, "a Service")
    base = common_settings(annotations,
                           annotations.get(Annotation.SERVICE.value, default_name), retry)
    port: int | str = auto.port_name
    if (text := annotations.get(Annotation.PORT.value)) is not None:
        port = check_service_port(text.strip(), annotation_field(Annotation.PORT.value))
    publish = base.publish_not_ready
    if Annotation.PUBLISH_NOT_READY.value not in annotations:
        publish = auto.publish_not_ready
    # A Service's endpoints carry no labels: tags-from-labels reads the Service's own.
    by_label = dict(labels)
    tags = dict(base.tags) | {k: by_label[k] for k in base.tags_from_labels if k in by_label}
    return replace(base, port=port, tags=tuple(sorted(tags.items())), tags_from_labels=(),
                   publish_not_ready=publish)


def service_port(service: ServiceView, wanted: int | str, at: str) -> str:
    """The name of the Service port to register (slices name their ports after it).

    ``wanted`` is a port number or name; "" takes the port named ``kitex``,
    else the only port. Only TCP ports: Kitex and Hertz speak TCP.
    """
    tcp = [p for p in service.ports if p[2] == "TCP"]
    if isinstance(wanted, int):
        found = [p for p in tcp if p[1] == wanted]
    elif wanted:
        found = [p for p in tcp if p[0] == wanted]
    else:
        found = [p for p in tcp if p[0] == DEFAULT_PORT_NAME] or (tcp if len(tcp) == 1 else [])
    if found:
        return found[0][0]
    names = ", ".join(f"{p[0] or '(unnamed)'}:{p[1]}" for p in tcp) or "none"
    if wanted == "":
        raise SpecError(at, f"Service {service.name} has {len(tcp)} TCP ports and none named "
                        f"{DEFAULT_PORT_NAME!r}: name the one to register (ports: {names})")
    raise SpecError(at, f"Service {service.name} has no TCP port {wanted!r} (ports: {names})")


# --- slice -> instances --------------------------------------------------------------

def _family_ok(address: str, family: str) -> bool:
    if family == "Primary":  # a Service's slices: every family it has
        return True
    try:
        return ipaddress.ip_address(address).version == (4 if family == "IPv4" else 6)
    except ValueError:
        return False


def slice_instances(piece: SliceView, spec: ServiceSpec, port_name: str
                    ) -> tuple[list[Instance], list[str]]:
    """The instances one slice gives under ``spec``, and the endpoints it had to skip.

    The registered port is the slice's (the target port: clients dial the
    pods, not the ClusterIP). An endpoint counts when ready, or when serving
    and not terminating under publish-not-ready. FQDN slices hold no address
    a Kitex client can dial as an instance and give nothing. Tags too large for
    an entry are the spec's error (``SpecError`` naming them), not an endpoint's.
    """
    if piece.address_type not in ("IPv4", "IPv6"):
        return [], []
    port = next((p[1] for p in piece.ports if p[0] == port_name and p[2] == "TCP"), None)
    if port is None:
        return [], []
    instances: list[Instance] = []
    skipped: list[str] = []
    for endpoint in piece.endpoints:
        if not (endpoint.ready or (spec.publish_not_ready and endpoint.serving)):
            continue
        if not _family_ok(endpoint.address, spec.ip_family):
            continue
        try:
            instances.append(Instance.make(endpoint.address, port, network=spec.network,
                                           weight=spec.weight, tags=dict(spec.tags)))
        except InvalidInstance as err:
            if err.field == "tags":
                raise SpecError(field_path(spec.origin, "tags"), err.message) from None
            skipped.append(f"{endpoint.address}: {err.message}")
    return instances, skipped
