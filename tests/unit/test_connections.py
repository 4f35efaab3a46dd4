"""Where a connection's credentials come from, and when no connection is made.

No etcd here: ``EtcdConnections.resolve`` reads the flags' files and the
Secrets into an ``EtcdConfig``; the connecting itself is tested against etcd
(``tests/etcd``, ``tests/registry``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitex_etcd_operator.connections import (
    ConnectionsClosed,
    CredentialsUnavailable,
    EtcdAccessError,
    EtcdConnections,
)
from kitex_etcd_operator.desired import EtcdAccess
from kitex_etcd_operator.kubeapi import ApiError, SecretNotFound
from kitex_etcd_operator.settings import DefaultEtcd, Settings
from tests.support.helpers import FailingSecrets

PEM_CA, PEM_CERT, PEM_KEY = b"-----CA-----", b"-----CERT-----", b"-----KEY-----"


def with_secret(error: Exception) -> EtcdConnections:
    return EtcdConnections(Settings(etcd=DefaultEtcd(secret="ops/etcd-creds")),
                           FailingSecrets(error))  # type: ignore[arg-type]


async def test_an_api_server_that_cannot_hand_over_a_secret_is_credentials_unavailable(
        ) -> None:
    """Not an ``ApiError`` out of a worker (a crash): a failure the worker retries."""
    with pytest.raises(CredentialsUnavailable,
                       match=r"--etcd-secret: .*HTTP 503 Service Unavailable.*retrying"):
        await with_secret(ApiError(503, "Service Unavailable")).resolve(EtcdAccess())


async def test_a_secret_missing_or_forbidden_stays_an_unusable_target() -> None:
    """403 and 404 (``SecretNotFound``) keep their meaning: the target is unusable, and
    a removal lets its entries expire rather than wait for a Secret that is gone."""
    with pytest.raises(EtcdAccessError, match="--etcd-secret: Secret ops/etcd-creds not found"):
        await with_secret(SecretNotFound("Secret ops/etcd-creds not found")).resolve(
            EtcdAccess())


async def test_closed_connections_refuse_to_connect_again() -> None:
    """After the controller's stop nothing connects (and keeps leases alive) again."""
    connections = EtcdConnections(Settings(), None)
    await connections.close()
    with pytest.raises(ConnectionsClosed):
        await connections.get(EtcdAccess())


def files(tmp_path: Path) -> EtcdConnections:
    for name, data in (("ca.crt", PEM_CA), ("tls.crt", PEM_CERT), ("tls.key", PEM_KEY)):
        (tmp_path / name).write_bytes(data)
    return EtcdConnections(Settings(etcd=DefaultEtcd(
        endpoints=("https://e:2379",), ca_file=tmp_path / "ca.crt",
        cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key")), None)


async def test_the_flags_files_are_read_again_only_once_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every full sync resolves the default etcd's credentials: 1,000 services read
    the three files about 100 times a second, on the event loop."""
    connections = files(tmp_path)
    reads: list[str] = []
    read_bytes = Path.read_bytes

    def counted(path: Path) -> bytes:
        reads.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    first = await connections.resolve(EtcdAccess())
    assert (first.ca_pem, first.cert_pem, first.key_pem) == (PEM_CA, PEM_CERT, PEM_KEY)
    assert sorted(reads) == ["ca.crt", "tls.crt", "tls.key"]
    for _ in range(5):
        assert await connections.resolve(EtcdAccess()) == first
    assert len(reads) == 3, "an unchanged file was read again"


async def test_rotated_files_are_picked_up(tmp_path: Path) -> None:
    """A certificate rotated in place, or by a Secret volume's symlink swap."""
    connections = files(tmp_path)
    await connections.resolve(EtcdAccess())
    (tmp_path / "tls.key").write_bytes(PEM_KEY + b"\n")  # in place, another size
    new = tmp_path / "ca-new.crt"
    new.write_bytes(PEM_CA + b"\n")
    new.replace(tmp_path / "ca.crt")  # another inode, as a symlink swap gives
    config = await connections.resolve(EtcdAccess())
    assert (config.ca_pem, config.cert_pem, config.key_pem) == (
        PEM_CA + b"\n", PEM_CERT, PEM_KEY + b"\n")


async def test_a_missing_file_is_an_error_not_old_bytes(tmp_path: Path) -> None:
    connections = files(tmp_path)
    await connections.resolve(EtcdAccess())
    (tmp_path / "ca.crt").unlink()
    with pytest.raises(FileNotFoundError):
        await connections.resolve(EtcdAccess())
