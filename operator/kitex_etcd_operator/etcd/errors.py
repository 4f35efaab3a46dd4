"""Errors with messages fit for a Kubernetes Event: what failed, where, what to check."""

from __future__ import annotations

import grpc


class EtcdError(Exception):
    """Any failure talking to etcd.

    ``reason`` is the CamelCase word a Kubernetes condition or Event gives
    as its reason, so a user can tell the causes apart at a glance.
    """

    reason = "EtcdError"


class EtcdUnavailable(EtcdError):
    """No endpoint answered (down, unreachable, or past the dial timeout)."""

    reason = "EtcdUnavailable"


class EtcdAuthError(EtcdError):
    """Wrong user or password, or the user lacks permission."""

    reason = "EtcdAuthenticationFailed"


class EtcdPermissionDenied(EtcdAuthError):
    """Logged in, but the user's roles do not allow the request (a role revoked, say).

    etcd then refuses lease keepalives too, so the entries expire with their
    lease unless access comes back within its TTL.
    """

    reason = "EtcdPermissionDenied"


class EtcdTLSError(EtcdError):
    """The TLS handshake failed: CA, client certificate or its key, or expiry."""

    reason = "EtcdTLSFailed"


class EtcdCertificateExpired(EtcdTLSError):
    """The client certificate is past its end date (or before its start): no
    handshake can succeed with it, whatever etcd says."""

    reason = "ClientCertificateExpired"


class EtcdRequestError(EtcdError):
    """etcd refused the request itself (too large, quota exceeded, ...)."""

    reason = "EtcdRequestRefused"


class EtcdNoSpace(EtcdRequestError):
    """etcd's NOSPACE alarm is raised: it refuses puts and lease grants (deletes
    and keepalives still work) until space is freed and the alarm disarmed."""

    reason = "EtcdOutOfSpace"


class EtcdLeaseNotFound(EtcdRequestError):
    """A write named a lease etcd no longer has (revoked by hand, or expired): the
    lease's keys are gone already, and only a new lease can carry them again."""

    reason = "EtcdLeaseNotFound"


class EtcdCompacted(EtcdRequestError):
    """A watch asked for history etcd has compacted away: list again, then watch."""

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


_TLS_HINTS = ("ssl", "handshake", "certificate", "tls", "x509")
# What gRPC says when the server aborts the TLS session, e.g. over our client certificate.
_REJECTED = ("tsi_data_corrupted", "unwrap failed")


def translate(exc: grpc.aio.AioRpcError, endpoint: str, *, user: str | None = None) -> EtcdError:
    """One gRPC failure as the error a user can act on; ``user`` is the etcd user
    we log in as, named in permission errors."""
    code, details = exc.code(), (exc.details() or "").strip()
    lowered = details.lower()
    if "space exceeded" in lowered or "nospace" in lowered:
        return EtcdNoSpace(f"etcd is out of space (NOSPACE alarm) at {endpoint}: it refuses new "
                           f"entries and leases ({details}); an administrator must free space "
                           "(compact and defragment, or raise --quota-backend-bytes) and run "
                           "`etcdctl alarm disarm`. Entries already written are kept alive")
    if "certificate_verify_failed" in lowered:
        reason = details.rsplit("CERTIFICATE_VERIFY_FAILED:", 1)[-1].removesuffix(": OK").strip()
        return EtcdTLSError(f"TLS handshake with etcd at {endpoint} failed: its server "
                            f"certificate is not trusted: {reason} (is the CA the one that "
                            "signed etcd's certificate?)")
    if "peer name" in lowered and "not in peer certificate" in lowered:
        return EtcdTLSError(f"TLS handshake with etcd at {endpoint} failed: its server "
                            f"certificate does not name that host: {details} (use an endpoint "
                            "named in its SANs)")
    if any(hint in lowered for hint in _REJECTED):
        return EtcdTLSError(f"etcd at {endpoint} rejected the TLS session: {details} (is the "
                            "client certificate signed by the CA etcd trusts, and not expired?)")
    if any(hint in lowered for hint in _TLS_HINTS):
        return EtcdTLSError(f"TLS handshake with etcd at {endpoint} failed: {details} "
                            "(check the CA, the client certificate, its key and their expiry)")
    if "user name is empty" in lowered:
        return EtcdAuthError(f"etcd at {endpoint} requires authentication: give a username "
                             "and a password")
    if code == grpc.StatusCode.UNAUTHENTICATED or "authentication failed" in lowered:
        return EtcdAuthError(f"etcd at {endpoint} refused the credentials: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in lowered:
        who = f"user {user!r}" if user else "the etcd user"
        return EtcdPermissionDenied(
            f"permission denied: etcd at {endpoint} refused a request of {who} ({details}); "
            "its roles must grant readwrite on the registry prefix and on the operator's "
            "ownership prefix. Lease keepalives are refused too: entries expire with their "
            "lease unless access comes back in time")
    if code == grpc.StatusCode.NOT_FOUND and "requested lease not found" in lowered:
        return EtcdLeaseNotFound(f"etcd at {endpoint} no longer has the lease the write "
                                 f"named ({details}): it was revoked or expired")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in lowered:
        return EtcdRequestError(f"etcd at {endpoint} answered with more than the operator "
                                f"accepts in one response ({details}): a range holds far more "
                                "keys than its instances, or raise --etcd-max-response-size")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return EtcdUnavailable(f"etcd at {endpoint} is unavailable: {details or code.name}")
    if masked_stream_end(exc):
        return EtcdUnavailable(f"etcd at {endpoint} ended the stream before our request was "
                               "written (gRPC reports that as an internal error)")
    return EtcdRequestError(f"etcd at {endpoint} refused the request: {code.name}: {details}")


def masked_stream_end(exc: grpc.aio.AioRpcError) -> bool:
    """A stream the server ended while our request was being written.

    grpcio's asyncio client then replaces the server's status (a member
    that lost its leader closes its watch streams, say) with a bare
    INTERNAL "Internal error from Core" (grpc/grpc#36066). It is the end
    of a stream, not a refusal: the next endpoint may well answer. Whether
    the request was applied stays unknown (``never_sent`` is False), so only
    a replay-safe request is sent again.
    """
    return (exc.code() == grpc.StatusCode.INTERNAL
            and (exc.details() or "").strip() == "Internal error from Core")


def is_failover(error: EtcdError) -> bool:
    """Errors after which the next endpoint may do better."""
    return isinstance(error, EtcdUnavailable | EtcdTLSError)


def is_expired_token(exc: grpc.aio.AioRpcError) -> bool:
    """etcd's simple tokens expire (``--auth-token-ttl``); the fix is to authenticate again.
    A JWT carries the auth store's revision it was issued at, and etcd refuses it after
    any change to users or roles ("revision of auth store is old"), before applying the
    request: authenticating again and resending is safe, as etcd's Go client does."""
    details = (exc.details() or "").lower()
    return ("invalid auth token" in details or "token is expired" in details
            or "revision of auth store is old" in details)


def never_sent(exc: grpc.aio.AioRpcError) -> bool:
    """Failures that prove etcd did not apply the request, so any request may be resent.

    gRPC fails a call at once with "failed to connect" when the channel has
    no connection, and etcd refuses with "no leader" before proposing
    anything. A connection lost mid-call or a deadline leaves it unknown.
    """
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details or "no leader" in details)


def handshake_error(exc: grpc.aio.AioRpcError, endpoint: str, *, tls: bool, has_cert: bool,
                    dial_timeout: float, user: str | None = None) -> EtcdError:
    """A failure of a new channel's first request, said with what the client knows of
    its own settings (gRPC only sees a closed socket or a corrupted frame)."""
    error = translate(exc, endpoint, user=user)
    details = (exc.details() or "").lower()
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return EtcdUnavailable(f"etcd at {endpoint} did not answer within the dial timeout "
                               f"({dial_timeout:g} s)")
    if not tls and isinstance(error, EtcdUnavailable) and "socket closed" in details:
        return EtcdTLSError(f"etcd at {endpoint} closed the connection at once: if it serves "
                            "TLS, use an https:// endpoint or give its CA")
    if not has_cert and any(hint in details for hint in _REJECTED):
        return EtcdTLSError(f"etcd at {endpoint} rejected the TLS session: it requires a client "
                            "certificate and none was given")
    return error


_SUMMARIES: tuple[tuple[type[EtcdError], str], ...] = (
    (EtcdNoSpace, "etcd is out of space (NOSPACE alarm): it refuses new entries and leases"),
    (EtcdCertificateExpired, "client certificate expired (or not yet valid)"),
    (EtcdTLSError, "the TLS handshake with etcd failed: check the CA, the client "
                   "certificate and its key"),
    (EtcdPermissionDenied, "permission denied: the etcd user's roles must grant readwrite "
                           "on the registry prefix and the operator's ownership prefix"),
    (EtcdAuthError, "etcd refused the credentials"),
    (EtcdUnavailable, "etcd unavailable: no endpoint answered"),
    (EtcdRequestError, "etcd refused the request"),
)


def summary(error: EtcdError) -> str:
    """The error in the operator's words only, for an etcd a tenant chose.

    The remote side's text (gRPC details, a server's banner, "connection
    refused" against "timed out") must not reach a tenant's status: copied
    verbatim it makes the operator a probe of whatever address a tenant names.
    The full text stays in the operator's log, where the admin reads it.
    """
    for kind, text in _SUMMARIES:
        if isinstance(error, kind):
            return text
    return "the etcd request failed"
