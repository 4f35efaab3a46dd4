"""How to reach one etcd: the options of registry-etcd's constructors, as data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    """Endpoints, credentials and timeouts. Secrets never appear in ``repr``.

    Endpoints are ``host:port`` or ``http(s)://host:port``; any ``https``
    endpoint, a CA or a client certificate turns TLS on for all of them.
    """

    endpoints: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    dial_timeout: float = 5.0  # registry-etcd's WithDialTimeoutOpt
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("an etcd target needs at least one endpoint")
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if (self.username is None) != (self.password is None):
            raise ValueError("etcd auth needs both a username and a password")

    @property
    def tls(self) -> bool:
        return bool(self.ca_pem or self.cert_pem or
                    any(e.startswith("https://") for e in self.endpoints))

    def addresses(self) -> list[str]:
        """``host:port`` of every endpoint, scheme stripped, in the given order."""
        return [e.split("://", 1)[-1].rstrip("/") for e in self.endpoints]

    def describe(self) -> str:
        """For logs and Events: where, and how, but no secret."""
        auth = f" as {self.username}" if self.username else ""
        mtls = " with a client certificate" if self.cert_pem else ""
        return f"{','.join(self.endpoints)}{' (TLS)' if self.tls else ''}{mtls}{auth}"
