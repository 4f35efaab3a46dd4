"""The test infrastructure itself: certificates as asked, and etcd launches that clean up."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kitex_devcluster import pki
from kitex_devcluster.etcd import EtcdCluster
from kitex_devcluster.processes import StartError


def test_issue_with_sans_organizations_usages_and_dates(tmp_path: Path) -> None:
    ca = pki.make_ca("test CA")
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert_pem, key_pem = pki.issue(ca, "node", sans=["127.0.0.1", "::1", "etcd.local"],
                                  organizations=["system:masters"], server=False,
                                  not_before=start, days=2)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
        "system:masters"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["etcd.local"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=2)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    path = ca.write(tmp_path, "ca")
    assert path.read_bytes() == ca.cert_pem
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in pki.make_rsa_key_pem()


def etcd_processes_under(directory: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(directory).encode() in cmdline:
            found.append(int(pid))
    return found


def test_a_failed_start_says_why_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(StartError, match=r"(?s)etcd m0 died.*last lines of .*unknown-flag"):
        EtcdCluster.start(tmp_path / "bad", members=3, extra_args=["--unknown-flag"])
    assert etcd_processes_under(tmp_path) == []


def test_a_member_stops_and_comes_back_with_its_data_and_ports(tmp_path: Path) -> None:
    cluster = EtcdCluster.start(tmp_path / "c", members=3)
    try:
        endpoints = list(cluster.endpoints)
        cluster.etcdctl("put", "k", "v")
        cluster.stop_member(1)
        assert len(etcd_processes_under(tmp_path)) == 2
        cluster.start_member(1)
        assert cluster.endpoints == endpoints
        out = cluster.etcdctl("get", "k", "--print-value-only", endpoints=[endpoints[1]])
        assert out.strip() == "v"
    finally:
        cluster.stop()
    assert etcd_processes_under(tmp_path) == []
