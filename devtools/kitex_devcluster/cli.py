"""``kitex-devcluster ...``: build, start and stop the local cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The local demo and test cluster (etcd, Kubernetes, kwok) on 127.0.0.1."""


@main.command()
def build() -> None:
    """Build etcd, Kubernetes, kwok, helm and actionlint into the cache (first run: ~20 min)."""
    from .build import cache_root, ensure_release_tools, ensure_tools

    click.echo(f"Building into {cache_root()} (first run ~15 min, then instant) ...", err=True)
    tools = ensure_tools()
    for name, path in vars(tools).items():
        click.echo(f"{name:24} {path}")
    for path in ensure_release_tools():
        click.echo(f"{path.name:24} {path}")


def _pid_alive(pid: int) -> bool:
    """True for a live process, false for none or a zombie (a killed daemon
    stays a zombie until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _runs_our_binary(pid: int) -> bool:
    from .build import cache_root

    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, UnicodeDecodeError):
        return False
    return exe.startswith(str(cache_root()) + "/")


def _print_state(kubeconfig: str, server: str, endpoints: list[str]) -> None:
    click.echo(f"export KUBECONFIG={kubeconfig}")
    click.echo(f"# apiserver:     {server}")
    click.echo(f"# registry etcd: {','.join(endpoints)}")
    click.echo("# stop with: kitex-devcluster down (or make cluster-down)")


@main.command()
@click.option(
    "--background", is_flag=True,
    help="Return once the cluster is ready; stop it with `kitex-devcluster down`.",
)
@click.option("--nodes", default=2, show_default=True, help="Number of kwok nodes.")
def up(background: bool, nodes: int) -> None:
    """Start Kubernetes + kwok + the registry etcd; print KUBECONFIG and the etcd endpoint."""
    from .build import cache_root, ensure_tools
    from .cluster import State, state_file

    path = state_file()
    if path.exists():
        old = State.load(path)
        if _pid_alive(old.pid):
            click.echo(f"already running (pid {old.pid}):", err=True)
            _print_state(old.kubeconfig, old.server, old.registry_endpoints)
            return
        path.unlink()
    ensure_tools()  # build in the foreground, so the user sees the progress
    if background:
        _up_background(path, cache_root() / "devcluster.log", nodes)
    else:
        _up_foreground(path, nodes)


def _up_foreground(path: Path, nodes: int) -> None:
    from .build import ensure_tools
    from .cluster import DevCluster

    started = time.monotonic()
    cluster = DevCluster.start(ensure_tools(), nodes=nodes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cluster.state().dump(path)
        click.echo(f"# ready in {time.monotonic() - started:.1f} s", err=True)
        _print_state(str(cluster.kube.kubeconfig), cluster.kube.server, cluster.registry_endpoints)
        sys.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1):
            if not all(p.alive() for p in cluster.kube.processes):
                dead = [p for p in cluster.kube.processes if not p.alive()]
                click.echo(str(dead[0].failure("died")), err=True)
                break
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        cluster.stop()


def _up_background(path: Path, log: Path, nodes: int) -> None:
    from .cluster import State

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "kitex_devcluster", "up", f"--nodes={nodes}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while not path.exists():
        if child.poll() is not None:
            raise click.ClickException(
                f"the cluster failed to start (exit {child.returncode}); see {log}:\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            )
        if time.monotonic() > deadline:
            child.terminate()
            raise click.ClickException(f"the cluster was not ready after 300 s; see {log}")
        time.sleep(0.2)
    state = State.load(path)
    click.echo(f"# running in the background (pid {state.pid}, log {log})", err=True)
    _print_state(state.kubeconfig, state.server, state.registry_endpoints)


@main.command()
def down() -> None:
    """Stop the cluster that `kitex-devcluster up --background` started."""
    from .cluster import State, state_file

    path = state_file()
    if not path.exists():
        click.echo("no dev cluster is running", err=True)
        return
    state = State.load(path)
    if _pid_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Whatever the daemon could not stop (it was SIGKILLed, say) goes now;
    # only groups still led by one of our cached binaries, never a reused pid.
    groups = [g for g in state.pgids if _runs_our_binary(g)]
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_pid_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    workdir = Path(state.workdir)
    if workdir.name.startswith("kitex-dev-"):  # the daemon's own temp dir
        shutil.rmtree(workdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    click.echo("dev cluster stopped", err=True)


@main.command()
@click.option("--cycles", type=int, default=None,
              help="Scale through the demo sequence this many times (default: until Ctrl-C).")
@click.option("--pause", type=float, default=3.0, show_default=True,
              help="Seconds between scaling steps.")
def demo(cycles: int | None, pause: float) -> None:
    """Local cluster + etcd + the operator; watch a Deployment's instances as Kitex sees them."""
    from .demo import run_demo

    try:
        run_demo(cycles, pause)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; everything stopped", err=True)
