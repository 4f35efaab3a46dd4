"""One service's registration settings, and the instance a pod becomes under them.

``ServiceSpec`` is the common form of a KitexService and of annotation mode,
so that both obey one set of rules; ``origin`` only decides how an error names
its field (``spec.port`` or ``metadata.annotations[kitex.cloudwego.io/port]``).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..durations import DIAL_TIMEOUT, OBSERVE_DELAY, RETRY_DELAY
from ..endpoints import InvalidEndpoint, check_endpoint
from ..model import (
    DEFAULT_NETWORK,
    DEFAULT_WEIGHT,
    Framework,
    Instance,
    InvalidInstance,
    validate_prefix,
)
from ..retry import RetryConfig
from .checks import (
    _SECRET_NAME,
    _SERVICE_NAME,
    MAX_ENDPOINTS,
    AddressSource,
    IPFamily,
    as_object,
    check_duration,
    check_int,
    check_port,
    check_service_name,
    check_service_port,
    secret_ref,
)
from .errors import SpecError as SpecError  # re-exported: callers catch it from here
from .fields import FIELDS, from_spec
from .names import Annotation, annotation_field
from .pods import PodView, is_eligible
from .selectors import validate_selector

Origin = Literal["KitexService", "annotations"]


@dataclass(frozen=True, slots=True)
class EtcdRef:
    """Where a service's entries go; ``None`` everywhere means the operator's own settings."""

    endpoints: tuple[str, ...] | None = None
    registry: str | None = None  # a KitexEtcdRegistry's name; None with endpoints: "default"
    prefix: str | None = None
    dial_timeout: float | None = None  # seconds
    auth_secret: str | None = None  # Secret in the spec's namespace: username, password
    tls_secret: str | None = None  # Secret in the spec's namespace: ca.crt, tls.crt, tls.key


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """How the pods of one service are registered."""

    service_name: str
    port: int | str  # the port registered: a number, or the name of a container port
    framework: Framework = Framework.KITEX
    network: str = DEFAULT_NETWORK
    weight: int = DEFAULT_WEIGHT
    tags: tuple[tuple[str, str], ...] = ()  # sorted by key
    tags_from_labels: tuple[str, ...] = ()  # label keys copied as tags (they override `tags`)
    etcd: EtcdRef = field(default_factory=EtcdRef)
    lease_ttl: int | None = None  # None: the operator's default
    retry: RetryConfig = field(default_factory=RetryConfig)
    publish_not_ready: bool = False
    address_source: AddressSource = "podIP"
    ip_family: IPFamily = "Primary"  # which of a dual-stack pod's podIPs is registered
    fixed_host: str | None = None  # KITEX_IP_TO_REGISTRY: registered instead of any pod IP
    fixed_port: int | None = None  # KITEX_PORT_TO_REGISTRY: registered instead of `port`
    origin: Origin = "KitexService"
    service_ref: str | None = None  # a KitexService's spec.serviceRef: that Service's slices
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        """Computed once: every pod event looks its spec up (admission, per namespace),
        and hashing 17 fields with their nested settings each time cost ~2.5 us a pod."""
        if not self._hash:
            object.__setattr__(self, "_hash", hash(tuple(
                getattr(self, name) for name in self.__slots__ if name != "_hash")) or 1)
        return self._hash


# --- field names ---------------------------------------------------------------

_ANNOTATION_OF = {"serviceName": Annotation.SERVICE, "port": Annotation.PORT} | {
    f.path: f.annotation for f in FIELDS if f.annotation is not None}


def field_path(origin: Origin, name: str) -> str:
    """A spec field's path as the user wrote it, for error messages."""
    if origin == "annotations" and name in _ANNOTATION_OF:
        return annotation_field(_ANNOTATION_OF[name].value)
    return f"spec.{name}"


def _etcd(value: Any) -> EtcdRef:
    etcd = as_object(value, "spec.etcd")
    endpoints: tuple[str, ...] | None = None
    if etcd.get("endpoints") is not None:
        raw = etcd["endpoints"]
        if not isinstance(raw, list) or not raw:
            raise SpecError("spec.etcd.endpoints", "must list at least one endpoint "
                            "(leave it out to use the operator's etcd)")
        if len(raw) > MAX_ENDPOINTS:
            raise SpecError("spec.etcd.endpoints", f"lists more than {MAX_ENDPOINTS} endpoints")
        for index, endpoint in enumerate(raw):
            if not isinstance(endpoint, str) or not endpoint or any(
                    c.isspace() or unicodedata.category(c) == "Cc" for c in endpoint):
                raise SpecError(f"spec.etcd.endpoints[{index}]",
                                f"{endpoint!r} is not an endpoint like etcd:2379")
            try:
                check_endpoint(endpoint)
            except InvalidEndpoint as err:
                raise SpecError(f"spec.etcd.endpoints[{index}]", str(err)) from None
        endpoints = tuple(raw)
    registry: str | None = None
    if etcd.get("registry") is not None:
        registry = etcd["registry"]
        if not isinstance(registry, str) or not _SECRET_NAME.fullmatch(registry):
            raise SpecError("spec.etcd.registry", f"{registry!r} is not a registry name")
        if endpoints is not None:
            raise SpecError("spec.etcd.registry", "cannot be set together with "
                                                  "spec.etcd.endpoints")
    prefix: str | None = None
    if etcd.get("prefix") is not None:
        if not isinstance(etcd["prefix"], str):
            raise SpecError("spec.etcd.prefix", "must be a string")
        try:
            prefix = validate_prefix(etcd["prefix"], field="spec.etcd.prefix")
        except InvalidInstance as err:
            raise SpecError(err.field, err.message) from None
    dial_timeout = None
    if etcd.get("dialTimeout") is not None:
        dial_timeout = check_duration(etcd["dialTimeout"], "spec.etcd.dialTimeout",
                                      DIAL_TIMEOUT)
    auth = secret_ref(etcd.get("authSecretRef"), "spec.etcd.authSecretRef")
    tls = secret_ref(etcd.get("tlsSecretRef"), "spec.etcd.tlsSecretRef")
    for at, ref in (("spec.etcd.authSecretRef", auth), ("spec.etcd.tlsSecretRef", tls)):
        # Without endpoints of its own a Secret would change how the operator talks
        # to an etcd the admin chose: a tenant CA would decide who gets its password.
        if ref is not None and endpoints is None:
            raise SpecError(at, "needs spec.etcd.endpoints: a registry's credentials are "
                                "the cluster admin's")
    if dial_timeout is not None and endpoints is None:
        raise SpecError("spec.etcd.dialTimeout", "needs spec.etcd.endpoints: a registry's "
                                                 "dial timeout is the cluster admin's")
    return EtcdRef(endpoints=endpoints, registry=registry, prefix=prefix,
                   dial_timeout=dial_timeout, auth_secret=auth, tls_secret=tls)


def _retry(value: Any) -> RetryConfig:
    retry = as_object(value, "spec.retry")
    default = RetryConfig()
    attempts = default.max_attempt_times
    if retry.get("maxAttemptTimes") is not None:
        attempts = check_int(retry["maxAttemptTimes"], "spec.retry.maxAttemptTimes", 0, 2**31 - 1)
    observe, delay = default.observe_delay, default.retry_delay
    if retry.get("observeDelay") is not None:
        observe = check_duration(retry["observeDelay"], "spec.retry.observeDelay",
                                 OBSERVE_DELAY)
    if retry.get("retryDelay") is not None:
        delay = check_duration(retry["retryDelay"], "spec.retry.retryDelay", RETRY_DELAY)
    return RetryConfig(max_attempt_times=attempts, observe_delay=observe, retry_delay=delay)


def parse_kitexservice(body: Mapping[str, Any]) -> ServiceSpec:
    """Read a KitexService; any problem raises ``SpecError`` naming the field.

    Defaults are applied here as well as in the CRD schema, so that an object
    written before a default existed, or a CRD installed without the schema,
    behaves the same. ``serviceName`` defaults to ``metadata.name``, which a
    schema default cannot express.
    """
    meta = as_object(body.get("metadata"), "metadata")
    spec = as_object(body.get("spec"), "spec")
    service_ref = _service_ref(spec)
    framework = from_spec(spec, "framework")
    name = spec.get("serviceName")
    if name is None:
        name = meta.get("name")
    service_name = check_service_name(name, framework, "spec.serviceName")
    fixed_port = from_spec(spec, "address.port")
    port: int | str
    if service_ref is not None:
        port = service_ref[1]
    elif spec.get("port") is not None:
        port = check_port(spec["port"], "spec.port")
    elif fixed_port is not None:
        port = fixed_port
    else:
        raise SpecError("spec.port", "is required (a number or a container port name), "
                                     "unless spec.address.port is set")
    host = from_spec(spec, "address.host")
    if host is not None and as_object(spec.get("address"), "spec.address").get("source") \
            is not None:
        raise SpecError("spec.address.host", "cannot be set together with spec.address.source")
    return ServiceSpec(
        service_name=service_name,
        port=port,
        framework=framework,
        network=from_spec(spec, "network"),
        weight=from_spec(spec, "weight"),
        tags=from_spec(spec, "tags"),
        tags_from_labels=from_spec(spec, "tagsFromLabels"),
        etcd=_etcd(spec.get("etcd")),
        lease_ttl=from_spec(spec, "leaseTTL"),
        retry=_retry(spec.get("retry")),
        publish_not_ready=from_spec(spec, "publishNotReadyAddresses"),
        address_source=address_source(from_spec(spec, "address.source")),
        ip_family=ip_family(from_spec(spec, "address.ipFamily")),
        fixed_host=host,
        fixed_port=fixed_port,
        origin="KitexService",
        service_ref=service_ref[0] if service_ref is not None else None,
    )


def address_source(value: str) -> AddressSource:
    return "hostIP" if value == "hostIP" else "podIP"


def ip_family(value: str) -> IPFamily:
    return "IPv4" if value == "IPv4" else "IPv6" if value == "IPv6" else "Primary"


def _service_ref(spec: Mapping[str, Any]) -> tuple[str, int | str] | None:
    """``spec.serviceRef`` (name, port), exclusive with ``spec.selector``; ``None`` if unset.

    A Service brings addresses and target ports of its own: the pod-side
    fields (``port``, ``address``) would contradict it, so they are refused.
    """
    if spec.get("serviceRef") is None:
        if "selector" not in spec:
            raise SpecError("spec.selector", "is required (or spec.serviceRef)")
        validate_selector(spec["selector"], "spec.selector")
        return None
    if spec.get("selector") is not None:
        raise SpecError("spec.serviceRef", "cannot be set together with spec.selector")
    for pod_only in ("port", "address"):
        if spec.get(pod_only) is not None:
            raise SpecError(f"spec.{pod_only}", "cannot be set with spec.serviceRef (the "
                            "Service's EndpointSlices give addresses and target ports; "
                            "choose the Service port with spec.serviceRef.port)")
    ref = as_object(spec["serviceRef"], "spec.serviceRef")
    name = ref.get("name")
    if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
        raise SpecError("spec.serviceRef.name", f"{name!r} is not a Service name")
    port: int | str = ""
    if ref.get("port") is not None:
        raw = ref["port"]
        port = (check_int(raw, "spec.serviceRef.port", 1, 65535) if not isinstance(raw, str)
                else check_service_port(raw, "spec.serviceRef.port"))
    return name, port


# --- pod -> instance -------------------------------------------------------------------

def _pick_ip(pod: PodView, spec: ServiceSpec) -> str:
    """The pod IP to register: the primary one, or the first of the chosen family.

    ``status.podIPs`` lists the cluster's primary family first, so "Primary"
    registers what ``status.podIP`` says. A dual-stack service that wants the
    other family names it; a pod without an address of that family is an
    error rather than silently registered under the wrong one.
    """
    if spec.ip_family == "Primary":
        return pod.pod_ips[0]
    version = 4 if spec.ip_family == "IPv4" else 6
    for ip in pod.pod_ips:
        try:
            if ipaddress.ip_address(ip).version == version:
                return ip
        except ValueError:
            continue
    raise SpecError(field_path(spec.origin, "address.ipFamily"),
                    f"pod has no {spec.ip_family} address (podIPs {', '.join(pod.pod_ips)})")


def _resolve_port(pod: PodView, spec: ServiceSpec) -> int:
    if spec.fixed_port is not None:
        return spec.fixed_port
    if isinstance(spec.port, int):
        return spec.port
    for name, number, _protocol in pod.container_ports:
        if name == spec.port:
            return number
    known = sorted({name for name, _, _ in pod.container_ports if name})
    raise SpecError(field_path(spec.origin, "port"),
                    f"pod has no container port named {spec.port!r} "
                    f"(named ports: {', '.join(known) or 'none'})")


def instance_for(pod: PodView, spec: ServiceSpec) -> Instance | None:
    """The instance a pod registers under a spec; ``None`` while it must not be registered.

    Not eligible (no IP yet, not ready, terminating) is ``None``, a normal
    state; a spec that cannot apply to this pod (a port name it lacks, no
    address of the wanted family) is a ``SpecError``, which the operator
    reports on the pod.
    """
    if not is_eligible(pod, spec.publish_not_ready):
        return None
    if spec.fixed_host is not None:
        host = spec.fixed_host
    elif spec.address_source == "hostIP":
        if pod.host_ip is None:
            return None
        host = pod.host_ip
    else:
        host = _pick_ip(pod, spec)
    port = _resolve_port(pod, spec)
    tags = dict(spec.tags)
    for key in spec.tags_from_labels:
        if key in pod.labels:
            tags[key] = pod.labels[key]
    try:
        instance = Instance.make(host, port, network=spec.network, weight=spec.weight,
                                 tags=tags)
    except InvalidInstance as err:
        if err.field == "host":
            at = ("status.hostIP" if spec.address_source == "hostIP" else "status.podIPs")
            raise SpecError(at, err.message) from None
        name = "address.port" if err.field == "port" and spec.fixed_port else err.field
        if err.field == "tags" and spec.tags_from_labels:
            name = "tagsFromLabels"
        raise SpecError(field_path(spec.origin, name), err.message) from None
    return instance
