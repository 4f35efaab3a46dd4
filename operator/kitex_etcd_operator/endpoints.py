"""etcd endpoints as users write them, and the one identity of the etcd they reach.

Pure. Two specs that name one etcd with the endpoints in another order, a
scheme or not, or another dial timeout must share one connection and one
ownership scope: a second scope on the same etcd would read the first's
ownership records as its own and delete its entries. So an etcd's identity
is its canonical endpoint set, never the string a tenant typed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

# A DNS name (RFC 1123 labels), an IPv4 address, or an IPv6 address in brackets;
# then a port. Nothing else: no unix: or dns: gRPC schemes, no paths, no users.
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[-A-Za-z0-9.]{0,251}[A-Za-z0-9])?)"
ENDPOINT_PATTERN = rf"^(?:https?://)?{_HOST}:[0-9]{{1,5}}/?$"
_ENDPOINT = re.compile(ENDPOINT_PATTERN)


class InvalidEndpoint(ValueError):
    """An endpoint that is not ``host:port``, ``http://host:port`` or ``https://host:port``."""


def check_endpoint(endpoint: str) -> str:
    """The endpoint as given, if it is one the operator will dial; else ``InvalidEndpoint``.

    gRPC also understands ``unix:``, ``dns:`` and ``ipv4:`` targets; a tenant
    must not make the operator dial a socket file or a resolver of its choice,
    so only the forms registry-etcd's users write are accepted.
    """
    if not _ENDPOINT.fullmatch(endpoint):
        raise InvalidEndpoint(f"{endpoint!r} is not host:port, http://host:port or "
                              "https://host:port")
    host, port = split_endpoint(endpoint)
    if not 1 <= port <= 65535:
        raise InvalidEndpoint(f"{endpoint!r}: port {port} is not in 1..65535")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidEndpoint(f"{endpoint!r}: {host} is not an IPv6 address") from None
    return endpoint


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of a checked endpoint; the host keeps IPv6 brackets."""
    rest = endpoint.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return host, int(port)


def canonical(endpoint: str) -> str:
    """``host:port`` in lower case, scheme dropped, IPv4/IPv6 in their compressed form."""
    host, port = split_endpoint(endpoint)
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return f"{host.lower().rstrip('.')}:{port}"
    return f"[{ip.compressed}]:{port}" if ip.version == 6 else f"{ip.compressed}:{port}"


def identity(endpoints: Iterable[str]) -> str:
    """The identity of the etcd cluster these endpoints reach: sorted canonical endpoints."""
    return ",".join(sorted({canonical(e) for e in endpoints}))
