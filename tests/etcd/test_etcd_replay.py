"""Which requests are sent again after a failure that leaves their fate unknown.

The proxy passes a request to etcd, which applies it, and swallows the answer:
the client only sees its deadline pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import Compare, EtcdClient, EtcdConfig, EtcdUnavailable
from kitex_etcd_operator.writes import Put
from tests.etcd.etcd_proxy import SwallowingProxy

MakeClient = Callable[[EtcdConfig], EtcdClient]


@pytest.fixture
async def proxy(etcd_plain: EtcdCluster) -> AsyncIterator[SwallowingProxy]:
    proxy = await SwallowingProxy(etcd_plain.endpoints[0].split("://")[1]).start()
    yield proxy
    await proxy.close()


async def connected_through(proxy: SwallowingProxy, etcd: EtcdCluster,
                            make_client: MakeClient) -> EtcdClient:
    """A client on the proxy first, the real endpoint second, already connected."""
    client = make_client(EtcdConfig((proxy.endpoint, etcd.endpoints[0]), request_timeout=1.0))
    await client.status()
    assert client.current_endpoint == proxy.endpoint
    proxy.swallow = True
    return client


async def test_an_unguarded_write_is_not_sent_twice(
        proxy: SwallowingProxy, etcd_plain: EtcdCluster, make_client: MakeClient,
        prefix: str) -> None:
    client = await connected_through(proxy, etcd_plain, make_client)
    with pytest.raises(EtcdUnavailable, match="may have been applied, so it was not sent again"):
        await client.txn([], [Put(prefix + "k", b"v")])
    kvs, _ = await client.get_prefix(prefix)  # a read is replayed: on the next endpoint
    assert client.current_endpoint != proxy.endpoint
    assert [kv.value for kv in kvs] == [b"v"]  # it had landed, once
    assert kvs[0].create_revision == kvs[0].mod_revision


async def test_a_guarded_write_is_sent_again_and_its_compare_tells(
        proxy: SwallowingProxy, etcd_plain: EtcdCluster, make_client: MakeClient,
        prefix: str) -> None:
    client = await connected_through(proxy, etcd_plain, make_client)
    key = prefix + "k"
    # The first copy landed through the proxy; the replay on the real endpoint fails its
    # compare, so the caller hears "not applied" and re-reads, as the registry does.
    assert not await client.txn([Compare.absent(key)], [Put(key, b"v")])
    assert client.current_endpoint != proxy.endpoint
    kvs, _ = await client.get_prefix(prefix)
    assert [kv.value for kv in kvs] == [b"v"]
    assert kvs[0].create_revision == kvs[0].mod_revision  # written once


async def test_a_read_and_a_keepalive_are_sent_again(
        proxy: SwallowingProxy, etcd_plain: EtcdCluster, make_client: MakeClient,
        prefix: str) -> None:
    client = await connected_through(proxy, etcd_plain, make_client)
    assert await client.get_prefix(prefix) is not None
    lease = await client.grant(30)
    assert await client.keepalive(lease) == 30
    assert client.current_endpoint == etcd_plain.endpoints[0].split("://")[1]
