"""``kitex-etcd-operator dev ...``: build, start and stop the local cluster."""

from __future__ import annotations

import click


@click.group()
def dev() -> None:
    """The local demo and test cluster (etcd, Kubernetes, kwok) on 127.0.0.1."""
