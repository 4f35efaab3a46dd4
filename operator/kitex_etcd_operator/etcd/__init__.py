"""The etcd connection layer: aetcd plus what it lacks.

aetcd speaks etcd's API over one plain gRPC channel with a token fetched
once. Here: several endpoints with failover, TLS with client certificates,
auth tokens renewed when etcd expires them, a dial timeout, and errors whose
messages can go straight into a Kubernetes Event.
"""

from .client import Compare, DeleteOp, EtcdClient, KeyValue, PutOp, WatchEvent
from .config import EtcdTarget
from .errors import EtcdAuthError, EtcdError, EtcdRequestError, EtcdTLSError, EtcdUnavailable

__all__ = [
    "Compare",
    "DeleteOp",
    "EtcdAuthError",
    "EtcdClient",
    "EtcdError",
    "EtcdRequestError",
    "EtcdTLSError",
    "EtcdTarget",
    "EtcdUnavailable",
    "KeyValue",
    "PutOp",
    "WatchEvent",
]
