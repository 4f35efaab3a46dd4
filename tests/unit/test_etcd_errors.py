"""How gRPC failures read as etcd errors, and which of them move to the next endpoint."""

from __future__ import annotations

import grpc
import pytest

from kitex_etcd_operator.etcd.errors import (
    EtcdNoSpace,
    EtcdPermissionDenied,
    EtcdRequestError,
    EtcdUnavailable,
    is_expired_token,
    is_failover,
    never_sent,
    translate,
)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_a_stream_ended_under_a_write_fails_over_without_claiming_it_was_not_sent() -> None:
    # grpcio's asyncio client hides the server's status this way (grpc/grpc#36066); a CI
    # run saw it when a watch moved to a member that had just lost its leader.
    exc = rpc_error(grpc.StatusCode.INTERNAL, "Internal error from Core")
    error = translate(exc, "127.0.0.1:2379")
    assert isinstance(error, EtcdUnavailable)
    assert is_failover(error)
    assert "127.0.0.1:2379 ended the stream" in str(error)
    assert not never_sent(exc)


@pytest.mark.parametrize(("code", "details", "kind", "failover"), [
    (grpc.StatusCode.INTERNAL, "some other internal error", EtcdRequestError, False),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", EtcdUnavailable, True),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded",
     EtcdNoSpace, False),
    (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied",
     EtcdPermissionDenied, False),
])
def test_other_failures_keep_their_meaning(code: grpc.StatusCode, details: str,
                                           kind: type[Exception], failover: bool) -> None:
    error = translate(rpc_error(code, details), "e:1", user="kitex")
    assert type(error) is kind
    assert is_failover(error) is failover


@pytest.mark.parametrize(("details", "expired"), [
    ("etcdserver: invalid auth token", True),
    ("etcdserver: token is expired", True),
    # a JWT issued before any change to users or roles: refused until renewed
    ("etcdserver: revision of auth store is old", True),
    ("etcdserver: permission denied", False),
])
def test_tokens_etcd_no_longer_takes_are_renewed(details: str, expired: bool) -> None:
    assert is_expired_token(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, details)) is expired
