"""Real etcd servers for the connection layer's tests, in every mode it must handle.

The clusters that tests only read from or write under their own prefix are
session-scoped; the 3-member cluster is per test, because tests stop members.
None of these fixtures needs the Kubernetes tools: only etcd is built.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
from tests.etcd.etcd_auth_user import AUTH_PASSWORD, AUTH_PREFIX, AUTH_TOKEN_TTL, AUTH_USER


@pytest.fixture(scope="session")
def etcd_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One member, no TLS, no auth."""
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd-plain"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd_three(private_etcd: Callable[..., EtcdCluster]) -> EtcdCluster:
    """Three members, fresh per test: tests stop and restart members."""
    return private_etcd("etcd-three", members=3)


@pytest.fixture(scope="session")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """TLS with client certificates required (``--client-cert-auth``), from pki.py."""
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd-tls"), tls=True,
                                client_cert_auth=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def etcd_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """Auth on, simple tokens that expire after AUTH_TOKEN_TTL s, and a user whose
    role may only read and write under AUTH_PREFIX."""
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd-auth"), extra_args=[
        "--auth-token=simple", f"--auth-token-ttl={AUTH_TOKEN_TTL}"])
    try:
        cluster.enable_auth("root-Pa55")
        cluster.add_user(AUTH_USER, AUTH_PASSWORD, prefix=AUTH_PREFIX)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[[EtcdConfig], EtcdClient]]:
    """Clients closed at teardown, whatever the test did with them."""
    clients: list[EtcdClient] = []

    def make(config: EtcdConfig) -> EtcdClient:
        clients.append(EtcdClient(config))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing an etcd never see each other."""
    return f"t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def dead_endpoint() -> str:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts TCP connections (in the kernel's backlog) and never says a
    word: only a deadline gets a client out of it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"
