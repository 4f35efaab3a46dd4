"""What Kubernetes wants: desired entries per binding, kept up to date event by event.

Pods and KitexServices arrive one event at a time; each event recomputes only
what that object contributes, and marks the touched keys dirty, so that a pod
turning not ready costs O(1) whatever the size of its service. Pure state, no
I/O: the controller drains the dirty keys and writes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .kube import PodView, ServiceSpec, SpecError, instance_for, matches, spec_from_annotations
from .model import DEFAULT_LEASE_TTL, DEFAULT_PREFIX, HERTZ_PREFIX, Framework, instance_key
from .plan import Binding
from .retry import RetryConfig

SpecKey = tuple[str, str]  # (namespace, name) of a KitexService
ANNOTATIONS = "annotations"  # the source name of annotation mode


@dataclass(frozen=True, slots=True)
class TargetRef:
    """Which etcd, and with which credentials: the identity bindings are grouped by.

    Secrets are named, not resolved: their content is read by the controller,
    which reconnects when it changes, without changing any binding.
    """

    endpoints: tuple[str, ...] | None = None  # None: the operator's default target
    auth_secret: SpecKey | None = None
    tls_secret: SpecKey | None = None
    dial_timeout: float | None = None

    @property
    def id(self) -> str:
        if self == TargetRef():
            return "default"
        parts = [",".join(self.endpoints or ("default",))]
        if self.auth_secret:
            parts.append("auth=" + "/".join(self.auth_secret))
        if self.tls_secret:
            parts.append("tls=" + "/".join(self.tls_secret))
        if self.dial_timeout is not None:
            parts.append(f"dial={self.dial_timeout:g}")
        return ";".join(parts)


@dataclass(frozen=True, slots=True)
class BindingConfig:
    """How one binding is kept: lease TTL and retry rhythm, and where it writes."""

    target: TargetRef
    ttl: int
    retry: RetryConfig


@dataclass(frozen=True, slots=True)
class Source:
    """Who asked for a binding: a KitexService, or pod annotations in a namespace."""

    kind: str  # "KitexService" or ANNOTATIONS
    namespace: str
    name: str = ""


@dataclass(slots=True)
class _Contribution:
    binding: Binding
    key: str
    value: bytes
    source: Source


@dataclass(slots=True)
class Defaults:
    """The operator's own settings, used where a spec or annotation says nothing."""

    prefix: str = DEFAULT_PREFIX
    lease_ttl: int = DEFAULT_LEASE_TTL
    retry: RetryConfig = field(default_factory=RetryConfig)


class DesiredState:
    """Pods and specs in, desired values per binding out, with dirty tracking."""

    def __init__(self, defaults: Defaults | None = None) -> None:
        self.defaults = defaults or Defaults()
        self.pods: dict[str, PodView] = {}
        self.specs: dict[SpecKey, ServiceSpec] = {}
        self.selectors: dict[SpecKey, Mapping[str, object]] = {}
        self._by_namespace: dict[str, set[str]] = defaultdict(set)
        self._contrib: dict[str, list[_Contribution]] = {}
        self._values: dict[Binding, dict[str, dict[str, bytes]]] = defaultdict(dict)
        self.configs: dict[Binding, BindingConfig] = {}
        self.sources: dict[Binding, set[Source]] = defaultdict(set)
        self.pod_errors: dict[str, tuple[Source, SpecError]] = {}
        self.dirty: dict[Binding, set[str]] = defaultdict(set)

    # --- events ------------------------------------------------------------

    def upsert_pod(self, pod: PodView) -> None:
        self.pods[pod.uid] = pod
        self._by_namespace[pod.namespace].add(pod.uid)
        self._recompute_pod(pod.uid)

    def remove_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is not None:
            self._by_namespace[pod.namespace].discard(uid)
        self.pod_errors.pop(uid, None)
        self._set_contributions(uid, [])

    def upsert_spec(self, key: SpecKey, spec: ServiceSpec,
                    selector: Mapping[str, object]) -> None:
        self.specs[key] = spec
        self.selectors[key] = selector
        self._recompute_namespace(key[0])
        binding, config = self.binding_of(spec, key[0])
        self.sources[binding].add(Source("KitexService", *key))
        self.configs[binding] = config
        self.dirty[binding]

    def remove_spec(self, key: SpecKey) -> None:
        spec = self.specs.pop(key, None)
        self.selectors.pop(key, None)
        if spec is not None:
            binding, _ = self.binding_of(spec, key[0])
            self.sources[binding].discard(Source("KitexService", *key))
            self.dirty[binding]
        self._recompute_namespace(key[0])

    # --- derived -----------------------------------------------------------

    def binding_of(self, spec: ServiceSpec, namespace: str) -> tuple[Binding, BindingConfig]:
        """Where a spec's instances go, and how they are kept there."""
        ref = spec.etcd
        target = TargetRef(
            endpoints=tuple(ref.endpoints) if ref.endpoints else None,
            auth_secret=(namespace, ref.auth_secret) if ref.auth_secret else None,
            tls_secret=(namespace, ref.tls_secret) if ref.tls_secret else None,
            dial_timeout=ref.dial_timeout)
        prefix = ref.prefix or (HERTZ_PREFIX if spec.framework is Framework.HERTZ
                                else self.defaults.prefix)
        binding = Binding(target.id, prefix, spec.service_name)
        config = BindingConfig(target, spec.lease_ttl or self.defaults.lease_ttl, spec.retry)
        return binding, config

    def view(self, binding: Binding) -> Mapping[str, bytes]:
        """The desired values as a live read-only mapping: no copy per sync.

        An incremental sync looks up a handful of keys; copying 10,000
        values to answer that would cost more than the write itself.
        """
        return _ClaimsView(self._values.get(binding, {}))

    def values(self, binding: Binding) -> dict[str, bytes]:
        """The desired value of each key; if two pods claim one address, the first uid wins."""
        return {key: claims[min(claims)] for key, claims in self._values.get(binding, {}).items()}

    def value(self, binding: Binding, key: str) -> bytes | None:
        claims = self._values.get(binding, {}).get(key)
        return claims[min(claims)] if claims else None

    def bindings(self) -> set[Binding]:
        return {b for b, srcs in self.sources.items() if srcs} | {
            b for b, keys in self._values.items() if keys}

    def instance_count(self, binding: Binding) -> int:
        return len(self._values.get(binding, {}))

    def take_dirty(self) -> dict[Binding, set[str]]:
        dirty, self.dirty = self.dirty, defaultdict(set)
        return dirty

    # --- internals -----------------------------------------------------------

    def _recompute_namespace(self, namespace: str) -> None:
        for uid in list(self._by_namespace.get(namespace, ())):
            self._recompute_pod(uid)

    def _recompute_pod(self, uid: str) -> None:
        pod = self.pods[uid]
        contributions: list[_Contribution] = []
        self.pod_errors.pop(uid, None)
        for source, spec in self._specs_for(pod):
            try:
                instance = instance_for(pod, spec)
            except SpecError as err:
                self.pod_errors[uid] = (source, err)
                continue
            binding, config = self.binding_of(spec, pod.namespace)
            if source.kind == ANNOTATIONS:
                self.configs.setdefault(binding, config)
            if instance is None:
                continue
            key = instance_key(binding.prefix, binding.service, instance.address)
            contributions.append(_Contribution(binding, key, instance.encode(), source))
        self._set_contributions(uid, contributions)

    def _specs_for(self, pod: PodView) -> Iterable[tuple[Source, ServiceSpec]]:
        try:
            annotated = spec_from_annotations(pod, retry=self.defaults.retry)
        except SpecError as err:
            self.pod_errors[pod.uid] = (Source(ANNOTATIONS, pod.namespace), err)
            annotated = None
        if annotated is not None:
            yield Source(ANNOTATIONS, pod.namespace), annotated
        for key, spec in self.specs.items():
            if key[0] == pod.namespace and matches(self.selectors[key], pod.labels):
                yield Source("KitexService", *key), spec

    def _set_contributions(self, uid: str, new: list[_Contribution]) -> None:
        """Replace a pod's contributions; an unchanged pod marks nothing dirty.

        Most pod events (status heartbeats, unrelated labels, relists) change
        nothing the registry cares about: they must cost no etcd work at all.
        """
        if self._contrib.get(uid, []) == new:
            return
        old = self._contrib.pop(uid, [])
        for c in old:
            claims = self._values[c.binding].get(c.key)
            if claims is not None:
                claims.pop(uid, None)
                if not claims:
                    del self._values[c.binding][c.key]
            self.dirty[c.binding].add(c.key)
        for c in new:
            self._values[c.binding].setdefault(c.key, {})[uid] = c.value
            self.dirty[c.binding].add(c.key)
            if c.source.kind == ANNOTATIONS:
                self.sources[c.binding].add(c.source)
        if new:
            self._contrib[uid] = new


class _ClaimsView(Mapping[str, bytes]):
    """key -> value of the first claiming pod, computed on access."""

    __slots__ = ("_claims",)

    def __init__(self, claims: Mapping[str, Mapping[str, bytes]]) -> None:
        self._claims = claims

    def __getitem__(self, key: str) -> bytes:
        claims = self._claims[key]
        return claims[min(claims)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)
