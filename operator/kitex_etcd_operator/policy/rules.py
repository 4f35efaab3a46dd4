"""Who may register what: the cluster admin's rules, as pure data and one decision.

A ``KitexRegistrationPolicy`` (cluster-scoped, so tenants cannot edit it)
selects namespaces by label and says what they may register: which sources,
which service names, which registries and prefixes, how much weight, and
whether they may publish fixed hosts, node IPs or name etcd endpoints of
their own. Rules add up like RBAC: a request is admitted if one rule that
selects its namespace allows all of it.

With no policy at all the operator runs in its single-team default (one
built-in rule that allows everything but custom endpoints); ownership of
service names applies in both modes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from ..labels import matches

ANNOTATIONS = "annotations"
KITEXSERVICE = "KitexService"
SERVICE = "Service"  # a Kubernetes Service registered automatically, from its EndpointSlices
SOURCES = (ANNOTATIONS, KITEXSERVICE, SERVICE)
_SOURCE_WORDS = {ANNOTATIONS: "annotated pods", KITEXSERVICE: "KitexServices",
                 SERVICE: "Services"}
DEFAULT_REGISTRY = "default"
ANY = "*"
MAX_WEIGHT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AutoRegister:
    """How a namespace's Services are registered without an annotation each.

    ``enabled`` comes from the namespace label or a policy's
    ``autoRegister.enabled``; the rest from the policy (or these defaults):
    the name template (``{name}``, ``{namespace}``), the Service port's
    name ("": the port named ``kitex``, else the only one), and whether
    serving-but-not-ready endpoints are published.
    """

    enabled: bool = False
    name_template: str = "{name}"
    port_name: int | str = ""  # a Service port name or number
    publish_not_ready: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy object, parsed; ``name`` is empty for the built-in single-team rule."""

    name: str
    namespace_selector: Mapping[str, object] = field(default_factory=dict)
    sources: frozenset[str] = frozenset(SOURCES)
    service_names: tuple[str, ...] = (ANY,)
    shared_service_names: tuple[str, ...] = ()
    registries: tuple[str, ...] = (DEFAULT_REGISTRY,)
    prefixes: tuple[str, ...] | None = None  # None: any prefix
    max_weight: int = MAX_WEIGHT
    allow_fixed_host: bool = False
    allow_host_ip: bool = False
    allow_custom_endpoints: bool = False
    auto_register: AutoRegister | None = None  # None: the policy says nothing about it

    @property
    def label(self) -> str:
        return f"KitexRegistrationPolicy {self.name}" if self.name else "the single-team default"


@dataclass(frozen=True, slots=True)
class Request:
    """What one KitexService, or one namespace's annotated pods, ask to register.

    ``registry`` is the registry's name, or ``None`` when the object names
    etcd endpoints of its own.
    """

    namespace: str
    source: str
    service: str
    registry: str | None
    prefix: str
    weight: int
    fixed_host: bool = False
    host_ip: bool = False


@dataclass(frozen=True, slots=True)
class Admitted:
    """Allowed. ``group`` is who owns the name with it: the namespace, or, for a
    name a policy shares, every namespace that policy selects together."""

    group: str
    rule: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Not allowed; ``field`` is the spec field at fault (``serviceName``, ``weight``...)."""

    field: str
    message: str


def namespace_group(namespace: str) -> str:
    return f"namespace/{namespace}"


def policy_group(policy: str) -> str:
    return f"policy/{policy}"


def describe_group(group: str) -> str:
    """For messages: "namespace team-a", or "the namespaces of policy blue-green"."""
    kind, _, name = group.partition("/")
    return f"namespace {name}" if kind == "namespace" else f"the namespaces of policy {name}"


@lru_cache(maxsize=4096)
def _glob(pattern: str, namespace: str) -> re.Pattern[str]:
    """``*`` matches anything, ``{namespace}`` the requester's namespace; nothing else is
    special (a service name may hold ``[`` or ``?``, which fnmatch would read as syntax)."""
    pattern = pattern.replace("{namespace}", "\0")
    parts = [re.escape(part).replace("\0", re.escape(namespace)) for part in pattern.split("*")]
    return re.compile(".*".join(parts), re.DOTALL)


def name_matches(patterns: Iterable[str], name: str, namespace: str) -> bool:
    return any(_glob(p, namespace).fullmatch(name) for p in patterns)


class PolicySet:
    """Every rule in force, and the namespaces' labels the selectors are applied to."""

    def __init__(self, rules: Iterable[Rule] = (), *, default: Rule | None = None,
                 enforcing: bool | None = None) -> None:
        self.rules = tuple(sorted(rules, key=lambda r: r.name))
        self.default = default or single_team_rule()
        self.enforcing = bool(self.rules) if enforcing is None else enforcing
        """Whether admin policies are in force (else the single-team default rule is)."""

    def selecting(self, labels: Mapping[str, str] | None) -> list[Rule]:
        """The rules that apply to a namespace; ``None`` labels: the namespace is unknown."""
        if not self.enforcing:
            return [self.default]
        if labels is None:
            return []
        return [r for r in self.rules if matches(r.namespace_selector, labels)]

    def auto_register(self, labels: Mapping[str, str] | None, labelled: bool) -> AutoRegister:
        """A namespace's auto-registration: the first selecting rule (by name) that says
        anything about it gives the settings; the namespace label alone enables it too."""
        said = [r.auto_register for r in self.selecting(labels) if r.auto_register is not None]
        if said:
            first = said[0]
            return first if first.enabled or not labelled else replace(first, enabled=True)
        return AutoRegister(enabled=labelled)

    def admit(self, request: Request, labels: Mapping[str, str] | None) -> Admitted | Refused:
        """Admitted by a rule that allows everything, else the first refusal.

        A rule that shares the name wins over one that grants it to the
        namespace alone: blue and green must stay one owner even when another
        policy happens to admit the name too. Otherwise the first rule by name.
        The refusal reported is that of the first rule selecting the
        namespace: the one an admin most likely meant for it.
        """
        rules = self.selecting(labels)
        if not rules:
            return Refused("namespace", f"no KitexRegistrationPolicy selects namespace "
                                        f"{request.namespace}: nothing of it is registered")
        verdicts = [check(rule, request) for rule in rules]
        admitted = [v for v in verdicts if isinstance(v, Admitted)]
        if admitted:
            shared = [v for v in admitted if v.group.startswith("policy/")]
            return (shared or admitted)[0]
        first = verdicts[0]
        assert isinstance(first, Refused)
        return first


def single_team_rule(*, allow_custom_endpoints: bool = False) -> Rule:
    """Everything but custom endpoints, for clusters where every namespace is one team's."""
    return Rule(name="", registries=(ANY,), prefixes=None, allow_fixed_host=True,
                allow_host_ip=True, allow_custom_endpoints=allow_custom_endpoints)


def check(rule: Rule, req: Request) -> Admitted | Refused:
    """One rule against one request: the first thing it does not allow, or its grant."""
    by = rule.label
    if req.source not in rule.sources:
        what = _SOURCE_WORDS.get(req.source, req.source)
        return Refused("source", f"{by} does not allow {what} in namespace {req.namespace} "
                                 f"(sources: {', '.join(sorted(rule.sources)) or 'none'})")
    shared = name_matches(rule.shared_service_names, req.service, req.namespace)
    if not shared and not name_matches(rule.service_names, req.service, req.namespace):
        return Refused("serviceName", f"service name {req.service!r} is not allowed in "
                       f"namespace {req.namespace} by {by} "
                       f"(serviceNames: {', '.join(rule.service_names) or 'none'})")
    if req.registry is None:
        if not rule.allow_custom_endpoints:
            return Refused("etcd.endpoints", f"{by} does not allow etcd endpoints of "
                           "your own (allowCustomEndpoints: false); name a registry the "
                           "cluster admin defined with spec.etcd.registry")
    elif ANY not in rule.registries and req.registry not in rule.registries:
        return Refused("etcd.registry", f"registry {req.registry!r} is not allowed by {by} "
                       f"(registries: {', '.join(rule.registries) or 'none'})")
    if rule.prefixes is not None and req.prefix not in rule.prefixes:
        return Refused("etcd.prefix", f"prefix {req.prefix!r} is not allowed by {by} "
                       f"(prefixes: {', '.join(rule.prefixes) or 'none'})")
    if req.weight > rule.max_weight:
        return Refused("weight", f"weight {req.weight} is above {rule.max_weight}, the "
                       f"largest {by} allows (maxWeight)")
    if req.fixed_host and not rule.allow_fixed_host:
        return Refused("address.host", f"{by} does not allow a fixed host "
                       "(allowFixedHost: false)")
    if req.host_ip and not rule.allow_host_ip:
        return Refused("address.source", f"{by} does not allow registering the node's IP "
                       "(allowHostIP: false)")
    group = policy_group(rule.name) if shared and rule.name else namespace_group(req.namespace)
    return Admitted(group, rule.name)
