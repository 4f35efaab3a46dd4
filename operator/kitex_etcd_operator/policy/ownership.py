"""Who owns a service name in a registry, and which ranges may not coexist.

Pure. Within one etcd and prefix a service name belongs to one owner group
(a namespace, or the namespaces a policy shares the name among). The first
claimer owns it; the claim is recorded in etcd with the binding's lease, so
it survives restarts and leader changes, and a rolling update (whose new
pods are all younger than an intruder's) never hands the name over. An
owner that stops claiming keeps the name for a grace period, so that a
Deployment recreated from scratch gets it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Claim:
    """One owner group's claim on a binding: when its oldest claiming object was created."""

    created: str  # RFC 3339 creationTimestamp: these compare correctly as strings
    group: str


def decide_owner(claims: Iterable[Claim], recorded: str | None, *,
                 recorded_absent_for: float = 0.0, grace: float = 0.0) -> str | None:
    """The owner group: the recorded one while it claims (or within ``grace`` seconds
    of its last claim), else the oldest claimer; ``None`` when nobody claims."""
    claims = sorted(claims)
    if recorded and (any(c.group == recorded for c in claims) or recorded_absent_for < grace):
        return recorded
    return claims[0].group if claims else None


def ranges_nest(a: str, b: str) -> bool:
    """Whether two bindings' ranges may not coexist: one lies inside the other, or both
    are one range. The Go resolver lists ``{prefix}/{service}/`` with a prefix read, so
    the outer service would return the inner one's instances; and two bindings can
    share a range (``kitex/registry-etcd`` + ``payment`` and Hertz's ``kitex`` +
    ``registry-etcd/payment``) while ownership, decided per binding, gives each its
    own owner. Callers pass the ranges of distinct bindings."""
    return a.startswith(b) or b.startswith(a)


@dataclass(frozen=True, slots=True, order=True)
class RangeClaim:
    """A binding's range and its precedence: recorded in etcd first, then oldest claim."""

    recorded: bool
    created: str
    range: str

    @property
    def rank(self) -> tuple[int, str, str]:
        return (0 if self.recorded else 1, self.created, self.range)


def nesting_winner(mine: RangeClaim, others: Iterable[RangeClaim]) -> RangeClaim | None:
    """The range that keeps its place over ``mine``, or ``None`` if ``mine`` may be written.

    Among ranges that nest, the one recorded in etcd (already registered)
    wins, then the one claimed first: an existing service is never pushed out
    by a newcomer's prefix. Two distinct ranges never tie; one range claimed
    by two bindings in the same second, neither recorded, does: both are
    refused, since letting both write is the hijack this check exists for.
    """
    rivals = [o for o in others if ranges_nest(mine.range, o.range) and o.rank <= mine.rank]
    return min(rivals, key=lambda o: o.rank) if rivals else None
