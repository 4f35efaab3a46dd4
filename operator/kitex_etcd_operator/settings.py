"""The operator's own settings, from flags and environment (see ``cli.run``).

Every option of registry-etcd that is not per service lives here: the default
etcd (endpoints, auth, TLS, dial timeout), the default prefix, lease
TTL and retry, plus what an operator needs that a library does not (cluster
id, namespaces, policy, dry run, safety cap, probes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .model import DEFAULT_LEASE_TTL, DEFAULT_OWNER_PREFIX, DEFAULT_PREFIX
from .plan import Policy
from .retry import RetryConfig


@dataclass(frozen=True, slots=True)
class DefaultEtcd:
    """The etcd used by annotated pods and by KitexServices that name none."""

    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    secret: str | None = None  # "namespace/name" of a Secret with username/password/ca.crt/...
    dial_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    etcd: DefaultEtcd = field(default_factory=DefaultEtcd)
    prefix: str = DEFAULT_PREFIX
    lease_ttl: int = DEFAULT_LEASE_TTL
    retry: RetryConfig = field(default_factory=RetryConfig)
    cluster_id: str = "default"
    owner_prefix: str = DEFAULT_OWNER_PREFIX
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    policy: Policy = Policy.SYNC
    dry_run: bool = False
    max_deletes: int | None = None  # per binding and cycle; None: no cap
    # A binding's writes start at most this often (seconds); a lone change is written
    # at once, what comes within this of the last write is gathered into the next.
    debounce: float = 0.02
    resync_period: float = 300.0  # full relist of pods, to catch missed deletions
    # How long a due garbage collection may wait for a moment without a change on its
    # way to etcd (seconds; 0: the interpreter's own moments). See collector.py.
    gc_patience: float = 0.5
    health_port: int = 8080
    health_host: str = "0.0.0.0"
    operator_namespace: str = "kitex-etcd-operator"  # where registries' Secrets live
    # The single-team default (no KitexRegistrationPolicy): may a KitexService name
    # etcd endpoints of its own? Off: a tenant could point the operator anywhere.
    allow_custom_endpoints: bool = False
    # How long an owner that stopped claiming a service name keeps it (a Deployment
    # recreated from scratch gets its name back; an intruder cannot grab it meanwhile).
    claim_grace: float = 300.0
    # Services and EndpointSlices as a third source (needs list/watch on both).
    service_source: bool = True
