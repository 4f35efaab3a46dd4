"""Why pods and Services cannot be registered, kept so that news is cheap to find.

After every write cycle the status writer looks for pod errors that are new
(each becomes an Event on its pod), and a KitexService's ``InvalidPods``
condition lists those of its own selection; after every pod event it looks
for Service errors that are new. Each of those walked every error of the
cluster, so one tenant's 10,000 malformed pods or Services slowed every
other tenant's registrations. Here the keys whose error appeared, changed
its text or went are kept until the status writer takes them, and pod errors
are indexed (and versioned) by the object that selected the pods: a cycle
reads what changed, never the whole.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
S = TypeVar("S", bound=Hashable)  # the source: which object asked for the instance
E = TypeVar("E")  # an error: its ``str`` is what users read


class Versioned(Mapping[K, V], Generic[K, V]):
    """A mapping changed only through ``put``, whose ``version`` moves on news."""

    def __init__(self) -> None:
        self._items: dict[K, V] = {}
        self.version = 0  # moves when an entry appears, changes what it says, or goes
        self._changed: set[K] = set()  # the keys of those changes, until taken

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _same(self, before: V, after: V) -> bool:
        return str(before) == str(after)

    def put(self, key: K, value: V | None) -> V | None:
        """Set (None: drop) the entry; the same text again is no news, so a pod or
        Service recomputed to the error it had does not wake every check."""
        before = self._items.get(key)
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = value
        if (before is None) != (value is None) or (
                before is not None and value is not None and not self._same(before, value)):
            self.version += 1
            self._changed.add(key)
        return before

    def take_changed(self) -> set[K]:
        """The keys whose entry came, changed or went since the last call: what is news
        to report, without a walk of every entry."""
        changed, self._changed = self._changed, set()
        return changed


class PodErrors(Versioned[str, tuple[S, E]], Generic[S, E]):
    """uid -> (source, error), at most one error a pod (the last source's)."""

    def __init__(self) -> None:
        super().__init__()
        self._by_source: dict[S, dict[str, E]] = {}
        # The overall version at each erring source's last news. Only sources with
        # errors now have an entry: a tenant making and deleting KitexServices of broken
        # pods must not grow it for good. One that lost all its errors reads 0, which
        # no stamp is, so the change is still news to a reader that saw the errors; one
        # whose errors came and went between two reads reads as before, and is as before.
        self._source_versions: dict[S, int] = {}

    def of(self, source: S) -> Mapping[str, E]:
        """The errors of one source's pods, by uid."""
        return self._by_source.get(source, {})

    def version_of(self, source: S) -> int:
        """Moves when an error of this source's pods comes, changes or goes: another
        tenant's churn of broken pods leaves it alone."""
        return self._source_versions.get(source, 0)

    def _same(self, before: tuple[S, E], after: tuple[S, E]) -> bool:
        return before[0] == after[0] and str(before[1]) == str(after[1])

    def put(self, key: str, value: tuple[S, E] | None) -> tuple[S, E] | None:
        version = self.version
        before = super().put(key, value)
        if before is not None:
            errors = self._by_source[before[0]]
            del errors[key]
            if not errors:
                del self._by_source[before[0]]
        if value is not None:
            self._by_source.setdefault(value[0], {})[key] = value[1]
        if self.version != version:
            for changed in {pair[0] for pair in (before, value) if pair is not None}:
                if changed in self._by_source:
                    self._source_versions[changed] = self.version
                else:
                    self._source_versions.pop(changed, None)
        return before
