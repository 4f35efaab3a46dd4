"""What the registry tests share: an etcd of the test's own, which tests may stop."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster


@pytest.fixture
def etcd(private_etcd: Callable[..., EtcdCluster]) -> EtcdCluster:
    return private_etcd()
