"""What Kubernetes wants: desired entries per binding and who claims each, event by event.

Pods and KitexServices arrive one event at a time; each event recomputes only
what that object contributes, and marks the touched keys dirty, so that a pod
turning not ready costs O(1) whatever the size of its service. Every
contribution passes the admin's policy first (``policy.rules``), and is kept
apart by namespace: which namespaces' values are written is decided per
binding by ownership (``policy.ownership``), never by merging. Pure state,
no I/O: the controller drains the dirty keys and writes them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

from .endpoints import identity
from .kube import PodView, ServiceSpec, SpecError, instance_for, matches, spec_from_annotations
from .kube.errors import unexpected
from .kube.names import AUTO_REGISTER_LABEL, AUTO_REGISTER_ON
from .kube.service_index import ServiceIndex
from .kube.services import ServiceView, SliceView, service_port, service_spec, slice_instances
from .kube.spec import field_path
from .kube.tenancy import RegistryDef
from .model import DEFAULT_LEASE_TTL, DEFAULT_PREFIX, HERTZ_PREFIX, Framework, instance_key
from .plan import Binding
from .policy import (
    ANNOTATIONS,
    DEFAULT_REGISTRY,
    KITEXSERVICE,
    SERVICE,
    Admitted,
    Claim,
    PolicySet,
    Request,
)
from .ranges import RangeIndex, range_limit
from .retry import RetryConfig
from .tenant_errors import PodErrors, Versioned

SpecKey = tuple[str, str]  # (namespace, name) of a KitexService
DEFAULT_SCOPE = "default"  # the scope id of the operator's own etcd (its flags)


class PolicyError(SpecError):
    """The admin's policy refuses what the object asks; ``reason`` tells it from a typo."""

    reason = "RegistrationRefused"


class SourceConflict(SpecError):
    """A Service's automatic registration yields to an explicit one of the same name."""

    reason = "SourceConflict"


@dataclass(frozen=True, slots=True)
class EtcdAccess:
    """Which etcd a binding writes to, and who supplies the credentials to reach it.

    ``scope`` names the physical etcd (``Binding.etcd``): the default
    registry is ``default``, others are their canonical endpoints, so that
    two specs reaching one etcd share one connection and one set of
    ownership records. Secrets are named, not read: ``connections`` reads
    them into an ``EtcdConfig``, and reconnects when they change.
    """

    scope: str = DEFAULT_SCOPE
    registry: str | None = DEFAULT_REGISTRY  # an admin registry; None: the tenant's own endpoints
    endpoints: tuple[str, ...] = ()  # the tenant's own endpoints
    namespace: str = ""  # where the tenant's Secrets are read
    auth_secret: str | None = None
    tls_secret: str | None = None
    dial_timeout: float | None = None

    @property
    def id(self) -> str:
        return self.scope

    @property
    def credentials(self) -> tuple[str | None, ...]:
        """Who supplies the credentials: every connection to one etcd must agree on it."""
        if self.registry is not None:
            return ("registry", self.registry)
        secrets = self.auth_secret or self.tls_secret
        return ("endpoints", self.namespace if secrets else "", self.auth_secret,
                self.tls_secret)

    def describe(self) -> str:
        if self.registry is not None:
            return f"registry {self.registry}"
        return f"etcd {','.join(self.endpoints)} of namespace {self.namespace}"


@dataclass(frozen=True, slots=True)
class BindingConfig:
    """How one binding is kept: lease TTL and retry rhythm, and where it writes."""

    access: EtcdAccess
    ttl: int
    retry: RetryConfig


@dataclass(frozen=True, slots=True)
class Source:
    """Who asked for a binding: a KitexService, pod annotations in a namespace, a Service."""

    kind: str  # KITEXSERVICE, ANNOTATIONS or SERVICE
    namespace: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Contribution:
    binding: Binding
    key: str
    value: bytes
    source: Source


@dataclass(frozen=True, slots=True)
class _Admission:
    binding: Binding
    config: BindingConfig
    group: str


@dataclass(slots=True)
class _SpecClaim:
    admission: _Admission
    created: str


@dataclass(frozen=True, slots=True)
class _ServiceBound:
    """One thing a Service's slices are registered as: its own auto-registration, or a
    KitexService's ``serviceRef``; ``port`` is the Service port's name slices carry."""

    source: Source
    spec: ServiceSpec
    admission: _Admission
    port: str


@dataclass(slots=True)
class _PodClaims:
    """A namespace's annotated pods claiming one binding; the oldest one dates the claim."""

    admission: _Admission
    created: dict[str, str] = field(default_factory=dict)  # uid -> creationTimestamp

    @property
    def since(self) -> str:
        return min(self.created.values(), default="")


@dataclass(slots=True)
class Defaults:
    """The operator's own settings, used where a spec or annotation says nothing."""

    prefix: str = DEFAULT_PREFIX
    lease_ttl: int = DEFAULT_LEASE_TTL
    retry: RetryConfig = field(default_factory=RetryConfig)
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)  # the default registry's


V = TypeVar("V")


class _Indexed(defaultdict[Binding, V]):
    """A defaultdict that adds every binding it creates an entry for to a ``RangeIndex``."""

    def __init__(self, factory: Callable[[], V], index: RangeIndex) -> None:
        super().__init__(factory)
        self._index = index

    def __missing__(self, key: Binding) -> V:
        self._index.add(key)
        return super().__missing__(key)


class DesiredState:
    """Pods and specs in, desired values and claims per binding out, with dirty tracking."""

    def __init__(self, defaults: Defaults | None = None, *,
                 policies: PolicySet | None = None) -> None:
        self.defaults = defaults or Defaults()
        self.policies = policies or PolicySet()
        self.registries: dict[str, RegistryDef] = {}
        self.namespace_labels: dict[str, Mapping[str, str]] | None = None  # None: not listed
        self.pods: dict[str, PodView] = {}
        self.specs: dict[SpecKey, ServiceSpec] = {}
        self.selectors: dict[SpecKey, Mapping[str, object]] = {}
        self.spec_created: dict[SpecKey, str] = {}
        self.spec_errors: dict[SpecKey, SpecError] = {}  # valid specs the policy refuses
        self.pod_errors: PodErrors[Source, SpecError] = PodErrors()
        self.dirty: dict[Binding, set[str]] = defaultdict(set)
        self._admitted: dict[SpecKey, _Admission] = {}
        self._by_namespace: dict[str, set[str]] = defaultdict(set)
        # uid -> what it contributes: one _Contribution (nearly every pod), or a tuple
        self._contrib: dict[str, _Contribution | tuple[_Contribution, ...]] = {}
        self._sources: dict[tuple[str, str, str], Source] = {}
        # binding -> namespace -> key -> the pods claiming it and their values (Claims)
        # A binding is present while one of these four holds something for it; each
        # adds a binding it has not seen to the range index (``nesting``), and
        # ``_release`` takes it out of all of them once it holds nothing.
        self._ranges = RangeIndex()
        self._values: dict[Binding, dict[str, dict[str, Claims]]] = \
            _Indexed(lambda: defaultdict(dict), self._ranges)
        self._spec_claims: dict[Binding, dict[SpecKey, _SpecClaim]] = \
            _Indexed(dict, self._ranges)
        self._pod_claims: dict[Binding, dict[str, _PodClaims]] = _Indexed(dict, self._ranges)
        self._pod_binding: dict[str, Binding] = {}  # uid -> the binding its annotations claim
        self._source_keys: dict[Source, Counter[tuple[Binding, str]]] = defaultdict(Counter)
        self._annotation_admissions: dict[tuple[str, ServiceSpec], _Admission | SpecError] = {}
        self.index = ServiceIndex()
        # Services not (fully) registered
        self.service_errors: Versioned[SpecKey, SpecError] = Versioned()
        self._service_claims: dict[Binding, dict[SpecKey, _SpecClaim]] = \
            _Indexed(dict, self._ranges)
        self._service_binding: dict[SpecKey, Binding] = {}
        self._service_bound: dict[SpecKey, list[_ServiceBound]] = {}
        self._claims_moved: set[str] = set()  # namespaces whose pod claims came or went

    # --- events ------------------------------------------------------------

    def upsert_pod(self, pod: PodView) -> None:
        self.pods[pod.uid] = pod
        self._by_namespace[pod.namespace].add(pod.uid)
        self._recompute_pod(pod.uid)
        self._services_after_claims()

    def remove_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is not None:
            self._by_namespace[pod.namespace].discard(uid)
        self.pod_errors.put(uid, None)
        self._set_pod_claim(uid, None, "")
        self._set_contributions(uid, [])
        self._services_after_claims()

    def upsert_service(self, service: ServiceView) -> None:
        self.index.put_service(service)
        self._recompute_service(service.key)

    def remove_service(self, key: SpecKey) -> None:
        self.index.drop_service(key)
        self._recompute_service(key)

    def upsert_slice(self, piece: SliceView) -> None:
        self.index.put_slice(piece)
        error = self._recompute_slice(piece.uid)
        if error is not None:  # cleared when its Service is recomputed, with the others
            self.service_errors.put(piece.service_key, error)

    def remove_slice(self, uid: str) -> None:
        self.index.drop_slice(uid)
        self._set_contributions(uid, [])

    def upsert_spec(self, key: SpecKey, spec: ServiceSpec, selector: Mapping[str, object],
                    created: str = "") -> None:
        self._drop_spec_claim(key)
        self.specs[key] = spec
        self.selectors[key] = selector
        self.spec_created[key] = created
        self._admit_spec(key)
        self._recompute_namespace(key[0])

    def remove_spec(self, key: SpecKey) -> None:
        self._drop_spec_claim(key)
        self.specs.pop(key, None)
        self.selectors.pop(key, None)
        self.spec_created.pop(key, None)
        self.spec_errors.pop(key, None)
        self._recompute_namespace(key[0])

    def set_tenancy(self, policies: PolicySet | None = None,
                    registries: Mapping[str, RegistryDef] | None = None) -> None:
        """New admin policies or registries: every admission is decided again."""
        if policies is not None:
            self.policies = policies
        if registries is not None:
            self.registries = dict(registries)
        self._readmit(None)

    def set_namespaces(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        """The complete list of namespaces and their labels (policy selectors read them)."""
        self.namespace_labels = dict(labels)
        self._readmit(None)

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        """One namespace changed its labels (``None``: deleted)."""
        if self.namespace_labels is None:
            self.namespace_labels = {}
        if labels is None:
            self.namespace_labels.pop(name, None)
        elif self.namespace_labels.get(name) == labels:
            return
        else:
            self.namespace_labels[name] = dict(labels)
        self._readmit(name)

    # --- derived -----------------------------------------------------------

    def bindings(self) -> set[Binding]:
        return ({b for b, c in self._spec_claims.items() if c}
                | {b for b, c in self._pod_claims.items() if c}
                | {b for b, c in self._service_claims.items() if c}
                | {b for b, by_ns in self._values.items() if any(by_ns.values())})

    def present(self, binding: Binding) -> bool:
        """Whether ``binding`` is among ``bindings()``, without building them all."""
        return self.claimed(binding) or any(self._values.get(binding, {}).values())

    def nesting(self, binding: Binding) -> list[Binding]:
        """The other bindings in ``binding``'s etcd whose range lies inside, around or
        at its own: ``[b for b in bindings() if b != binding and b.etcd == binding.etcd
        and ranges_nest(b.range, binding.range)]``, in O(depth of the range)."""
        return [b for b in self._ranges.nesting(binding) if self.present(b)]

    def claims(self, binding: Binding) -> list[Claim]:
        """Each owner group's claim, dated by its oldest claiming object."""
        since: dict[str, str] = {}
        for spec_claim in [*self._spec_claims.get(binding, {}).values(),
                           *self._service_claims.get(binding, {}).values()]:
            group = spec_claim.admission.group
            since[group] = min(since.get(group, spec_claim.created), spec_claim.created)
        for pod_claims in self._pod_claims.get(binding, {}).values():
            group, created = pod_claims.admission.group, pod_claims.since
            since[group] = min(since.get(group, created), created)
        return [Claim(created, group) for group, created in since.items()]

    def claimed(self, binding: Binding) -> bool:
        return bool(self._spec_claims.get(binding) or self._pod_claims.get(binding)
                    or self._service_claims.get(binding))

    def namespaces_of(self, binding: Binding, group: str | None) -> set[str]:
        """The namespaces whose instances the owner ``group`` writes to ``binding``."""
        if group is None:
            return set()
        found = {key[0] for key, c in [*self._spec_claims.get(binding, {}).items(),
                                       *self._service_claims.get(binding, {}).items()]
                 if c.admission.group == group}
        found |= {ns for ns, c in self._pod_claims.get(binding, {}).items()
                  if c.admission.group == group}
        return found

    def sources(self, binding: Binding) -> dict[Source, str]:
        """Every object claiming ``binding``, with its owner group."""
        found = {Source(KITEXSERVICE, *key): c.admission.group
                 for key, c in self._spec_claims.get(binding, {}).items()}
        found.update({Source(ANNOTATIONS, ns): c.admission.group
                      for ns, c in self._pod_claims.get(binding, {}).items()})
        found.update({Source(SERVICE, *key): c.admission.group
                      for key, c in self._service_claims.get(binding, {}).items()})
        return found

    def annotated_pods(self, binding: Binding, namespace: str) -> list[str]:
        claims = self._pod_claims.get(binding, {}).get(namespace)
        return sorted(claims.created) if claims else []

    def config_for(self, binding: Binding, group: str | None) -> BindingConfig | None:
        """The settings of the owner's oldest KitexService, else those of annotation mode.

        Only the owner's objects decide a binding's lease and retry, and only
        while they exist: another namespace's KitexService cannot change them,
        and a deleted one leaves nothing behind.
        """
        specs = sorted((c.created, key, c.admission.config)
                       for key, c in self._spec_claims.get(binding, {}).items()
                       if group is None or c.admission.group == group)
        if specs:
            return specs[0][2]
        pods = sorted((c.since, ns, c.admission.config)
                      for ns, c in self._pod_claims.get(binding, {}).items()
                      if group is None or c.admission.group == group)
        pods += sorted((c.created, key[0], c.admission.config)
                       for key, c in self._service_claims.get(binding, {}).items()
                       if group is None or c.admission.group == group)
        return pods[0][2] if pods else None

    def view(self, binding: Binding, namespaces: Collection[str]) -> Mapping[str, bytes]:
        """The desired values of ``namespaces`` as a live read-only mapping: no copy per sync.

        An incremental sync looks up a handful of keys; copying 10,000
        values to answer that would cost more than the write itself.
        """
        by_ns = self._values.get(binding, {})
        return _ClaimsView([by_ns[ns] for ns in sorted(namespaces) if ns in by_ns])

    def values(self, binding: Binding, namespaces: Collection[str] | None = None
               ) -> dict[str, bytes]:
        """The desired value of each key; if two pods claim one address, the first uid wins."""
        if namespaces is None:
            namespaces = list(self._values.get(binding, {}))
        return dict(self.view(binding, namespaces).items())

    def instance_count(self, binding: Binding, namespaces: Collection[str] | None = None) -> int:
        by_ns = self._values.get(binding, {})
        if namespaces is None:
            return sum(len(keys) for keys in by_ns.values())
        return len(self.view(binding, namespaces))

    def source_keys(self, source: Source) -> list[tuple[Binding, str]]:
        """The keys one KitexService's pods want: its status shows these, no one else's."""
        return sorted(self._source_keys.get(source, ()))

    def take_dirty(self) -> dict[Binding, set[str]]:
        dirty, self.dirty = self.dirty, defaultdict(set)
        return dirty

    def binding_of(self, spec: ServiceSpec, namespace: str) -> tuple[Binding, BindingConfig]:
        """Where a spec's instances go, and how they are kept there; ``SpecError`` if the
        spec names a registry that does not exist or endpoints that alias a registry."""
        access = self._access_of(spec, namespace)
        prefix = spec.etcd.prefix or (HERTZ_PREFIX if spec.framework is Framework.HERTZ
                                      else self.defaults.prefix)
        limit = range_limit(prefix, spec.service_name, tenant_prefix=bool(spec.etcd.prefix))
        if limit is not None:
            raise SpecError(field_path(spec.origin, limit[0]), limit[1])
        binding = Binding(access.scope, prefix, spec.service_name)
        return binding, BindingConfig(access, spec.lease_ttl or self.defaults.lease_ttl, spec.retry)

    # --- admission -----------------------------------------------------------

    def _access_of(self, spec: ServiceSpec, namespace: str) -> EtcdAccess:
        etcd = spec.etcd
        if etcd.endpoints is not None:
            scope = identity(etcd.endpoints)
            for name, (_, known) in self._scopes().items():
                if known == scope:
                    raise SpecError(field_path(spec.origin, "etcd.endpoints"),
                                    f"these endpoints reach registry {name}: name it with "
                                    "spec.etcd.registry instead")
            return EtcdAccess(scope=scope, registry=None, endpoints=etcd.endpoints,
                              namespace=namespace, auth_secret=etcd.auth_secret,
                              tls_secret=etcd.tls_secret, dial_timeout=etcd.dial_timeout)
        name = etcd.registry or DEFAULT_REGISTRY
        if name == DEFAULT_REGISTRY:
            return EtcdAccess()
        registry = self.registries.get(name)
        if registry is None:
            raise SpecError(field_path(spec.origin, "etcd.registry"),
                            f"no KitexEtcdRegistry named {name!r}")
        if name not in self._scopes():
            raise SpecError(field_path(spec.origin, "etcd.registry"),
                            f"registry {name} reaches the same etcd as another registry; "
                            "the cluster admin must keep one")
        return EtcdAccess(scope=registry.identity, registry=name)

    def _scopes(self) -> dict[str, tuple[str, str]]:
        """Registry name -> (scope, identity); of two registries reaching one etcd only
        the first (``default``, then by name) has one, so no etcd gets two scopes."""
        default = identity(self.defaults.endpoints)
        scopes = {DEFAULT_REGISTRY: (DEFAULT_SCOPE, default)}
        taken = {default}
        for name in sorted(self.registries):
            ident = self.registries[name].identity
            if ident not in taken:
                taken.add(ident)
                scopes[name] = (ident, ident)
        return scopes

    def _admit(self, spec: ServiceSpec, namespace: str, source: str) -> _Admission:
        """Where a spec goes and under which owner group, or ``SpecError`` naming why not."""
        binding, config = self.binding_of(spec, namespace)
        labels = None if self.namespace_labels is None else self.namespace_labels.get(namespace)
        if self.namespace_labels is None and not self.policies.enforcing:
            labels = {}  # single-team default: namespaces need not be known
        verdict = self.policies.admit(Request(
            namespace=namespace, source=source, service=spec.service_name,
            registry=config.access.registry, prefix=binding.prefix, weight=spec.weight,
            fixed_host=spec.fixed_host is not None, host_ip=spec.address_source == "hostIP"),
            labels)
        if not isinstance(verdict, Admitted):
            at = verdict.field
            if at in ("namespace", "source"):
                path = ("metadata.namespace" if spec.origin == KITEXSERVICE
                        else field_path(spec.origin, "serviceName"))
            else:
                path = field_path(spec.origin, at)
            raise PolicyError(path, verdict.message)
        return _Admission(binding, config, verdict.group)

    def _admit_spec(self, key: SpecKey) -> None:
        self._drop_spec_claim(key)
        self.spec_errors.pop(key, None)
        try:
            admission = self._admit(self.specs[key], key[0], KITEXSERVICE)
        except SpecError as err:
            self.spec_errors[key] = err
            return
        self._admitted[key] = admission
        self._spec_claims[admission.binding][key] = _SpecClaim(admission,
                                                                self.spec_created.get(key, ""))
        self.dirty[admission.binding]

    def _drop_spec_claim(self, key: SpecKey) -> None:
        admission = self._admitted.pop(key, None)
        if admission is not None:
            claims = self._spec_claims.get(admission.binding, {})
            claims.pop(key, None)
            if not claims:
                self._spec_claims.pop(admission.binding, None)
            self.dirty[admission.binding]
            self._release(admission.binding)

    def _release(self, binding: Binding) -> None:
        """Forget a binding that nothing claims and that holds no value any more.

        Names and prefixes are a tenant's to change at will, and a binding
        costs an index entry for every "/" of its range: kept forever, updates
        alone grew memory without bound. Forgetting changes no answer (every
        reader takes a missing binding as the empty one it was); its worker
        still sees the binding unclaimed and empty, and removes its entries
        from etcd, where the lease records keep it known until then.
        """
        if self.present(binding):
            return
        self._values.pop(binding, None)
        self._spec_claims.pop(binding, None)
        self._pod_claims.pop(binding, None)
        self._service_claims.pop(binding, None)
        self._ranges.discard(binding)

    def _readmit(self, namespace: str | None) -> None:
        """Decide again for one namespace's objects (``None``: all of them)."""
        self._annotation_admissions.clear()
        for key in list(self.specs):
            if namespace is None or key[0] == namespace:
                self._admit_spec(key)
        every = set(self._by_namespace) | self.index.namespaces()
        for ns in sorted(every) if namespace is None else [namespace]:
            self._recompute_namespace(ns)

    def _annotation_admission(self, namespace: str, spec: ServiceSpec) -> _Admission:
        """Cached per namespace and annotation content: pods of one template share it."""
        cache_key = (namespace, spec)
        cached = self._annotation_admissions.get(cache_key)
        if cached is None:
            try:
                cached = self._admit(spec, namespace, ANNOTATIONS)
            except SpecError as err:
                cached = err
            if len(self._annotation_admissions) > 4096:
                self._annotation_admissions.clear()
            self._annotation_admissions[cache_key] = cached
        if isinstance(cached, SpecError):
            raise cached
        return cached

    # --- internals -----------------------------------------------------------

    def _recompute_namespace(self, namespace: str) -> None:
        """Pods first: which bindings they claim decides whether a Service yields."""
        for uid in list(self._by_namespace.get(namespace, ())):
            self._recompute_pod(uid)
        self._claims_moved.discard(namespace)
        for key in self.index.in_namespace(namespace):
            self._recompute_service(key)
        self._services_after_claims()

    def _recompute_pod(self, uid: str) -> None:
        pod = self.pods[uid]
        contributions: list[_Contribution] = []
        errors: list[tuple[Source, SpecError]] = []  # the last is the pod's error
        claim: _Admission | None = None
        for source, spec, admission in self._specs_for(pod, errors):
            if source.kind == ANNOTATIONS:
                claim = admission
            try:
                instance = instance_for(pod, spec)
            except SpecError as err:
                errors.append((source, err))
                continue
            except Exception as exc:  # a bug must not stop the watch of every pod
                at = "metadata.annotations" if spec.origin == "annotations" else "spec"
                errors.append((source, unexpected(at, f"pod {pod.namespace}/{pod.name}", exc)))
                continue
            if instance is None:
                continue
            binding = admission.binding
            key = instance_key(binding.prefix, binding.service, instance.address)
            contributions.append(_Contribution(binding, key, instance.encode(), source))
        self.pod_errors.put(uid, errors[-1] if errors else None)
        self._set_pod_claim(uid, claim, pod.created)
        self._set_contributions(uid, contributions)

    def _specs_for(self, pod: PodView, errors: list[tuple[Source, SpecError]]
                   ) -> Iterator[tuple[Source, ServiceSpec, _Admission]]:
        """The specs that select the pod; a malformed annotation goes into ``errors``."""
        source = self._source(ANNOTATIONS, pod.namespace)
        try:
            annotated = spec_from_annotations(pod, retry=self.defaults.retry)
            if annotated is not None:
                yield source, annotated, self._annotation_admission(pod.namespace, annotated)
        except SpecError as err:
            errors.append((source, err))
        except Exception as exc:  # a bug must not stop the watch of every pod
            errors.append((source, unexpected("metadata.annotations",
                                              f"pod {pod.namespace}/{pod.name}", exc)))
        for key, spec in self.specs.items():
            admission = self._admitted.get(key)
            if admission is not None and key[0] == pod.namespace \
                    and spec.service_ref is None and matches(self.selectors[key], pod.labels):
                yield self._source(KITEXSERVICE, *key), spec, admission

    def _source(self, kind: str, namespace: str, name: str = "") -> Source:
        """One ``Source`` object per source: every pod's contribution holds one."""
        key = (kind, namespace, name)
        found = self._sources.get(key)
        if found is None:
            if len(self._sources) > 100_000:
                self._sources.clear()
            found = self._sources[key] = Source(kind, namespace, name)
        return found

    def _set_pod_claim(self, uid: str, admission: _Admission | None, created: str) -> None:
        """Keep the annotated pods claiming each binding: ready or not, they show intent."""
        namespace = self.pods[uid].namespace if uid in self.pods else None
        old = self._pod_binding.get(uid)
        new = admission.binding if admission is not None else None
        if old is not None and (old != new or admission is None):
            by_ns = self._pod_claims.get(old, {})
            for ns, claims in list(by_ns.items()):
                if claims.created.pop(uid, None) is not None and not claims.created:
                    del by_ns[ns]
                    self._claims_moved.add(ns)
            if not by_ns:
                self._pod_claims.pop(old, None)
            self.dirty[old]
            del self._pod_binding[uid]
            self._release(old)
        if admission is None or namespace is None:
            return
        by_ns = self._pod_claims[admission.binding]
        existing = by_ns.get(namespace)
        if existing is None:
            self._claims_moved.add(namespace)
        if existing is None or existing.admission != admission:
            claims = by_ns[namespace] = _PodClaims(
                admission, dict(existing.created) if existing else {})
            self.dirty[admission.binding]
        else:
            claims = existing
        if uid not in claims.created:
            self.dirty[admission.binding]
        claims.created[uid] = created
        self._pod_binding[uid] = admission.binding

    # --- Services and their EndpointSlices ------------------------------------

    def _services_after_claims(self) -> None:
        """Pods began or stopped claiming a name: a Service of that name may yield or return."""
        while self._claims_moved:
            namespace = self._claims_moved.pop()
            for key in self.index.in_namespace(namespace):
                self._recompute_service(key)

    def _recompute_service(self, key: SpecKey) -> None:
        """What a Service is registered as (its own opt-in, KitexServices naming it), then
        each of its slices again."""
        self._drop_service_claim(key)
        error: SpecError | None = None
        bound: list[_ServiceBound] = []
        service = self.index.services.get(key)
        if service is not None:
            try:
                bound = self._service_sources(service)
            except SpecError as err:
                error = err
            except Exception as exc:  # a bug must not stop the watch of every Service
                error = unexpected("metadata.annotations", f"Service {key[0]}/{key[1]}", exc)
        if bound:
            self._service_bound[key] = bound
        else:
            self._service_bound.pop(key, None)
        for uid in self.index.slices_of(key):
            error = self._recompute_slice(uid) or error
        self.service_errors.put(key, error)

    def _service_sources(self, service: ServiceView) -> list[_ServiceBound]:
        """A KitexService naming the Service replaces its auto-registration (explicit
        wins); so does a pod annotation or KitexService of the same name in its namespace.
        """
        key = service.key
        refs = [k for k, spec in self.specs.items()
                if k[0] == key[0] and spec.service_ref == key[1] and k in self._admitted]
        bound = []
        for ref in refs:
            port = service_port(service, self.specs[ref].port, "spec.serviceRef.port")
            bound.append(_ServiceBound(Source(KITEXSERVICE, *ref), self.specs[ref],
                                       self._admitted[ref], port))
        if refs:
            return bound
        labels = None if self.namespace_labels is None else self.namespace_labels.get(key[0])
        auto = self.policies.auto_register(
            labels, (labels or {}).get(AUTO_REGISTER_LABEL) == AUTO_REGISTER_ON)
        spec = service_spec(service, auto, self.defaults.retry)
        if spec is None:
            return []
        admission = self._admit(spec, key[0], SERVICE)
        rival = self._explicit_claim(admission.binding, key[0])
        if rival is not None:
            raise SourceConflict(
                field_path("annotations", "serviceName"),
                f"{rival} in namespace {key[0]} register service {spec.service_name} "
                f"already: explicit registration wins, the endpoints of Service "
                f"{key[1]} are not registered under that name")
        self._service_claims[admission.binding][key] = _SpecClaim(admission, service.created)
        self._service_binding[key] = admission.binding
        self.dirty[admission.binding]
        port = service_port(service, spec.port, field_path("annotations", "port"))
        return [_ServiceBound(Source(SERVICE, *key), spec, admission, port)]

    def _explicit_claim(self, binding: Binding, namespace: str) -> str | None:
        for key in self._spec_claims.get(binding, {}):
            if key[0] == namespace:
                return f"KitexService {key[1]}"
        if namespace in self._pod_claims.get(binding, {}):
            return "annotated pods"
        return None

    def _drop_service_claim(self, key: SpecKey) -> None:
        binding = self._service_binding.pop(key, None)
        if binding is not None:
            claims = self._service_claims.get(binding, {})
            claims.pop(key, None)
            if not claims:
                self._service_claims.pop(binding, None)
            self.dirty[binding]
            self._release(binding)

    def _recompute_slice(self, uid: str) -> SpecError | None:
        """The slice's instances again; what it could not register, if anything."""
        piece = self.index.slices.get(uid)
        error: SpecError | None = None
        contributions: list[_Contribution] = []
        for bound in self._service_bound.get(piece.service_key, []) if piece else []:
            assert piece is not None
            try:
                instances, skipped = slice_instances(piece, bound.spec, bound.port)
            except SpecError as err:  # the Service's tags: none of its endpoints registers
                error = err
                continue
            except Exception as exc:  # a bug must not stop the watch of every slice
                error = unexpected("metadata.annotations", f"EndpointSlice {uid}", exc)
                continue
            if skipped:
                error = SpecError(f"EndpointSlice {uid}",
                                  "endpoints skipped: " + "; ".join(skipped[:3]))
            binding = bound.admission.binding
            contributions += [
                _Contribution(binding, instance_key(binding.prefix, binding.service,
                                                    instance.address),
                              instance.encode(), bound.source) for instance in instances]
        self._set_contributions(uid, contributions)
        return error

    def _set_contributions(self, uid: str, contributions: list[_Contribution]) -> None:
        """Replace a pod's contributions; an unchanged pod marks nothing dirty.

        Most pod events (status heartbeats, unrelated labels, relists) change
        nothing the registry cares about: they must cost no etcd work at all.
        """
        new = tuple(contributions)
        if _several(self._contrib.get(uid)) == new:
            return
        old = _several(self._contrib.pop(uid, None))
        for c in old:
            by_ns = self._values[c.binding]
            by_key = by_ns[c.source.namespace]
            claims = _unclaim(by_key.get(c.key), uid)
            if claims:
                by_key[c.key] = claims
            else:
                by_key.pop(c.key, None)
                if not by_key:
                    del by_ns[c.source.namespace]
            if c.source.kind == KITEXSERVICE:
                counts = self._source_keys[c.source]
                counts[(c.binding, c.key)] -= 1
                if counts[(c.binding, c.key)] <= 0:
                    del counts[(c.binding, c.key)]
                    if not counts:
                        del self._source_keys[c.source]
            self.dirty[c.binding].add(c.key)
        for c in new:
            by_key = self._values[c.binding][c.source.namespace]
            by_key[c.key] = _claim(by_key.get(c.key), uid, c.value)
            if c.source.kind == KITEXSERVICE:  # only KitexServices' statuses list their keys
                self._source_keys[c.source][(c.binding, c.key)] += 1
            self.dirty[c.binding].add(c.key)
        if new:
            self._contrib[uid] = new[0] if len(new) == 1 else new
        for binding in {c.binding for c in old}:
            self._release(binding)


def _several(held: _Contribution | tuple[_Contribution, ...] | None
             ) -> tuple[_Contribution, ...]:
    """What ``_contrib`` holds for a uid, as a tuple (one is held without its tuple:
    48 bytes a pod at 100,000)."""
    if held is None:
        return ()
    return (held,) if isinstance(held, _Contribution) else held


Claims = tuple[str | bytes, ...]
"""The pods claiming one key of one namespace: ``(uid, value, uid, value...)`` by uid.

Almost every key has exactly one claimant (two pods with one address is a
conflict); a tuple of two costs a third of a dict of one, at 100,000 keys."""


def _pairs(claims: Claims | None) -> dict[str, bytes]:
    claims = claims or ()
    return dict(zip(cast(tuple[str, ...], claims[::2]),
                    cast(tuple[bytes, ...], claims[1::2]), strict=True))


def _flat(pairs: dict[str, bytes]) -> Claims:
    return tuple(item for uid in sorted(pairs) for item in (uid, pairs[uid]))


def _claim(claims: Claims | None, uid: str, value: bytes) -> Claims:
    if not claims or (len(claims) == 2 and claims[0] == uid):
        return (uid, value)
    pairs = _pairs(claims)
    pairs[uid] = value
    return _flat(pairs)


def _unclaim(claims: Claims | None, uid: str) -> Claims:
    if not claims or (len(claims) == 2 and claims[0] == uid):
        return ()
    pairs = _pairs(claims)
    pairs.pop(uid, None)
    return _flat(pairs)


def _first(claims: Claims) -> tuple[str, bytes]:
    """The claim that wins: the lowest uid."""
    uid, value = claims[0], claims[1]
    assert isinstance(uid, str) and isinstance(value, bytes)
    return uid, value


class _ClaimsView(Mapping[str, bytes]):
    """key -> value of the first claiming pod, over one or more namespaces, on access."""

    __slots__ = ("_layers",)

    def __init__(self, layers: list[Mapping[str, Claims]]) -> None:
        self._layers = layers

    def __getitem__(self, key: str) -> bytes:
        if len(self._layers) == 1:  # the usual case: one owner namespace
            return _first(self._layers[0][key])[1]
        found = [_first(claims) for layer in self._layers if (claims := layer.get(key))]
        if not found:
            raise KeyError(key)
        return min(found)[1]

    def __iter__(self) -> Iterator[str]:
        if len(self._layers) == 1:
            return iter(self._layers[0])
        return iter(dict.fromkeys(k for layer in self._layers for k in layer))

    def __len__(self) -> int:
        if len(self._layers) == 1:
            return len(self._layers[0])
        return len({k for layer in self._layers for k in layer})

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self._layers)


__all__ = [
    "ANNOTATIONS",
    "KITEXSERVICE",
    "SERVICE",
    "BindingConfig",
    "Defaults",
    "DesiredState",
    "EtcdAccess",
    "PolicyError",
    "Source",
    "SourceConflict",
    "SpecKey",
]
