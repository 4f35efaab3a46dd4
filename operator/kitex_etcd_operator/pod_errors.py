"""Why each pod that wants to be an instance cannot be one, found by pod and by source.

Every write cycle of every service tells the status writer what is wrong with
pods: new errors become Events on the pods, and a KitexService's
``InvalidPods`` condition lists those of its own selection. Both used to walk
every pod error of the cluster at every cycle, so one tenant's 10,000
malformed pods slowed every other tenant's registrations. Here the errors
are indexed by their source, and a version moves only when an error appears,
changes its text or goes: a cycle with nothing new reads one integer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)  # the source: which object asked for the instance
E = TypeVar("E")  # the error: its ``str`` is what users read


class PodErrors(Mapping[str, tuple[S, E]], Generic[S, E]):
    """uid -> (source, error), at most one error a pod (the last source's)."""

    def __init__(self) -> None:
        self._errors: dict[str, tuple[S, E]] = {}
        self._by_source: dict[S, dict[str, E]] = {}
        self.version = 0  # moves when an error appears, changes its source or text, or goes

    def __getitem__(self, uid: str) -> tuple[S, E]:
        return self._errors[uid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._errors)

    def __len__(self) -> int:
        return len(self._errors)

    def of(self, source: S) -> Mapping[str, E]:
        """The errors of one source's pods, by uid."""
        return self._by_source.get(source, {})

    def put(self, uid: str, error: tuple[S, E] | None) -> None:
        """The pod's error now (None: it has none); a pod recomputed to the same error
        leaves the version alone, so its churn does not wake every cycle's check."""
        before = self._errors.get(uid)
        if before is not None:
            errors = self._by_source[before[0]]
            del errors[uid]
            if not errors:
                del self._by_source[before[0]]
        if error is None:
            self._errors.pop(uid, None)
        else:
            self._errors[uid] = error
            self._by_source.setdefault(error[0], {})[uid] = error[1]
        if (before is None) != (error is None) or (
                before is not None and error is not None
                and (before[0] != error[0] or str(before[1]) != str(error[1]))):
            self.version += 1
