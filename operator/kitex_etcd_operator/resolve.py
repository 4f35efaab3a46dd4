"""What a Kitex client would resolve, read exactly as registry-etcd's resolver reads it.

For debugging "my client does not see the pod": this reproduces the Go
resolver (registry-etcd v0.2.6, ``etcdResolver.Resolve``) rather than what
the operator meant to write: it lists ``{prefix}/{service}/``, skips values
that do not decode (the Go code logs and ignores them), raises weights <= 0
to the default weight 10, and fails with ``no instance remains for …`` when
nothing is left. The interop tests compare it with the real Go resolver.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import DEFAULT_WEIGHT, Instance, go_tags


class NoInstance(Exception):
    """The Go resolver's error; a Kitex client then keeps its last good list."""


@dataclass(slots=True)
class Resolution:
    """What the resolver kept, in key order, and what it skipped with the Go error's words."""

    entries: list[ResolvedEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why)

    @property
    def instances(self) -> list[Instance]:
        """What a Kitex client holds, in key order."""
        return [entry.instance for entry in self.entries]


@dataclass(frozen=True, slots=True)
class ResolvedEntry:
    """One entry the resolver kept: its key and lease, and the instance a client gets."""

    key: str
    lease: int
    instance: Instance


def go_resolve(service: str, kvs: Iterable[tuple[str, bytes, int]],
               default_weight: int = DEFAULT_WEIGHT) -> Resolution:
    """Emulate ``etcdResolver.Resolve`` over (key, value, lease) rows in key order.

    Tags stay as Go decoded them: ``null`` is ``None``, ``{}`` is ``()``
    (see :class:`~.model.Instance`).
    """
    result = Resolution()
    for key, value, lease in kvs:
        try:
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            weight = int(data.get("weight") or 0)
            tags = data.get("tags")
            if tags is not None and not isinstance(tags, dict):
                raise ValueError("tags is not an object")
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Go's decoder refuses these too (a weight of 1e400, nesting past its depth)
            result.skipped.append((key, f"fail to unmarshal: {exc}"))
            continue
        instance = Instance(address=str(data.get("address", "")),
                            network=str(data.get("network", "")),
                            weight=weight if weight > 0 else default_weight, tags=go_tags(tags))
        result.entries.append(ResolvedEntry(key, lease, instance))
    if not result.instances:
        raise NoInstance(f"no instance remains for {service}")
    return result
