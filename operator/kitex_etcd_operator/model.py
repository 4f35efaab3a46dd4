"""What a Kitex instance is, and its exact bytes in etcd.

Everything here is pure: the wire format (docs/wire-format.md) lives in
one place so that every writer, the ``resolve`` command and the tests agree
byte for byte with kitex-contrib/registry-etcd.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_PREFIX = "kitex/registry-etcd"
HERTZ_PREFIX = "hertz/registry-etcd"
DEFAULT_WEIGHT = 10  # discovery.DefaultWeight in Kitex
DEFAULT_NETWORK = "tcp"
DEFAULT_LEASE_TTL = 60  # seconds, KITEX_ETCD_REGISTRY_LEASE_TTL's default
# Where the operator records which leases are its own (see registry.py).
DEFAULT_OWNER_PREFIX = "kitex-etcd-operator/owners"

# etcd rejects requests above 1.5 MiB by default; a key is a small part of a
# request, but a service name that long is certainly a mistake.
MAX_SERVICE_NAME = 253
# One instance's value in etcd. A Kitex value with a few tags is about 100
# bytes; the bound keeps one object's tags from filling transactions that
# carry other pods' entries (etcd refuses requests above 1.5 MiB by default).
MAX_VALUE_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Framework(StrEnum):
    """Which Go library reads the entries: they differ in prefix and naming rules."""

    KITEX = "kitex"
    HERTZ = "hertz"


class InvalidInstance(ValueError):
    """Input that cannot become an etcd entry; ``field`` names the culprit for users."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_service_name(name: str, framework: Framework = Framework.KITEX, *,
                          field: str = "serviceName") -> str:
    """Refuse names the Go registry refuses, or that would corrupt the key space.

    Kitex refuses ``/`` because the resolver lists ``{prefix}/{service}/``: a
    slash would put one service's instances inside another's range. Hertz allows
    it. Control characters and surrounding blanks are refused for both: they
    are always typos, and invisible in ``etcdctl`` output.
    """
    if not name:
        raise InvalidInstance(field, "service name must not be empty")
    if len(name) > MAX_SERVICE_NAME:
        raise InvalidInstance(field, f"service name is longer than {MAX_SERVICE_NAME} characters")
    if framework is Framework.KITEX and "/" in name:
        raise InvalidInstance(
            field, "service name registered with etcd should not include character '/'")
    if _CONTROL.search(name):
        raise InvalidInstance(field, "service name must not contain control characters")
    if name != name.strip():
        raise InvalidInstance(field, "service name must not start or end with white space")
    return name


def validate_prefix(prefix: str, *, field: str = "prefix") -> str:
    """A prefix is joined with ``/``: a trailing or leading slash would double it."""
    if not prefix:
        raise InvalidInstance(field, "prefix must not be empty")
    if prefix.startswith("/") or prefix.endswith("/"):
        raise InvalidInstance(field, "prefix must not start or end with '/'")
    if _CONTROL.search(prefix):
        raise InvalidInstance(field, "prefix must not contain control characters")
    return prefix


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""An IPv4 address exactly as ``ipaddress`` writes it (no leading zeros): nearly every
pod's, checked without building an ``IPv4Address`` (a fifth of the per-pod work)."""


def join_host_port(host: str, port: int) -> str:
    """``net.JoinHostPort``: IPv6 in brackets, so that clients can dial it."""
    if not 0 < port < 65536:
        raise InvalidInstance("port", f"port {port} is not in 1..65535")
    if _CANONICAL_IPV4.fullmatch(host):
        return f"{host}:{port}"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not host or _CONTROL.search(host) or "/" in host or ":" in host:
            raise InvalidInstance("host", f"{host!r} is not an IP address or host name") from None
        return f"{host}:{port}"
    if ip.version == 6 and ip.scope_id is not None:
        # ``ipaddress`` takes any text after the %, control characters included,
        # and a zone names an interface of this node: no remote client can dial it.
        raise InvalidInstance("host", f"{host!r} has an IPv6 zone (%...), which means "
                                      "nothing to a remote client")
    if ip.version == 6:
        return f"[{ip.compressed}]:{port}"
    return f"{ip.compressed}:{port}"


@dataclass(frozen=True, slots=True)
class Instance:
    """One Kitex instance: the value of one etcd entry, as written or as resolved.

    The one instance type: what the operator writes, what the ``resolve``
    command emulates the Go resolver returning, and what the interop tests
    read from the real Go programs.

    ``tags`` keeps Go's difference between a nil map and an empty one: ``None``
    is a nil map, written ``"tags":null`` (what registry-etcd and the operator
    write for an instance without tags); ``()`` is an empty non-nil map,
    ``"tags":{}``, which only a value written by someone else holds (a Go
    server given an empty map). Go's resolver treats both as no tags, but it
    hands the map on as it decoded it, so keeping them apart lets ``encode``
    give back the bytes a Go writer wrote and ``kubectl kitex resolve --json``
    print what a Go client holds. :meth:`make` never builds ``()``.
    """

    address: str  # host:port, IPv6 bracketed
    network: str = DEFAULT_NETWORK
    weight: int = DEFAULT_WEIGHT
    tags: tuple[tuple[str, str], ...] | None = None  # sorted; None: nil map, (): empty map
    # ``encode``'s answer, kept: the size check and the desired state both ask for it.
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @staticmethod
    def make(host: str, port: int, *, network: str = DEFAULT_NETWORK,
             weight: int = DEFAULT_WEIGHT, tags: Mapping[str, str] | None = None) -> Instance:
        """Build an instance from its parts, validating them; no tags is ``null``."""
        if not network:
            raise InvalidInstance("network", "network must not be empty")
        if weight < 0:
            raise InvalidInstance("weight", f"weight {weight} is negative")
        instance = Instance(address=join_host_port(host, port), network=network,
                            weight=weight, tags=go_tags(tags) or None)
        # Checked here, where every source's instances are made: Go's escaping can
        # make a value six times the size of the tags that went in.
        size = len(instance.encode())
        if size > MAX_VALUE_BYTES:
            raise InvalidInstance("tags", f"the entry would be {size} bytes, more than "
                                          f"{MAX_VALUE_BYTES}: use fewer or shorter tags")
        return instance

    def tag_map(self) -> dict[str, str] | None:
        """The tags as Go holds them: ``None`` for a nil map (JSON ``null``)."""
        return None if self.tags is None else dict(self.tags)

    def encode(self) -> bytes:
        """The value exactly as Go's ``encoding/json`` writes ``instanceInfo``.

        Field order network, address, weight, tags; compact; ``null`` for a
        nil map (``{}`` for an empty one); map keys sorted (Go sorts map keys);
        Go's string escaping. A byte-wise comparison with a value a Go server
        wrote is then meaningful, which is what lets the operator skip puts
        that would change nothing.
        """
        if self._encoded is not None:
            return self._encoded
        if self.tags is None:
            tags = "null"
        else:
            tags = "{" + ",".join(f"{go_string(k)}:{go_string(v)}" for k, v in self.tags) + "}"
        value = (f'{{"network":{go_string(self.network)},"address":{go_string(self.address)},'
                 f'"weight":{self.weight},"tags":{tags}}}').encode()
        object.__setattr__(self, "_encoded", value)  # frozen: set once, never changed
        return value


def go_tags(tags: Mapping[Any, Any] | None) -> tuple[tuple[str, str], ...] | None:
    """Decoded JSON tags as :attr:`Instance.tags`: ``None`` stays ``None``, ``{}`` is ``()``."""
    if tags is None:
        return None
    return tuple(sorted((str(k), str(v)) for k, v in tags.items()))


_GO_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPED = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')


def go_string(text: str) -> str:
    """A JSON string as Go's encoder writes it (HTMLEscape on, as json.Marshal does)."""
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _GO_SHORT.get(char) or f"\\u{ord(char):04x}"
    return '"' + _GO_ESCAPED.sub(escape, text) + '"'


def service_range(prefix: str, service: str) -> str:
    """The range the Go resolver lists; the trailing slash keeps echo from matching echo2."""
    return f"{prefix}/{service}/"


def instance_key(prefix: str, service: str, address: str) -> str:
    """``{prefix}/{service}/{address}``, the key of one instance."""
    return f"{prefix}/{service}/{address}"


def decode_value(raw: bytes) -> Instance:
    """Read a value the way the Go resolver does: unknown fields ignored.

    ``null`` (or no) tags decode to ``None`` and ``{}`` to ``()``, as Go
    decodes them, so ``decode_value(raw).encode() == raw`` for any value Go wrote.
    """
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("value is not a JSON object")
    tags = data.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise ValueError("tags is not an object")
    weight = data.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise ValueError("weight is not an integer")
    return Instance(address=str(data.get("address", "")), network=str(data.get("network", "")),
                    weight=weight, tags=go_tags(tags))
