"""When each lease is refreshed: spread out, a few at a time.

A service's lease is refreshed every third of its TTL, as etcd's own clients
do. The leases of one initial sync are granted within seconds of each other,
so refreshed on that rhythm alone they all fall due in the same instant, every
third of the TTL: 1,000 keepalives in one round cost the operator a quarter of
a second of CPU at once, besides etcd's work for them. Traced at 10,000
pods over 1,000 services, those rounds held the writes of churn back by 40 to
85 ms, the largest part of the operator's share above 20 ms.

So each lease keeps a phase of its own. Its first refresh falls anywhere
within a third of its TTL after the grant (or after its adoption, or a
failed refresh, which also put many leases in step), at random; later ones
come a third of its TTL after the last, up to a tenth of that early, so the
leases stay apart. A round takes the leases due within ``GATHER`` seconds
(a stream carries them together), so 1,000 leases of a 60 s TTL go about 25 a
round, two rounds a second. No lease is refreshed later than a third of its
TTL after the last refresh; only earlier.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

GATHER = 0.5
"""Seconds ahead a round looks: the leases due that soon go along (at most a
twelfth of their TTL early). Fewer rounds save a stream's setup each (about
1 ms of CPU); more leases a round make a longer burst."""
SPREAD = 0.1
"""How early, as a share of the period, a lease in its rhythm may come at random."""
RETRY_AFTER = 5.0
"""Seconds before a lease whose refresh failed is tried again (at most a sixth of its TTL)."""


@dataclass(slots=True)
class KeepaliveSchedule:
    """The due time of every lease kept alive, on the caller's monotonic clock."""

    due: dict[int, float] = field(default_factory=dict)
    _ttl: dict[int, float] = field(default_factory=dict)
    _in_step: set[int] = field(default_factory=set)  # next refresh spread over a whole period
    rng: random.Random = field(default_factory=random.Random)

    def __len__(self) -> int:
        return len(self.due)

    def __contains__(self, lease: object) -> bool:
        return lease in self.due

    def granted(self, lease: int, ttl: float, now: float) -> None:
        """A new lease: its first refresh anywhere within its first period."""
        self._ttl[lease] = ttl
        self.due[lease] = now + ttl / 3 * self.rng.random()

    def adopted(self, lease: int, ttl: float) -> None:
        """A lease of an earlier run, found at start-up: refreshed at once, since
        nothing says when it last was; its next refresh is spread."""
        self._ttl[lease] = ttl
        self.due[lease] = 0.0
        self._in_step.add(lease)

    def forget(self, lease: int) -> None:
        self.due.pop(lease, None)
        self._ttl.pop(lease, None)
        self._in_step.discard(lease)

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    def round(self, now: float) -> list[int]:
        """The leases to refresh now: those due, and those due within ``GATHER``
        (a twelfth of their TTL at most); none when nothing is due yet."""
        if not any(due <= now for due in self.due.values()):
            return []
        return [lease for lease, due in self.due.items()
                if due <= now + min(GATHER, self._ttl[lease] / 12)]

    def refreshed(self, lease: int, now: float) -> None:
        """etcd renewed it ``now`` (the round's start): the next refresh a period on,
        spread over the whole period if it was in step with others."""
        if lease not in self.due:
            return  # forgotten while its round was out
        spread = 1.0 if lease in self._in_step else SPREAD
        self._in_step.discard(lease)
        self.due[lease] = now + self._ttl[lease] / 3 * (1 - spread * self.rng.random())

    def failed(self, leases: Iterable[int], now: float) -> None:
        """A round failed (etcd unreachable): tried again soon, then spread once more."""
        for lease in leases:
            if lease in self.due:
                self.due[lease] = now + min(self._ttl[lease] / 6, RETRY_AFTER)
                self._in_step.add(lease)
