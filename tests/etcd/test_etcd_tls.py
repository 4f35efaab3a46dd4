"""Mutual TLS with certificates made by pki.py, and every way it can be wrong, said plainly."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pytest

from kitex_devcluster import pki
from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdCertificateExpired, EtcdClient, EtcdConfig, EtcdTLSError
from kitex_etcd_operator.writes import Put

MakeClient = Callable[[EtcdConfig], EtcdClient]
DIAL = 2.0


def tls_config(cluster: EtcdCluster, *, ca: bytes | None = None, cert: bytes | None = None,
               key: bytes | None = None) -> EtcdConfig:
    assert cluster.ca_path and cluster.client_cert_path and cluster.client_key_path
    return EtcdConfig(tuple(cluster.endpoints), dial_timeout=DIAL,
                      ca_pem=ca or cluster.ca_path.read_bytes(),
                      cert_pem=cert or cluster.client_cert_path.read_bytes(),
                      key_pem=key or cluster.client_key_path.read_bytes())


async def refused(client: EtcdClient, pattern: str) -> None:
    """The request fails with an EtcdTLSError matching ``pattern``, long before the dial
    timeout: a handshake failure is an answer, not a hang."""
    started = time.monotonic()
    with pytest.raises(EtcdTLSError, match=pattern) as caught:
        await client.get_prefix("tls/")
    assert time.monotonic() - started < DIAL
    print(f"\n{caught.value}")


async def test_mutual_tls_with_files_like_registry_etcds_with_tls_opt(
        etcd_tls: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    assert etcd_tls.endpoints[0].startswith("https://127.0.0.1:")
    config = EtcdConfig.from_files(etcd_tls.endpoints, ca_file=etcd_tls.ca_path,
                                   cert_file=etcd_tls.client_cert_path,
                                   key_file=etcd_tls.client_key_path)
    client = make_client(config)
    assert await client.txn([], [Put(prefix + "k", b"v")])
    assert [kv.value for kv in (await client.get_prefix(prefix))[0]] == [b"v"]
    assert etcd_tls.etcdctl("get", prefix + "k", "--print-value-only").strip() == "v"


async def test_a_wrong_ca(etcd_tls: EtcdCluster, make_client: MakeClient) -> None:
    other = pki.make_ca("not the etcd CA")
    await refused(make_client(tls_config(etcd_tls, ca=other.cert_pem)),
                  r"TLS handshake with etcd at 127\.0\.0\.1:\d+ failed: its server "
                  r"certificate is not trusted: "
                  r"unable to get local issuer certificate \(is the CA the one")


async def test_a_client_certificate_from_another_ca(
        etcd_tls: EtcdCluster, make_client: MakeClient) -> None:
    cert, key = pki.issue(pki.make_ca("rogue"), "intruder", server=False)
    await refused(make_client(tls_config(etcd_tls, cert=cert, key=key)),
                  r"rejected the TLS session.*client certificate signed by the CA")


async def test_an_expired_client_certificate(
        etcd_tls: EtcdCluster, make_client: MakeClient) -> None:
    assert etcd_tls.ca is not None
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    cert, key = pki.issue(etcd_tls.ca, "expired", server=False, not_before=ended, days=1)
    client = make_client(tls_config(etcd_tls, cert=cert, key=key))
    await refused(client, r"^client certificate expired: .* CN=expired expired at \d{4}-\d\d-\d\d")
    with pytest.raises(EtcdCertificateExpired):
        await client.connect()


async def test_no_client_certificate_where_etcd_requires_one(
        etcd_tls: EtcdCluster, make_client: MakeClient) -> None:
    assert etcd_tls.ca_path is not None
    config = EtcdConfig(tuple(etcd_tls.endpoints), ca_pem=etcd_tls.ca_path.read_bytes(),
                        dial_timeout=DIAL)
    await refused(make_client(config), "requires a client certificate and none was given")


async def test_plain_text_to_a_tls_port(etcd_tls: EtcdCluster, make_client: MakeClient) -> None:
    config = EtcdConfig(tuple(e.split("://")[1] for e in etcd_tls.endpoints), dial_timeout=DIAL)
    await refused(make_client(config), r"if it serves TLS, use an https:// endpoint")


async def test_tls_to_a_plain_port(etcd_plain: EtcdCluster, etcd_tls: EtcdCluster,
                                   make_client: MakeClient) -> None:
    config = tls_config(etcd_tls)
    config = EtcdConfig(tuple(e.replace("http://", "https://") for e in etcd_plain.endpoints),
                        ca_pem=config.ca_pem, cert_pem=config.cert_pem, key_pem=config.key_pem,
                        dial_timeout=DIAL)
    await refused(make_client(config), "TLS handshake with etcd at .* failed")
