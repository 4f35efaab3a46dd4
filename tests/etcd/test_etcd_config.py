"""EtcdConfig and the pure parts of the layer: what is hidden, what is refused, what is replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
from aetcd import rpc

from kitex_etcd_operator.etcd import Compare, EtcdClient, EtcdConfig, txn_replay_safe
from kitex_etcd_operator.etcd.ops import txn_request
from kitex_etcd_operator.writes import Delete, Put

SECRET = "hunter2-not-for-logs"
PEM_CA, PEM_CERT, PEM_KEY = b"-----CA-----", b"-----CERT-----", b"-----KEY-----"


def full() -> EtcdConfig:
    return EtcdConfig(("https://etcd-0:2379", "etcd-1:2379"), username="kitex", password=SECRET,
                      ca_pem=PEM_CA, cert_pem=PEM_CERT, key_pem=PEM_KEY)


def test_secrets_never_appear_in_repr_str_or_the_clients_repr() -> None:
    config = full()
    for text in (repr(config), str(config), config.describe(), repr(EtcdClient(config))):
        assert SECRET not in text
        assert "KEY" not in text and "CERT" not in text
    assert str(config) == ("https://etcd-0:2379,etcd-1:2379 (TLS) with a client certificate "
                           "as kitex")


def test_configs_are_frozen_hashable_values() -> None:
    assert full() == full()
    assert len({full(), full()}) == 1
    rotated = EtcdConfig(full().endpoints, username="kitex", password="new",
                         ca_pem=PEM_CA, cert_pem=PEM_CERT, key_pem=PEM_KEY)
    assert rotated != full()  # a rotated password makes a new client
    with pytest.raises(AttributeError):
        full().password = "x"  # type: ignore[misc]


def test_endpoints_with_and_without_scheme() -> None:
    config = EtcdConfig(("http://10.0.0.1:2379/", "10.0.0.2:2379", "https://[fd00::1]:2379"))
    assert config.addresses() == ["10.0.0.1:2379", "10.0.0.2:2379", "[fd00::1]:2379"]
    assert config.tls  # one https endpoint turns TLS on for all
    assert not EtcdConfig(("127.0.0.1:2379",)).tls
    assert EtcdConfig(("127.0.0.1:2379",), ca_pem=PEM_CA).tls
    assert EtcdConfig(("127.0.0.1:2379",)).dial_timeout == 5.0  # registry-etcd's default


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"endpoints": ()}, "at least one endpoint"),
    ({"endpoints": "127.0.0.1:2379"}, "sequence"),
    ({"endpoints": ("ftp://x:1",)}, "not host:port"),
    ({"endpoints": ("x:1",), "cert_pem": PEM_CERT}, "needs its key"),
    ({"endpoints": ("x:1",), "username": "u"}, "both a username and a password"),
    ({"endpoints": ("x:1",), "dial_timeout": 0}, "positive"),
])
def test_inconsistent_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EtcdConfig(**kwargs)  # type: ignore[arg-type]


def test_loaded_from_files(tmp_path: Path) -> None:
    for name, data in (("ca.crt", PEM_CA), ("tls.crt", PEM_CERT), ("tls.key", PEM_KEY)):
        (tmp_path / name).write_bytes(data)
    from_files = EtcdConfig.from_files(["https://e:2379"], ca_file=tmp_path / "ca.crt",
                                       cert_file=tmp_path / "tls.crt",
                                       key_file=tmp_path / "tls.key")
    assert from_files == EtcdConfig(("https://e:2379",), ca_pem=PEM_CA, cert_pem=PEM_CERT,
                                    key_pem=PEM_KEY)
    assert from_files.tls


def test_which_transactions_are_replayed_after_an_ambiguous_failure() -> None:
    put, delete = Put("k", b"v", 7), Delete("k")
    assert txn_replay_safe([Compare.absent("k")], [put])
    assert txn_replay_safe([Compare.lease_is("k", 7)], [delete])
    assert txn_replay_safe([Compare.value_is("k", b"old")], [put])
    assert txn_replay_safe([], [])
    assert not txn_replay_safe([], [put])  # could overwrite another writer's value
    assert not txn_replay_safe([Compare.absent("other")], [put, delete])


def test_compares_are_etcd_equalities_on_create_revision_lease_and_value() -> None:
    absent, lease, value = (Compare.absent("k").message(), Compare.lease_is("k", 42).message(),
                            Compare.value_is("k", b"v").message())
    assert (absent.target, absent.create_revision) == (rpc.Compare.CREATE, 0)
    assert (lease.target, lease.lease) == (rpc.Compare.LEASE, 42)
    assert (value.target, value.value) == (rpc.Compare.VALUE, b"v")
    assert {absent.result, lease.result, value.result} == {rpc.Compare.EQUAL}
    assert {absent.key, lease.key, value.key} == {b"k"}


def test_a_transaction_carries_the_compares_given_then_each_writes_own_guard() -> None:
    ops = [Put("a", b"1", 5, expect_lease=0), Put("b", b"2", 5, expect_lease=7), Put("c", b"3", 5),
           Delete("d", expect_lease=7), Delete("e")]
    request = txn_request([Compare.value_is("x", b"v")], ops)
    assert list(request.compare) == [Compare.value_is("x", b"v").message(),
                                     Compare.absent("a").message(),
                                     Compare.lease_is("b", 7).message(),
                                     Compare.lease_is("d", 7).message()]
    assert list(request.success) == [
        rpc.RequestOp(request_put=rpc.PutRequest(key=b"a", value=b"1", lease=5)),
        rpc.RequestOp(request_put=rpc.PutRequest(key=b"b", value=b"2", lease=5)),
        rpc.RequestOp(request_put=rpc.PutRequest(key=b"c", value=b"3", lease=5)),
        rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=b"d")),
        rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=b"e"))]
