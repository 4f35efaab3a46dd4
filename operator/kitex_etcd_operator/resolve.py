"""What a Kitex client would resolve, read exactly as registry-etcd's resolver reads it.

For debugging "my client does not see the pod": this reproduces the Go
resolver step by step, quirks included, rather than what the operator meant
to write. The resolver lists ``{prefix}/{service}/``, skips values that do
not decode, raises weights <= 0 to 10, fails with ``no instance remains``
when nothing is left, and decodes every value into one reused struct, so a
value's tags are merged into one map shared by all instances that have tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import DEFAULT_WEIGHT, service_range


class NoInstance(Exception):
    """The Go resolver's error; a Kitex client then keeps its last good list."""


@dataclass(slots=True)
class Resolved:
    network: str
    address: str
    weight: int
    tags: dict[str, str] | None
    key: str = ""
    lease: int = 0


@dataclass(slots=True)
class Resolution:
    instances: list[Resolved] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why)


def go_resolve(service: str, kvs: Iterable[tuple[str, bytes, int]]) -> Resolution:
    """Emulate ``etcdResolver.Resolve`` over (key, value, lease) rows in key order."""
    result = Resolution()
    shared: dict[str, str] | None = None
    network, address, weight = "", "", 0
    for key, value, lease in kvs:
        try:
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            result.skipped.append((key, f"fail to unmarshal: {exc}"))
            continue
        network = str(data.get("network", network))
        address = str(data.get("address", address))
        if "weight" in data:
            weight = int(data["weight"])
        if "tags" in data:
            tags = data["tags"]
            if tags is None:
                shared = None
            elif isinstance(tags, dict):
                shared = shared if shared is not None else {}
                shared.update({str(k): str(v) for k, v in tags.items()})
        result.instances.append(Resolved(network, address, weight if weight > 0 else DEFAULT_WEIGHT,
                                         shared, key, lease))
    if not result.instances:
        raise NoInstance(f"no instance remains for {service}")
    return result


def service_prefix(prefix: str, service: str) -> str:
    return service_range(prefix, service)
