"""A real Kubernetes control plane on 127.0.0.1 whose nodes are kwok fakes.

kube-apiserver, kube-controller-manager and kube-scheduler are the real
binaries (see :mod:`.build`); kwok stands in for kubelets, so a Deployment
really gets scheduled, Running, Ready pods with pod IPs, without containers.

Every process runs in its own process group and is registered for cleanup at
interpreter exit and on SIGTERM/SIGHUP, so neither a failing test nor Ctrl-C
leaves a process or a port behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import pki
from .build import Tools
from .etcd import EtcdCluster
from .processes import (
    Process,
    free_port,
    install_signal_handlers,
    register_cleanup,
    unregister_cleanup,
    wait_until,
)

# Nodes kwok manages carry this annotation; --manage-nodes-with-annotation-selector
# picks them, so a stray real node would never be faked.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"
# Room for a million pod IPs: the large benchmark runs 100,000 pods, beyond a /16.
POD_CIDR = "10.240.0.1/12"
DEFAULT_TIMEOUT = 120.0


# ---------------------------------------------------------------- certificates


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    *,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
    user: str = "admin",
) -> Path:
    """A self-contained kubeconfig (certificates inline, so it can be copied)."""
    creds: dict[str, str] = {}
    if cert_pem is not None and key_pem is not None:
        creds = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    if token is not None:
        creds["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    path.chmod(0o600)
    return path


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- the cluster


class KubeCluster:
    """A running control plane; use :meth:`start`, then :meth:`stop` (or ``with``)."""

    def __init__(self, tools: Tools, workdir: Path, owns_workdir: bool) -> None:
        self.tools = tools
        self.workdir = workdir
        self._owns_workdir = owns_workdir
        self.pki_dir = workdir / "pki"
        self.log_dir = workdir / "logs"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.server = ""
        self.ca_pem = b""
        self.etcd: EtcdCluster | None = None
        self.processes: list[Process] = []
        self.node_names: list[str] = []
        self._apiserver_argv: list[str] = []
        self._cleanup = register_cleanup(self.stop)

    # -- start

    @classmethod
    def start(
        cls,
        tools: Tools,
        *,
        workdir: Path | None = None,
        nodes: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> KubeCluster:
        """Start everything and return once a pod could be scheduled and run:
        /readyz green, the default ServiceAccount present, ``nodes`` kwok nodes Ready."""
        install_signal_handlers()
        owns = workdir is None
        wd = Path(tempfile.mkdtemp(prefix="kitex-kube-")) if workdir is None else workdir
        wd.mkdir(parents=True, exist_ok=True)
        cluster = cls(tools, wd, owns)
        try:
            cluster._start(nodes, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self, nodes: int, timeout: float) -> None:
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.etcd = EtcdCluster.start(self.workdir / "etcd", members=1)
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        files = self._write_pki()
        self._apiserver_argv = self._apiserver_args(port, files)
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv)
        wait_until(
            lambda: self._get("/readyz") == "ok",
            timeout=timeout,
            what=f"{self.server}/readyz",
            proc=apiserver,
        )
        kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
        kcm = self._spawn("kube-controller-manager", self._kcm_args(kcm_port, files))
        sched = self._spawn("kube-scheduler", self._scheduler_args(sched_port))
        kwok = self._spawn("kwok", self._kwok_args(kwok_port))
        for proc, p in ((kcm, kcm_port), (sched, sched_port)):
            url = f"https://127.0.0.1:{p}/healthz"
            wait_until(_healthz(url), timeout=timeout, what=url, proc=proc)
        self._create_nodes(nodes)
        wait_until(
            lambda: self._nodes_ready(),
            timeout=timeout,
            what=f"{nodes} kwok nodes Ready",
            proc=kwok,
        )
        wait_until(
            lambda: self._default_service_account(),
            timeout=timeout,
            what="ServiceAccount default/default (token controller)",
            proc=kcm,
        )

    def restart_apiserver(self, timeout: float = DEFAULT_TIMEOUT) -> float:
        """Stop kube-apiserver (SIGTERM, as a rollout would) and start it again with
        the same flags and port; returns once /readyz is green, with the seconds
        it took. Fault tests use it: every client's watch is cut, and the new
        watch cache starts from the current revision."""
        started = time.monotonic()
        old = next(p for p in self.processes if p.name == "kube-apiserver")
        old.stop()
        self.processes.remove(old)
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv)
        wait_until(lambda: self._get("/readyz") == "ok", timeout=timeout,
                   what=f"{self.server}/readyz after a restart", proc=apiserver)
        return time.monotonic() - started

    def _write_pki(self) -> dict[str, Path]:
        d = self.pki_dir
        ca = pki.make_ca("kitex-dev-kubernetes-ca")
        self.ca_pem = ca.cert_pem
        serving = pki.issue(
            ca,
            "kube-apiserver",
            sans=[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            client=False,
            server=True,
        )
        # The apiserver's client identity towards webhooks/aggregated APIs.
        admin = pki.issue(ca, "kubernetes-admin", organizations=["system:masters"], server=False)
        component = pki.issue(
            ca, "kitex-dev-components", organizations=["system:masters"], server=False
        )
        files = {
            "ca": _write(d / "ca.crt", ca.cert_pem, 0o644),
            "ca_key": _write(d / "ca.key", ca.key_pem),
            "serving_cert": _write(d / "apiserver.crt", serving[0], 0o644),
            "serving_key": _write(d / "apiserver.key", serving[1]),
            "sa_key": _write(d / "sa.key", pki.make_rsa_key_pem()),
        }
        write_kubeconfig(
            self.kubeconfig, self.server, ca.cert_pem, cert_pem=admin[0], key_pem=admin[1]
        )
        self.component_kubeconfig = write_kubeconfig(
            self.workdir / "components.kubeconfig",
            self.server,
            ca.cert_pem,
            cert_pem=component[0],
            key_pem=component[1],
            user="components",
        )
        self._client_cert = (
            _write(d / "admin.crt", admin[0], 0o644),
            _write(d / "admin.key", admin[1]),
        )
        return files

    def _apiserver_args(self, port: int, f: dict[str, Path]) -> list[str]:
        assert self.etcd is not None
        return [
            str(self.tools.kube_apiserver),
            f"--etcd-servers={','.join(self.etcd.endpoints)}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.pki_dir}",
            f"--tls-cert-file={f['serving_cert']}",
            f"--tls-private-key-file={f['serving_key']}",
            f"--client-ca-file={f['ca']}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={f['sa_key']}",
            f"--service-account-signing-key-file={f['sa_key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # 127.0.0.1 is not a valid Endpoints address; nothing in-cluster
            # needs the kubernetes Service to resolve.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _kcm_args(self, port: int, f: dict[str, Path]) -> list[str]:
        kc = str(self.component_kubeconfig)
        return [
            str(self.tools.kube_controller_manager),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--leader-elect=false",
            "--controllers=*",
            # Both keys make ServiceAccounts usable: the token controller signs
            # with the private key, every namespace gets kube-root-ca.crt.
            f"--service-account-private-key-file={f['sa_key']}",
            f"--root-ca-file={f['ca']}",
            f"--cluster-signing-cert-file={f['ca']}",
            f"--cluster-signing-key-file={f['ca_key']}",
            "--use-service-account-credentials=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=1",
        ]

    def _scheduler_args(self, port: int) -> list[str]:
        kc = str(self.component_kubeconfig)
        return [
            str(self.tools.kube_scheduler),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def _kwok_args(self, port: int) -> list[str]:
        return [
            str(self.tools.kwok),
            f"--config={self.tools.kwok_stages}",
            f"--kubeconfig={self.component_kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{port}",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
        ]

    def _spawn(self, name: str, argv: list[str]) -> Process:
        proc = Process(name, argv, self.log_dir / f"{name}.log")
        self.processes.append(proc)
        return proc

    # -- API access

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        ctx.load_cert_chain(str(self._client_cert[0]), str(self._client_cert[1]))
        return ctx

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(
            self.server + path, context=self._ssl_context(), timeout=5
        ) as resp:
            return str(resp.read().decode())

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` with admin rights; the caller closes it."""
        from kubernetes import client, config

        cfg = client.Configuration()
        load: Any = config.load_kube_config
        load(config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl of the same release against this cluster."""
        return subprocess.run(
            [str(self.tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig that acts as ``namespace/service_account`` (a bound
        token from the TokenRequest API, one hour), for running the operator
        with only its own RBAC rights."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        return write_kubeconfig(
            path, self.server, self.ca_pem, token=token, user=f"{namespace}-{service_account}"
        )

    def _create_nodes(self, count: int) -> None:
        from kubernetes import client

        with self.api_client() as api:
            core: Any = client.CoreV1Api(api)
            for i in range(count):
                name = f"kwok-node-{i}"
                body = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {
                            KWOK_NODE_ANNOTATION: "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "kubernetes.io/role": "agent",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    },
                }
                core.create_node(body)
                self.node_names.append(name)

    def _nodes_ready(self) -> bool:
        from kubernetes import client

        with self.api_client() as api:
            nodes: list[Any] = client.CoreV1Api(api).list_node().items
        ready = {
            n.metadata.name
            for n in nodes
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        }
        return set(self.node_names) <= ready

    def _default_service_account(self) -> bool:
        from kubernetes import client

        with self.api_client() as api:
            client.CoreV1Api(api).read_namespaced_service_account("default", "default")
        return True

    # -- stop

    def stop(self) -> None:
        """Stop every process (kwok first, etcd last) and remove a temp workdir.
        Safe to call twice."""
        unregister_cleanup(self._cleanup)
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self.etcd is not None:
            etcd, self.etcd = self.etcd, None
            etcd.stop()
        if self._owns_workdir and not os.environ.get("KITEX_DEV_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthz(url: str) -> Callable[[], bool]:
    return lambda: _insecure_get(url) == "ok"


def _insecure_get(url: str) -> str:
    """GET a component's /healthz; its serving cert is self-signed at start."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
