"""Errors with messages fit for a Kubernetes Event: what failed, where, what to check."""

from __future__ import annotations

import grpc


class EtcdError(Exception):
    """Any failure talking to etcd."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered (down, unreachable, or past the dial timeout)."""


class EtcdAuthError(EtcdError):
    """Wrong user or password, or the user lacks permission."""


class EtcdTLSError(EtcdError):
    """The TLS handshake failed: CA, client certificate or its key, or expiry."""


class EtcdRequestError(EtcdError):
    """etcd refused the request itself (too large, quota exceeded, ...)."""


_TLS_HINTS = ("ssl", "handshake", "certificate", "tls", "x509")
# What gRPC says when the server aborts the TLS session, e.g. over our client certificate.
_REJECTED = ("tsi_data_corrupted", "unwrap failed")


def translate(exc: grpc.aio.AioRpcError, endpoint: str) -> EtcdError:
    """One gRPC failure as the error a user can act on."""
    code, details = exc.code(), (exc.details() or "").strip()
    lowered = details.lower()
    if any(hint in lowered for hint in _REJECTED):
        return EtcdTLSError(f"etcd at {endpoint} rejected the TLS session: {details} (is the "
                            "client certificate signed by the CA etcd trusts, and not expired?)")
    if any(hint in lowered for hint in _TLS_HINTS):
        return EtcdTLSError(f"TLS handshake with etcd at {endpoint} failed: {details} "
                            "(check the CA, the client certificate, its key and their expiry)")
    if code == grpc.StatusCode.UNAUTHENTICATED or "authentication failed" in lowered:
        return EtcdAuthError(f"etcd at {endpoint} refused the credentials: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in lowered:
        return EtcdAuthError(f"etcd at {endpoint}: permission denied: {details}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return EtcdUnavailable(f"etcd at {endpoint} is unavailable: {details or code.name}")
    if "space exceeded" in lowered:
        return EtcdRequestError(f"etcd at {endpoint} is out of space (quota alarm): {details}")
    return EtcdRequestError(f"etcd at {endpoint} refused the request: {code.name}: {details}")


def is_failover(error: EtcdError) -> bool:
    """Errors after which the next endpoint may do better."""
    return isinstance(error, EtcdUnavailable | EtcdTLSError)


def is_expired_token(exc: grpc.aio.AioRpcError) -> bool:
    """etcd's simple tokens expire (``--auth-token-ttl``); the fix is to authenticate again."""
    details = (exc.details() or "").lower()
    return "invalid auth token" in details or "token is expired" in details
