"""The command line: ``run`` the operator, inspect etcd, and drive the dev cluster.

Each subcommand lives with the layer it exposes; this module only assembles
them, so importing it stays cheap (``--help`` must not start kopf).
"""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kitex-etcd-operator")
def main() -> None:
    """Registers ready Kubernetes pods as Kitex instances in etcd."""


def _register() -> None:
    from .commands import diff, purge, resolve, status
    from .devcluster.cli import dev
    from .runner import run

    for command in (run, resolve, diff, status, purge, dev):
        main.add_command(command)


_register()
