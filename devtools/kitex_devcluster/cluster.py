"""The whole local setup: a Kubernetes control plane plus the registry etcd.

The registry etcd (where Kitex instances are written) is separate from the
apiserver's own etcd, so a test can stop or break it without taking
Kubernetes down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .build import Tools, cache_root
from .etcd import EtcdCluster
from .kube import KubeCluster
from .processes import register_cleanup, unregister_cleanup


@dataclass(frozen=True)
class State:
    """What ``kitex-devcluster up`` publishes for ``down`` and for people: a JSON file."""

    pid: int
    workdir: str
    kubeconfig: str
    server: str
    registry_endpoints: list[str]
    pgids: list[int]

    def dump(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(**json.loads(path.read_text()))


def _etcd_pids(*clusters: EtcdCluster | None) -> list[int]:
    return [
        m.process.pid for c in clusters if c is not None for m in c.members if m.process is not None
    ]


def state_file() -> Path:
    return cache_root() / "devcluster.json"


class DevCluster:
    """Kubernetes (with kwok nodes) and a single-member registry etcd."""

    def __init__(self, kube: KubeCluster, registry: EtcdCluster, workdir: Path, owns: bool):
        self.kube = kube
        self.registry = registry
        self.workdir = workdir
        self._owns = owns
        self._cleanup = register_cleanup(self.stop)
        self._stopped = False

    @classmethod
    def start(cls, tools: Tools, *, workdir: Path | None = None, nodes: int = 2) -> DevCluster:
        owns = workdir is None
        wd = Path(tempfile.mkdtemp(prefix="kitex-dev-")) if workdir is None else workdir
        kube = KubeCluster.start(tools, workdir=wd / "kube", nodes=nodes)
        try:
            registry = EtcdCluster.start(wd / "registry-etcd", members=1)
        except BaseException:
            kube.stop()
            raise
        return cls(kube, registry, wd, owns)

    @property
    def registry_endpoints(self) -> list[str]:
        return list(self.registry.endpoints)

    def state(self) -> State:
        return State(
            pid=os.getpid(),
            workdir=str(self.workdir),
            kubeconfig=str(self.kube.kubeconfig),
            server=self.kube.server,
            registry_endpoints=self.registry_endpoints,
            pgids=[p.pid for p in self.kube.processes] + _etcd_pids(self.kube.etcd, self.registry),
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        unregister_cleanup(self._cleanup)
        try:
            self.registry.stop()
        finally:
            self.kube.stop()
            if self._owns and not os.environ.get("KITEX_DEV_KEEP_LOGS"):
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DevCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
