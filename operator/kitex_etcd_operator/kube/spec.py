"""One service's registration settings, and the instance a pod becomes under them.

``ServiceSpec`` is the common form of a KitexService and of annotation mode,
so that both obey one set of rules; ``origin`` only decides how an error names
its field (``spec.port`` or ``metadata.annotations[kitex.cloudwego.io/port]``).
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..durations import DIAL_TIMEOUT, OBSERVE_DELAY, RETRY_DELAY, out_of_bounds, parse_duration
from ..endpoints import InvalidEndpoint, check_endpoint
from ..labels import LABEL_KEY as _LABEL_KEY
from ..model import (
    DEFAULT_NETWORK,
    DEFAULT_WEIGHT,
    Framework,
    Instance,
    InvalidInstance,
    join_host_port,
    validate_prefix,
    validate_service_name,
)
from ..retry import RetryConfig
from .errors import SpecError as SpecError  # re-exported: callers catch it from here
from .names import Annotation, annotation_field
from .pods import PodView, is_eligible
from .selectors import validate_selector

AddressSource = Literal["podIP", "hostIP"]
IPFamily = Literal["Primary", "IPv4", "IPv6"]
Origin = Literal["KitexService", "annotations"]

ADDRESS_SOURCES: tuple[AddressSource, ...] = ("podIP", "hostIP")
IP_FAMILIES: tuple[IPFamily, ...] = ("Primary", "IPv4", "IPv6")
MIN_LEASE_TTL = 5  # below this a keepalive hiccup drops the entries
MAX_LEASE_TTL = 86400  # above this entries outlive a dead operator for too long
MAX_WEIGHT = 2**31 - 1  # fits every Go int and any sum a balancer makes of a few
MAX_TAGS = 64
MAX_ENDPOINTS = 16
# One instance's value in etcd. A Kitex value with a few tags is about 100
# bytes; the bound keeps one object's tags from filling transactions that
# carry other pods' entries (etcd refuses requests above 1.5 MiB by default).
MAX_VALUE_BYTES = 4096
# Used with fullmatch, never match: Python's `$` also matches before a final
# newline, so "rpc\n" would pass where the CRD's (Go) patterns refuse it.
_PORT_NAME = re.compile(r"^(?!-)(?!.*--)[a-z0-9-]{1,15}(?<!-)$")
_NETWORK = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Service port name
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS-1035 label
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


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


# --- field names ---------------------------------------------------------------

_ANNOTATION_OF = {
    "serviceName": Annotation.SERVICE, "port": Annotation.PORT, "weight": Annotation.WEIGHT,
    "network": Annotation.NETWORK, "tags": Annotation.TAGS,
    "tagsFromLabels": Annotation.TAGS_FROM_LABELS, "framework": Annotation.FRAMEWORK,
    "publishNotReadyAddresses": Annotation.PUBLISH_NOT_READY,
    "address.source": Annotation.ADDRESS_SOURCE, "address.ipFamily": Annotation.IP_FAMILY,
    "address.host": Annotation.HOST, "address.port": Annotation.FIXED_PORT,
}


def field_path(origin: Origin, name: str) -> str:
    """A spec field's path as the user wrote it, for error messages."""
    if origin == "annotations" and name in _ANNOTATION_OF:
        return annotation_field(_ANNOTATION_OF[name].value)
    return f"spec.{name}"


# --- value checks shared by both origins -------------------------------------------

def check_int(value: Any, at: str, minimum: int, maximum: int) -> int:
    """An integer in range; booleans and floats are refused (YAML turns `yes` into True)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(at, f"{value!r} is not an integer")
    if not minimum <= value <= maximum:
        raise SpecError(at, f"{value} is not in {minimum}..{maximum}")
    return value


def check_port(value: Any, at: str) -> int | str:
    """A port number, or the IANA-style name of a container port, as a Service's targetPort."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return check_int(int(value), at, 1, 65535)
        if not _PORT_NAME.fullmatch(value) or not any(c.isalpha() for c in value):
            raise SpecError(at, f"{value!r} is neither a port number nor a container port name "
                                "(1-15 lowercase letters, digits and '-', with a letter)")
        return value
    return check_int(value, at, 1, 65535)


def check_network(value: Any, at: str) -> str:
    if not isinstance(value, str) or not _NETWORK.fullmatch(value):
        raise SpecError(at, f"{value!r} is not a network name like tcp")
    return value


def check_service_name(value: Any, framework: Framework, at: str) -> str:
    if not isinstance(value, str):
        raise SpecError(at, "must be a string")
    try:
        return validate_service_name(value, framework, field=at)
    except InvalidInstance as err:
        raise SpecError(at, err.message) from None


def check_framework(value: Any, at: str) -> Framework:
    try:
        return Framework(value)
    except ValueError:
        raise SpecError(at, f"{value!r} is not one of kitex, hertz") from None


def check_tags(value: Any, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError(at, "must be a map of strings to strings")
    if len(value) > MAX_TAGS:
        raise SpecError(at, f"has {len(value)} tags, more than {MAX_TAGS}")
    for key, tag in value.items():
        if not isinstance(key, str) or not key:
            raise SpecError(at, f"tag key {key!r} must be a non-empty string")
        if not isinstance(tag, str):
            raise SpecError(f"{at}[{key}]", f"{tag!r} is not a string")
    return tuple(sorted(value.items()))


def check_label_keys(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(at, "must be a list of label keys")
    for index, key in enumerate(value):
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise SpecError(f"{at}[{index}]", f"{key!r} is not a label key")
    if len(value) > MAX_TAGS:
        raise SpecError(at, f"has {len(value)} keys, more than {MAX_TAGS}")
    return tuple(dict.fromkeys(value))


def check_choice(value: Any, choices: tuple[str, ...], at: str) -> str:
    if value not in choices:
        raise SpecError(at, f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def check_host(value: Any, at: str) -> str:
    """An IP or a DNS name a client can dial, as KITEX_IP_TO_REGISTRY takes."""
    if not isinstance(value, str):
        raise SpecError(at, "must be a string")
    try:
        join_host_port(value, 1)
    except InvalidInstance as err:
        raise SpecError(at, err.message) from None
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise SpecError(at, f"{value!r} is not an IP address or DNS name")
    return value


def check_duration(value: Any, at: str, bounds: tuple[float, float]) -> float:
    """A Go duration ("30s", "1m30s", "500ms") or a number of seconds, within bounds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(at, f"{value!r} is not a duration like 30s")
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError) as err:
        raise SpecError(at, str(err)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(at, f"{value!r} must be a positive duration")
    why = out_of_bounds(seconds, bounds)
    if why:
        raise SpecError(at, f"{value!r} {why}")
    return seconds


def check_bool(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(at, f"{value!r} is not true or false")
    return value


# --- KitexService ------------------------------------------------------------------

def as_object(value: Any, at: str) -> Mapping[str, Any]:
    """A JSON object, or ``{}`` for absent; anything else is an error naming ``at``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(at, "must be an object")
    return value


def secret_ref(value: Any, at: str) -> str | None:
    if value is None:
        return None
    ref = as_object(value, at)
    name = ref.get("name")
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise SpecError(f"{at}.name", f"{name!r} is not a Secret name")
    return name


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
    framework = check_framework(spec.get("framework", Framework.KITEX.value), "spec.framework")
    name = spec.get("serviceName")
    if name is None:
        name = meta.get("name")
    service_name = check_service_name(name, framework, "spec.serviceName")
    address = as_object(spec.get("address"), "spec.address")
    fixed_port = None
    if address.get("port") is not None:
        fixed_port = check_int(address["port"], "spec.address.port", 1, 65535)
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
    if address.get("host") is not None and address.get("source") is not None:
        raise SpecError("spec.address.host", "cannot be set together with spec.address.source")
    source: AddressSource = "hostIP" if check_choice(
        address.get("source", "podIP"), ADDRESS_SOURCES, "spec.address.source") == "hostIP" \
        else "podIP"
    family = check_choice(address.get("ipFamily", "Primary"), IP_FAMILIES,
                          "spec.address.ipFamily")
    lease_ttl = None
    if spec.get("leaseTTL") is not None:
        lease_ttl = check_int(spec["leaseTTL"], "spec.leaseTTL", MIN_LEASE_TTL, MAX_LEASE_TTL)
    return ServiceSpec(
        service_name=service_name,
        port=port,
        framework=framework,
        network=check_network(spec.get("network", DEFAULT_NETWORK), "spec.network"),
        weight=check_int(spec.get("weight", DEFAULT_WEIGHT), "spec.weight", 0, MAX_WEIGHT),
        tags=check_tags(spec.get("tags") or {}, "spec.tags"),
        tags_from_labels=check_label_keys(spec.get("tagsFromLabels") or [],
                                          "spec.tagsFromLabels"),
        etcd=_etcd(spec.get("etcd")),
        lease_ttl=lease_ttl,
        retry=_retry(spec.get("retry")),
        publish_not_ready=check_bool(spec.get("publishNotReadyAddresses", False),
                                     "spec.publishNotReadyAddresses"),
        address_source=source,
        ip_family=_family(family),
        fixed_host=(check_host(address["host"], "spec.address.host")
                    if address.get("host") is not None else None),
        fixed_port=fixed_port,
        origin="KitexService",
        service_ref=service_ref[0] if service_ref is not None else None,
    )


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


def check_service_port(value: str, at: str) -> int | str:
    """A Service port's number or name (a DNS label, up to 63 characters)."""
    if value.isascii() and value.isdigit():
        return check_int(int(value), at, 1, 65535)
    if not _DNS_LABEL.fullmatch(value):
        raise SpecError(at, f"{value!r} is neither a port number nor a Service port name")
    return value


def _family(value: str) -> IPFamily:
    return "IPv4" if value == "IPv4" else "IPv6" if value == "IPv6" else "Primary"


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
        raise SpecError(field_path(spec.origin, name), err.message) from None
    size = len(instance.encode())
    if size > MAX_VALUE_BYTES:
        at = "tagsFromLabels" if spec.tags_from_labels else "tags"
        raise SpecError(field_path(spec.origin, at), f"the entry would be {size} bytes, more "
                        f"than {MAX_VALUE_BYTES}: use fewer or shorter tags")
    return instance
