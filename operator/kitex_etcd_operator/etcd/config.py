"""How to reach one etcd: the options of registry-etcd's constructors, as data.

The config is frozen and hashable so that bindings naming the same etcd
share one client, and a changed Secret (a rotated password) yields a
different config, hence a new client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIAL_TIMEOUT = 5.0
"""registry-etcd's default (``WithDialTimeoutOpt``)."""
DEFAULT_REQUEST_TIMEOUT = 10.0

# The keys of a kubernetes.io/tls Secret (plus ca.crt), and of a basic-auth Secret.
SECRET_CA, SECRET_CERT, SECRET_KEY = "ca.crt", "tls.crt", "tls.key"
SECRET_USERNAME, SECRET_PASSWORD = "username", "password"


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    """Endpoints, credentials and timeouts. Secrets never appear in ``repr`` or ``str``.

    Endpoints are ``host:port`` or ``http(s)://host:port``; any ``https``
    endpoint, a CA or a client certificate turns TLS on for all of them.
    """

    endpoints: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        if isinstance(self.endpoints, str) or not self.endpoints:
            raise ValueError("an etcd target needs a sequence of at least one endpoint")
        for endpoint in self.endpoints:
            scheme, sep, rest = endpoint.partition("://")
            if not endpoint.strip() or (sep and (scheme not in ("http", "https") or not rest)):
                raise ValueError(f"etcd endpoint {endpoint!r} is not host:port or "
                                 "http(s)://host:port")
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if (self.username is None) != (self.password is None):
            raise ValueError("etcd auth needs both a username and a password")
        if self.dial_timeout <= 0 or self.request_timeout <= 0:
            raise ValueError("etcd timeouts must be positive")

    @classmethod
    def from_files(
        cls,
        endpoints: Sequence[str],
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> EtcdConfig:
        """As registry-etcd's ``WithTLSOpt(certFile, keyFile, caFile)``; read once, here."""
        return cls(tuple(endpoints), username=username, password=password,
                   ca_pem=_read(ca_file), cert_pem=_read(cert_file), key_pem=_read(key_file),
                   dial_timeout=dial_timeout, request_timeout=request_timeout)

    @property
    def tls(self) -> bool:
        return bool(self.ca_pem or self.cert_pem or
                    any(e.startswith("https://") for e in self.endpoints))

    def addresses(self) -> list[str]:
        """``host:port`` of every endpoint, scheme stripped, in the given order."""
        return [e.strip().split("://", 1)[-1].rstrip("/") for e in self.endpoints]

    def describe(self) -> str:
        """For logs and Events: where, and how, but no secret."""
        auth = f" as {self.username}" if self.username else ""
        mtls = " with a client certificate" if self.cert_pem else ""
        return f"{','.join(self.endpoints)}{' (TLS)' if self.tls else ''}{mtls}{auth}"

    def __str__(self) -> str:
        return self.describe()


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()
