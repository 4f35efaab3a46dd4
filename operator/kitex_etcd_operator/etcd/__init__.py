"""The etcd connection layer: aetcd plus what it lacks.

aetcd speaks etcd's API over one plain gRPC channel with a token fetched
once. Here: several endpoints with failover, TLS with client certificates,
auth tokens renewed when etcd expires them, a dial timeout, and errors whose
messages can go straight into a Kubernetes Event.
"""

from .client import EtcdClient
from .config import EtcdConfig
from .errors import (
    EtcdAuthError,
    EtcdCertificateExpired,
    EtcdCompacted,
    EtcdError,
    EtcdNoSpace,
    EtcdPermissionDenied,
    EtcdRequestError,
    EtcdTLSError,
    EtcdUnavailable,
)
from .ops import Compare, KeyValue, WatchEvent, txn_replay_safe

__all__ = [
    "Compare",
    "EtcdAuthError",
    "EtcdCertificateExpired",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdConfig",
    "EtcdError",
    "EtcdNoSpace",
    "EtcdPermissionDenied",
    "EtcdRequestError",
    "EtcdTLSError",
    "EtcdUnavailable",
    "KeyValue",
    "WatchEvent",
    "txn_replay_safe",
]
