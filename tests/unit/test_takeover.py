"""A lease TTL that a leader crash could outlast is refused at start."""

from __future__ import annotations

import click
import pytest

from kitex_etcd_operator.leader import ElectionConfig
from kitex_etcd_operator.runner import check_takeover_fits


def test_a_ttl_shorter_than_a_takeover_is_refused() -> None:
    with pytest.raises(click.UsageError, match="--lease-ttl 20s is shorter than a leader"):
        check_takeover_fits(ElectionConfig(namespace="ns"), 20)


def test_the_default_ttl_fits_the_default_election() -> None:
    check_takeover_fits(ElectionConfig(namespace="ns"), 60)
