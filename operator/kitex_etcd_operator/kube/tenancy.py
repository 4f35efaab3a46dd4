"""The admin's objects: ``KitexRegistrationPolicy`` and ``KitexEtcdRegistry`` bodies, parsed.

Both are cluster-scoped, so only cluster admins write them. As with
KitexServices, the CRD schema refuses what it can at admission, and this
parser checks again, naming the field of anything it cannot use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..durations import DIAL_TIMEOUT
from ..endpoints import InvalidEndpoint, check_endpoint, identity
from ..model import InvalidInstance, validate_prefix
from ..policy.rules import ANY, MAX_WEIGHT, SOURCES, AutoRegister, Rule
from .checks import (
    MAX_ENDPOINTS,
    as_object,
    check_bool,
    check_duration,
    check_int,
    check_service_port,
    secret_ref,
)
from .errors import SpecError
from .selectors import validate_selector

MAX_PATTERNS = 64


@dataclass(frozen=True, slots=True)
class RegistryDef:
    """A named etcd the admin offers to tenants; its Secrets live in the operator's namespace."""

    name: str
    endpoints: tuple[str, ...]
    dial_timeout: float | None = None
    auth_secret: str | None = None
    tls_secret: str | None = None

    @property
    def identity(self) -> str:
        return identity(self.endpoints)


def _strings(value: Any, at: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise SpecError(at, f"must be a list of at most {MAX_PATTERNS} strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > 512:
            raise SpecError(f"{at}[{index}]", f"{item!r} is not a non-empty string")
    return tuple(value)


def parse_policy(body: Mapping[str, Any]) -> Rule:
    """A KitexRegistrationPolicy as a ``Rule``; defaults are the restrictive ones."""
    meta = as_object(body.get("metadata"), "metadata")
    spec = as_object(body.get("spec"), "spec")
    if "namespaceSelector" not in spec:
        raise SpecError("spec.namespaceSelector", "is required ({} selects every namespace)")
    selector = as_object(spec["namespaceSelector"], "spec.namespaceSelector")
    if selector:
        validate_selector(selector, "spec.namespaceSelector")
    sources = _strings(spec.get("sources"), "spec.sources", SOURCES)
    for index, source in enumerate(sources):
        if source not in SOURCES:
            raise SpecError(f"spec.sources[{index}]", f"{source!r} is not one of "
                            + ", ".join(SOURCES))
    prefixes = None
    if spec.get("prefixes") is not None:
        prefixes = _strings(spec["prefixes"], "spec.prefixes", ())
        for index, prefix in enumerate(prefixes):
            try:
                validate_prefix(prefix, field=f"spec.prefixes[{index}]")
            except InvalidInstance as err:
                raise SpecError(err.field, err.message) from None
    return Rule(
        name=str(meta.get("name", "")),
        namespace_selector=selector,
        sources=frozenset(sources),
        service_names=_strings(spec.get("serviceNames"), "spec.serviceNames", (ANY,)),
        shared_service_names=_strings(spec.get("sharedServiceNames"),
                                      "spec.sharedServiceNames", ()),
        registries=_strings(spec.get("registries"), "spec.registries", ("default",)),
        prefixes=prefixes,
        max_weight=check_int(spec.get("maxWeight", MAX_WEIGHT), "spec.maxWeight", 0,
                             MAX_WEIGHT),
        allow_fixed_host=check_bool(spec.get("allowFixedHost", False), "spec.allowFixedHost"),
        allow_host_ip=check_bool(spec.get("allowHostIP", False), "spec.allowHostIP"),
        allow_custom_endpoints=check_bool(spec.get("allowCustomEndpoints", False),
                                          "spec.allowCustomEndpoints"),
        auto_register=_auto_register(spec.get("autoRegister")),
    )


def _auto_register(value: Any) -> AutoRegister | None:
    if value is None:
        return None
    auto = as_object(value, "spec.autoRegister")
    template = auto.get("nameTemplate", "{name}")
    if not isinstance(template, str) or not template or len(template) > 253:
        raise SpecError("spec.autoRegister.nameTemplate", f"{template!r} is not a name "
                        "template like {name} or {name}.{namespace}")
    port = auto.get("portName", "")
    if port != "":
        port = check_service_port(port if isinstance(port, str) else repr(port),
                                  "spec.autoRegister.portName")
    return AutoRegister(
        enabled=check_bool(auto.get("enabled", False), "spec.autoRegister.enabled"),
        name_template=template, port_name=port,
        publish_not_ready=check_bool(auto.get("publishNotReady", False),
                                     "spec.autoRegister.publishNotReady"))


def parse_registry(body: Mapping[str, Any]) -> RegistryDef:
    """A KitexEtcdRegistry; its name is what tenants write in ``spec.etcd.registry``."""
    meta = as_object(body.get("metadata"), "metadata")
    spec = as_object(body.get("spec"), "spec")
    name = str(meta.get("name", ""))
    if name == "default":
        raise SpecError("metadata.name", "'default' is the operator's own etcd (its flags); "
                                         "choose another name")
    raw = spec.get("endpoints")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ENDPOINTS:
        raise SpecError("spec.endpoints", f"must list 1 to {MAX_ENDPOINTS} endpoints")
    for index, endpoint in enumerate(raw):
        try:
            check_endpoint(endpoint if isinstance(endpoint, str) else repr(endpoint))
        except InvalidEndpoint as err:
            raise SpecError(f"spec.endpoints[{index}]", str(err)) from None
    dial = None
    if spec.get("dialTimeout") is not None:
        dial = check_duration(spec["dialTimeout"], "spec.dialTimeout", DIAL_TIMEOUT)
    return RegistryDef(name=name, endpoints=tuple(raw), dial_timeout=dial,
                       auth_secret=secret_ref(spec.get("authSecretRef"), "spec.authSecretRef"),
                       tls_secret=secret_ref(spec.get("tlsSecretRef"), "spec.tlsSecretRef"))
