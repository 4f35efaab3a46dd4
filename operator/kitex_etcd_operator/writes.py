"""Writes to etcd as the operator makes them: a put or a delete, guarded by a lease.

One vocabulary from the plan to the wire. ``plan`` decides writes, the
registry batches them, and the etcd client turns each into a request op and,
when it is guarded, the compare that proves the key is still what the plan
saw: absent (``expect_lease=0``) or on the lease named. Ownership rests on
that guard: a key on anyone else's lease is never overwritten or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Put:
    """Write ``value`` on ``lease`` (0: no lease).

    ``expect_lease``: ``None`` writes whatever is there; ``0`` only if the key
    is absent; any other value only while the key sits on that lease.
    """

    key: str
    value: bytes
    lease: int = 0
    expect_lease: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key``; with ``expect_lease``, only while it sits on that lease."""

    key: str
    expect_lease: int | None = None


Write = Put | Delete
