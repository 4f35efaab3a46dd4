"""The command line: ``run`` the operator, and inspect etcd and the cluster.

Each subcommand lives with the layer it exposes; this module only assembles
them, so importing it stays cheap (``--help`` must not start kopf).

Two entry points share the commands: ``kitex-etcd-operator`` (all of them)
and ``kubectl-kitex``, the kubectl plugin (``kubectl kitex ...``) with the
operational ones only.
"""

from __future__ import annotations

import click

from . import __version__

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="kitex-etcd-operator")
def main() -> None:
    """Registers ready Kubernetes pods as Kitex instances in etcd."""


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="kubectl-kitex")
def kubectl_kitex() -> None:
    """kubectl plugin of kitex-etcd-operator: what Kitex clients see, and what would change.

    Installed with the package as the `kubectl-kitex` command: with it on PATH,
    `kubectl kitex status`, `kubectl kitex resolve SERVICE`, ...
    """


def _register() -> None:
    from .startup import collector_paused, import_aiohttp

    with collector_paused():
        import_aiohttp()
        from .commands import diff, purge, resolve, status
        from .runner import run

    for command in (run, resolve, diff, status, purge):
        main.add_command(command)
    for command in (resolve, diff, status, purge):
        kubectl_kitex.add_command(command)


_register()
