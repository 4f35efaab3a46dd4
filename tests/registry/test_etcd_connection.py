"""The etcd connection layer against real etcd: failover, mTLS, auth and its renewal, timeouts."""

from __future__ import annotations

import datetime
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import async_wait_for
from kitex_etcd_operator.devcluster import pki
from kitex_etcd_operator.devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import (
    Compare,
    DeleteOp,
    EtcdAuthError,
    EtcdClient,
    EtcdTarget,
    EtcdTLSError,
    EtcdUnavailable,
    PutOp,
)

PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture
def three(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path / "three", members=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path / "tls", tls=True, client_cert_auth=True)
    yield cluster
    cluster.stop()


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path / "auth", extra_args=[
        "--auth-token=simple", "--auth-token-ttl=2"])
    cluster.enable_auth("root-pw")
    cluster.add_user("kitex", PASSWORD, prefix="kitex/")
    yield cluster
    cluster.stop()


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_guarded_writes_leases_and_reads(registry_etcd: Any) -> None:
    client = EtcdClient(EtcdTarget(tuple(registry_etcd.endpoints)))
    try:
        lease = await client.grant(30)
        assert await client.txn([Compare.absent("conn/a")], [PutOp("conn/a", b"1", lease)])
        assert not await client.txn([Compare.absent("conn/a")], [PutOp("conn/a", b"2")])
        assert not await client.txn([Compare.lease_is("conn/a", lease + 1)], [DeleteOp("conn/a")])
        kvs, revision = await client.get_prefix("conn/")
        assert [(kv.key, kv.value, kv.lease) for kv in kvs] == [("conn/a", b"1", lease)]
        assert revision > 0
        assert 0 < await client.lease_ttl(lease) <= 30
        assert await client.keepalive(lease) == 30
        await client.revoke(lease)
        await client.revoke(lease)  # already gone: not an error
        assert await client.keepalive(lease) == 0
        assert await client.lease_ttl(lease) == -1
        assert (await client.get_prefix("conn/"))[0] == []
    finally:
        await client.close()


async def test_failover_when_the_current_member_stops(three: EtcdCluster) -> None:
    client = EtcdClient(EtcdTarget(tuple(three.endpoints), dial_timeout=1))
    try:
        assert await client.txn([], [PutOp("fo/k", b"v")])
        current = client.current_endpoint
        three.stop_member([e.split("://")[1] for e in three.endpoints].index(current))
        started = time.monotonic()
        kvs, _ = await client.get_prefix("fo/")
        took = time.monotonic() - started
        assert [kv.value for kv in kvs] == [b"v"]
        assert client.current_endpoint != current
        assert await client.txn([], [PutOp("fo/k2", b"w")])
        print(f"failover to {client.current_endpoint} in {took:.2f}s")
    finally:
        await client.close()


async def test_a_dead_first_endpoint_is_skipped(registry_etcd: Any) -> None:
    endpoints = (f"127.0.0.1:{dead_port()}", *registry_etcd.endpoints)
    client = EtcdClient(EtcdTarget(endpoints, dial_timeout=1))
    try:
        await client.get_prefix("nothing/")
        assert client.current_endpoint == registry_etcd.endpoints[0].split("://")[1]
    finally:
        await client.close()


async def test_dial_timeout_bounds_an_unreachable_etcd() -> None:
    client = EtcdClient(EtcdTarget((f"127.0.0.1:{dead_port()}",), dial_timeout=1))
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match="no etcd endpoint answered"):
        await client.get_prefix("x/")
    assert time.monotonic() - started < 10
    await client.close()


def tls_target(cluster: EtcdCluster, *, ca: bytes | None = None, cert: bytes | None = None,
               key: bytes | None = None) -> EtcdTarget:
    assert cluster.ca_path and cluster.client_cert_path and cluster.client_key_path
    return EtcdTarget(tuple(cluster.endpoints), dial_timeout=2,
                      ca_pem=ca or cluster.ca_path.read_bytes(),
                      cert_pem=cert or cluster.client_cert_path.read_bytes(),
                      key_pem=key or cluster.client_key_path.read_bytes())


async def test_mutual_tls(tls: EtcdCluster) -> None:
    client = EtcdClient(tls_target(tls))
    try:
        assert await client.txn([], [PutOp("tls/k", b"v")])
        assert (await client.get_prefix("tls/"))[0][0].value == b"v"
    finally:
        await client.close()


async def test_a_wrong_ca_is_a_clear_tls_error(tls: EtcdCluster) -> None:
    other = pki.make_ca("not the etcd CA")
    client = EtcdClient(tls_target(tls, ca=other.cert_pem))
    with pytest.raises(EtcdTLSError, match=r"TLS handshake with etcd at 127\.0\.0\.1"):
        await client.get_prefix("tls/")
    await client.close()


async def test_a_client_certificate_from_another_ca_is_refused(tls: EtcdCluster) -> None:
    cert, key = pki.issue(pki.make_ca("rogue"), "intruder", server=False)
    client = EtcdClient(tls_target(tls, cert=cert, key=key))
    with pytest.raises(EtcdTLSError, match=r"rejected the TLS session.*client certificate"):
        await client.get_prefix("tls/")
    await client.close()


async def test_an_expired_client_certificate_is_refused(tls: EtcdCluster) -> None:
    assert tls.ca is not None
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    cert, key = pki.issue(tls.ca, "expired", server=False, not_before=ended, days=1)
    client = EtcdClient(tls_target(tls, cert=cert, key=key))
    with pytest.raises(EtcdTLSError, match="client certificate CN=expired expired at"):
        await client.get_prefix("tls/")
    await client.close()


async def test_auth_scoped_to_a_prefix_and_token_renewal(
        auth: EtcdCluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = EtcdClient(EtcdTarget(tuple(auth.endpoints), username="kitex", password=PASSWORD))
    try:
        assert await client.txn([], [PutOp("kitex/a", b"1")])
        with pytest.raises(EtcdAuthError, match="permission denied"):
            await client.txn([], [PutOp("elsewhere/a", b"1")])
        # Simple tokens expire after --auth-token-ttl (2 s); the next request renews it.
        expired_after = time.monotonic() + 3

        async def later_request() -> bool:
            if time.monotonic() < expired_after:
                return False
            return bool(await client.get_prefix("kitex/"))

        await async_wait_for(later_request, timeout=20, what="a request after token expiry")
    finally:
        await client.close()
    wrong = EtcdClient(EtcdTarget(tuple(auth.endpoints), username="kitex", password="nope"))
    with pytest.raises(EtcdAuthError, match="refused the credentials"):
        await wrong.get_prefix("kitex/")
    await wrong.close()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(EtcdTarget(tuple(auth.endpoints), username="kitex",
                                           password=PASSWORD))
