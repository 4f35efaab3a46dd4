"""Which bindings' key ranges nest, found without looking at every binding.

Before each full sync a binding checks that no other binding of its etcd has
a range inside, around or equal to its own (the Go resolver reads a range by
prefix, so the outer service would return the inner one's instances, and two
bindings of one range would both be returned). Asking every binding made one
sync O(services) and the initial sync of 1,000 services O(services^2): a
tenth of the operator's CPU at 10,000 pods. Ranges end with "/"
(``service_range``), so one nests in another exactly when it equals one of
the other's "/"-ended prefixes: an index of those prefixes answers in
O(depth of the range).

The owner of an index removes a binding once it is gone (nothing claims it, or
no record of it is left): bindings come and go with names and prefixes a
tenant chooses, and each holds one entry for every "/" of its range.
"""

from __future__ import annotations

from collections import defaultdict

from .plan import Binding

MAX_PREFIX_LENGTH = 512
"""A tenant's ``etcd.prefix`` at most, as the CRD says: the operator holds it without
the schema too (a CRD of an older version, a spec written before the limit)."""
MAX_RANGE_PARTS = 32
"""The "/"-separated parts of ``{prefix}/{service}`` at most. The index holds an entry
for every "/" of a range, each the range up to it: a 765-character range of single
letters held ~0.2 MB. Registries nest a few parts deep; 32 is far beyond any of them."""


def range_limit(prefix: str, service: str, *, tenant_prefix: bool) -> tuple[str, str] | None:
    """``(field, message)`` if the range is too long or too deep to be indexed, else
    ``None``; ``field`` (``etcd.prefix`` or ``serviceName``) is the part to shorten, a
    prefix only when the tenant chose it (``tenant_prefix``)."""
    if tenant_prefix and len(prefix) > MAX_PREFIX_LENGTH:
        return "etcd.prefix", f"prefix is longer than {MAX_PREFIX_LENGTH} characters"
    parts = prefix.count("/") + service.count("/") + 2
    if parts <= MAX_RANGE_PARTS:
        return None
    field = ("etcd.prefix" if tenant_prefix and prefix.count("/") >= service.count("/")
             else "serviceName")
    return field, (f"{prefix}/{service} has {parts} parts separated by '/'; at most "
                   f"{MAX_RANGE_PARTS} are allowed")


def _prefixes(range_: str) -> list[str]:
    """Every proper prefix of ``range_`` that ends with "/"."""
    return [range_[:i + 1] for i, ch in enumerate(range_[:-1]) if ch == "/"]


class RangeIndex:
    """Bindings by etcd and range, with the ranges below each "/"-ended prefix."""

    def __init__(self) -> None:
        self._known: set[Binding] = set()
        self._at: dict[tuple[str, str], set[Binding]] = defaultdict(set)
        self._below: dict[tuple[str, str], set[Binding]] = defaultdict(set)

    def add(self, binding: Binding) -> None:
        if binding in self._known:
            return
        self._known.add(binding)
        range_ = binding.range
        self._at[binding.etcd, range_].add(binding)
        for prefix in _prefixes(range_):
            self._below[binding.etcd, prefix].add(binding)

    def discard(self, binding: Binding) -> None:
        if binding not in self._known:
            return
        self._known.discard(binding)
        range_ = binding.range
        _remove(self._at, (binding.etcd, range_), binding)
        for prefix in _prefixes(range_):
            _remove(self._below, (binding.etcd, prefix), binding)

    def __len__(self) -> int:
        return len(self._known)

    def nesting(self, binding: Binding) -> set[Binding]:
        """Other known bindings in the same etcd whose range lies inside, around or at
        ``binding``'s (``ranges_nest``)."""
        range_ = binding.range
        found = set(self._below.get((binding.etcd, range_), ()))
        found |= self._at.get((binding.etcd, range_), set())
        for prefix in _prefixes(range_):
            found |= self._at.get((binding.etcd, prefix), set())
        found.discard(binding)
        return found


def _remove(index: dict[tuple[str, str], set[Binding]], key: tuple[str, str],
            binding: Binding) -> None:
    """Take ``binding`` out of one entry, and the entry out once empty."""
    held = index.get(key)
    if held is not None:
        held.discard(binding)
        if not held:
            del index[key]
