"""Real etcd servers on 127.0.0.1: one member or a cluster, plain or TLS, with or without auth.

Members keep their data directory and ports across ``stop_member`` /
``start_member``, so a test can take one down and bring the same member back.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import pki
from .build import ensure_etcd
from .processes import (
    Process,
    StartError,
    free_port,
    register_cleanup,
    unregister_cleanup,
    wait_until,
)

START_TIMEOUT = 60.0
_PORT_ATTEMPTS = 3


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: Process | None = None


class EtcdCluster:
    """A running etcd cluster; ``endpoints`` are its client URLs."""

    def __init__(
        self,
        workdir: Path,
        members: list[_Member],
        tls: bool,
        client_cert_auth: bool,
        extra: list[str],
    ) -> None:
        self.workdir = workdir
        self.members = members
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.extra = extra
        self.bin = ensure_etcd()
        self.ca_path: Path | None = None
        self.client_cert_path: Path | None = None
        self.client_key_path: Path | None = None
        self.ca: pki.CA | None = None
        self.root_password: str | None = None
        self._cleanup = register_cleanup(self.stop)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        members: int = 1,
        tls: bool = False,
        client_cert_auth: bool = False,
        extra_args: list[str] | None = None,
    ) -> EtcdCluster:
        """Start and wait until every member is healthy (with a deadline).

        A failed start stops whatever it spawned before raising, so nothing
        outlives the exception (nor a Ctrl-C). Ports are picked free but may be
        taken by a neighbour before etcd binds them: that case alone is retried
        with fresh ports and a fresh data directory.
        """
        workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            base = workdir / f"try{attempt}" if attempt else workdir
            nodes = [
                _Member(f"m{i}", free_port(), free_port(), base / f"m{i}.etcd")
                for i in range(members)
            ]
            cluster = cls(workdir, nodes, tls, client_cert_auth, list(extra_args or []))
            try:
                if tls:
                    cluster._write_pki()
                for i in range(members):
                    cluster._spawn(i, new=True)
                cluster.wait_healthy()
            except StartError as exc:
                cluster.stop()
                if "address already in use" not in str(exc) or attempt + 1 == _PORT_ATTEMPTS:
                    raise
                continue
            except BaseException:
                cluster.stop()
                raise
            return cluster
        raise AssertionError("unreachable")

    # --- endpoints and files ----------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoints(self) -> list[str]:
        return [f"{self.scheme}://127.0.0.1:{m.client_port}" for m in self.members]

    def _write_pki(self) -> None:
        self.ca = pki.make_ca("kitex-etcd-operator test etcd CA")
        pki_dir = self.workdir / "pki"
        self.ca_path = self.ca.write(pki_dir, "ca")
        cert, key = pki.issue(self.ca, "etcd", sans=["127.0.0.1", "localhost"])
        (pki_dir / "server.crt").write_bytes(cert)
        (pki_dir / "server.key").write_bytes(key)
        cert, key = pki.issue(self.ca, "client", server=False)
        self.client_cert_path = pki_dir / "client.crt"
        self.client_key_path = pki_dir / "client.key"
        self.client_cert_path.write_bytes(cert)
        self.client_key_path.write_bytes(key)

    def _argv(self, i: int, new: bool) -> list[str]:
        m = self.members[i]
        peers = ",".join(f"{n.name}=http://127.0.0.1:{n.peer_port}" for n in self.members)
        argv = [
            str(self.bin / "etcd"),
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={self.scheme}://127.0.0.1:{m.client_port}",
            f"--advertise-client-urls={self.scheme}://127.0.0.1:{m.client_port}",
            f"--listen-peer-urls=http://127.0.0.1:{m.peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{m.peer_port}",
            f"--initial-cluster={peers}",
            "--initial-cluster-token=kitex-test",
            f"--initial-cluster-state={'new' if new else 'existing'}",
            "--listen-metrics-urls=",
            "--log-level=warn",
            "--quota-backend-bytes=" + str(2 * 1024**3),
            *self.extra,
        ]
        if self.tls:
            pki_dir = self.workdir / "pki"
            argv += [
                f"--cert-file={pki_dir / 'server.crt'}",
                f"--key-file={pki_dir / 'server.key'}",
            ]
            if self.client_cert_auth:
                argv += ["--client-cert-auth", f"--trusted-ca-file={self.ca_path}"]
        return argv

    def _spawn(self, i: int, new: bool) -> None:
        m = self.members[i]
        log = m.data_dir.parent / f"{m.name}.log"
        m.process = Process(f"etcd {m.name}", self._argv(i, new), log)

    # --- health and control -------------------------------------------------

    def etcdctl(
        self,
        *args: str,
        user: str | None = None,
        endpoints: list[str] | None = None,
        check: bool = True,
    ) -> str:
        """Run etcdctl against the cluster, with its TLS files; ``user`` is "name:password"."""
        argv = [
            str(self.bin / "etcdctl"),
            f"--endpoints={','.join(endpoints or self.endpoints)}",
            "--dial-timeout=3s",
            "--command-timeout=10s",
        ]
        if self.tls:
            argv.append(f"--cacert={self.ca_path}")
            if self.client_cert_auth:
                argv += [f"--cert={self.client_cert_path}", f"--key={self.client_key_path}"]
        if user is None and self.root_password is not None:
            user = f"root:{self.root_password}"
        if user is not None:
            argv.append(f"--user={user}")
        proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _healthy(self, i: int) -> bool:
        m = self.members[i]
        out = self.etcdctl(
            "endpoint",
            "health",
            "-w",
            "json",
            check=False,
            endpoints=[f"{self.scheme}://127.0.0.1:{m.client_port}"],
        )
        try:
            return all(item.get("health") for item in json.loads(out))
        except ValueError:
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        for i, m in enumerate(self.members):
            if m.process is not None:
                wait_until(
                    functools.partial(self._healthy, i),
                    timeout=timeout,
                    what=f"etcd member {m.name} healthy",
                    proc=m.process,
                )

    def stop_member(self, i: int) -> None:
        m = self.members[i]
        if m.process is not None:
            m.process.stop()
            m.process = None

    def start_member(self, i: int) -> None:
        """Bring a stopped member back with its data and ports."""
        if self.members[i].process is None:
            self._spawn(i, new=False)
            wait_until(
                lambda: self._healthy(i),
                timeout=START_TIMEOUT,
                what=f"etcd member {self.members[i].name} back",
                proc=self.members[i].process,
            )

    def kill_member(self, i: int) -> None:
        """SIGKILL, as a crash or an OOM kill: no clean shutdown of the member."""
        m = self.members[i]
        if m.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(m.process.pid, signal.SIGKILL)
            m.process.stop()
            m.process = None

    def start_members(self) -> None:
        """Bring every stopped member back at once (one alone has no quorum to be healthy)."""
        for i, m in enumerate(self.members):
            if m.process is None:
                self._spawn(i, new=False)
        self.wait_healthy()

    def enable_auth(self, root_password: str) -> None:
        """Create root with ``root_password`` and turn authentication on."""
        self.etcdctl("user", "add", f"root:{root_password}")
        self.etcdctl("auth", "enable")
        self.root_password = root_password

    def add_user(self, name: str, password: str, *, prefix: str) -> None:
        """A user whose role may read and write only keys under ``prefix``."""
        role = f"{name}-role"
        self.etcdctl("role", "add", role)
        self.etcdctl("role", "grant-permission", role, "--prefix=true", "readwrite", prefix)
        self.etcdctl("user", "add", f"{name}:{password}")
        self.etcdctl("user", "grant-role", name, role)

    def stop(self) -> None:
        for i in range(len(self.members)):
            self.stop_member(i)
        unregister_cleanup(self._cleanup)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["EtcdCluster", "StartError"]
