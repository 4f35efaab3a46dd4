"""The dial timeout: an etcd that is not there fails fast, one that never answers fails on time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig, EtcdUnavailable

MakeClient = Callable[[EtcdConfig], EtcdClient]


async def test_nothing_listening_fails_at_once(dead_endpoint: str,
                                               make_client: MakeClient) -> None:
    client = make_client(EtcdConfig((dead_endpoint,)))  # the default 5 s dial timeout
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match=f"no etcd endpoint answered: etcd at "
                       f"{dead_endpoint} is unavailable: .*Connection refused"):
        await client.get_prefix("x/")
    assert time.monotonic() - started < 1.0


async def test_a_silent_endpoint_fails_within_the_dial_timeout(
        silent_endpoint: str, make_client: MakeClient) -> None:
    client = make_client(EtcdConfig((silent_endpoint,), dial_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match=r"did not answer within the dial timeout \(1 s\)"):
        await client.grant(10)
    took = time.monotonic() - started
    assert 0.9 < took < 2.0
    print(f"\nsilent endpoint given up after {took:.2f} s (dial timeout 1 s)")


async def test_dead_and_silent_endpoints_before_a_live_one_are_skipped(
        dead_endpoint: str, silent_endpoint: str, etcd_plain: EtcdCluster,
        make_client: MakeClient) -> None:
    live = etcd_plain.endpoints[0]
    client = make_client(EtcdConfig((dead_endpoint, silent_endpoint, live), dial_timeout=1.0))
    started = time.monotonic()
    assert (await client.get_prefix("nothing/"))[0] == []
    assert client.current_endpoint == live.split("://")[1]
    assert time.monotonic() - started < 2.0  # one dial timeout, for the silent one
