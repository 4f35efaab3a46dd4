"""Go builds of etcd, Kubernetes and kwok, cached outside the repo.

Nothing here is downloaded as a prebuilt binary: the only network this project
may use is the package registries, so every tool is built from its Go module.
The first build of Kubernetes takes ~15 minutes on 2 cores; afterwards a stamp
file makes :func:`ensure_tools` cost a few ``stat`` calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ETCD_VERSION = "v3.6.16"
KUBERNETES_VERSION = "v1.34.4"
# The staging modules (k8s.io/api, client-go, ...) are published as v0.X.Y
# for Kubernetes v1.X.Y.
KUBERNETES_STAGING_VERSION = "v0.34.4"
KWOK_VERSION = "v0.8.0"
# Release tooling checked by the tests: the Helm chart and the GitHub workflows.
HELM_VERSION = "v3.22.0"
ACTIONLINT_VERSION = "v1.7.12"

ETCD_BINARIES = ("etcd", "etcdctl")
KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
KWOK_BINARIES = ("kwok",)
# The kwok controller run on its own (not through kwokctl) loads no Stage
# unless given a config: these are the ones kwokctl would install, taken from
# the same module at build time so they always match the binary.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"[dev build] {line}", file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    """A Go build failed; the message carries the tail of its log."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of every binary the local cluster runs."""

    etcd: Path
    etcdctl: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path
    """kwok's default Stages, one multi-document YAML to pass as ``--config``."""


def cache_root() -> Path:
    """Honour XDG_CACHE_HOME so CI or a user can move the multi-GB cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kitex-etcd-operator"


def component_dir(component: str, version: str) -> Path:
    return cache_root() / f"{component}-{version}"


@contextlib.contextmanager
def _locked(path: Path, progress: Progress) -> Iterator[None]:
    """Serialize builds across processes (pytest-xdist, make and a test at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process building into {path.parent} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _stamp_matches(bindir: Path, spec: dict[str, object], binaries: tuple[str, ...]) -> bool:
    stamp = bindir / ".stamp"
    try:
        if json.loads(stamp.read_text()) != spec:
            return False
    except (OSError, ValueError):
        return False
    return all(os.access(bindir / name, os.X_OK) for name in binaries)


def _go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # A local toolchain must do: fetching another Go toolchain is not possible here.
    env.setdefault("GOTOOLCHAIN", "local")
    env.pop("GOFLAGS", None)
    env["GOFLAGS"] = "-buildvcs=false"
    if extra:
        env.update(extra)
    return env


def _run(
    cmd: list[str],
    *,
    cwd: Path,
    log: Path,
    progress: Progress,
    what: str,
    env: dict[str, str] | None = None,
) -> None:
    """Run one go command, its output appended to ``log``, with a heartbeat line
    every 30 s so a user waiting on a 15-minute build sees it is alive."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go >= 1.24")
    progress(f"{what}: {' '.join(cmd)}")
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            progress(f"{what}: still running ({time.monotonic() - started:.0f} s)")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            rc = subprocess.run(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env or _go_env()
            ).returncode
    finally:
        done.set()
        beat.join()
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {rc}); last lines of {log}:\n{tail}")
    progress(f"{what}: done in {time.monotonic() - started:.0f} s")


def _build_module(
    component: str,
    version: str,
    binaries: tuple[str, ...],
    go_mod: str,
    packages: dict[str, str],
    progress: Progress,
) -> Path:
    """Build ``packages`` (binary name -> import path) inside a consuming module.

    A consuming module is needed because ``go install pkg@version`` refuses
    modules whose go.mod has replace directives (etcd's and Kubernetes' do).
    """
    root = component_dir(component, version)
    bindir = root / "bin"
    spec: dict[str, object] = {"version": version, "go_mod": go_mod, "binaries": list(binaries)}
    if _stamp_matches(bindir, spec, binaries):
        return bindir
    with _locked(root / ".lock", progress):
        if _stamp_matches(bindir, spec, binaries):
            return bindir
        src = root / "src"
        src.mkdir(parents=True, exist_ok=True)
        bindir.mkdir(parents=True, exist_ok=True)
        log = root / "build.log"
        (src / "go.mod").write_text(go_mod)
        imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages.values())
        (src / "tools.go").write_text(
            f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"
        )
        progress(f"building {component} {version} into {bindir} (log: {log})")
        _run(["go", "mod", "tidy"], cwd=src, log=log, progress=progress, what=f"{component} deps")
        for name, pkg in packages.items():
            _run(
                ["go", "build", "-o", str(bindir / name), pkg],
                cwd=src,
                log=log,
                progress=progress,
                what=f"{component} {name}",
            )
        (bindir / ".stamp").write_text(json.dumps(spec))
    return bindir


def ensure_go_program(name: str, source: Path, progress: Progress = _stderr, *,
                      package: str = ".") -> Path:
    """The binary of ``package`` (a ``main`` package; the module's root by default)
    of the Go module in ``source``, built once and cached under a hash of its
    go.mod, go.sum and every .go file of the module, so that a change to a
    package it shares with another program rebuilds both."""
    digest = hashlib.sha256(package.encode() + b"\0")
    for path in sorted([source / "go.mod", source / "go.sum", *source.rglob("*.go")]):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    root = component_dir(name, f"src-{digest.hexdigest()[:16]}")
    binary = root / "bin" / name
    if os.access(binary, os.X_OK):
        return binary
    with _locked(root / ".lock", progress):
        if not os.access(binary, os.X_OK):
            binary.parent.mkdir(parents=True, exist_ok=True)
            staging = binary.with_suffix(".tmp")
            _run(["go", "build", "-o", str(staging), package], cwd=source,
                 log=root / "build.log",
                 progress=progress, what=name)
            staging.replace(binary)
    return binary


def ensure_etcd(progress: Progress = _stderr) -> Path:
    """Directory holding ``etcd`` and ``etcdctl`` of :data:`ETCD_VERSION`."""
    go_mod = (
        "module kitexdev/etcdbuild\n\n"
        "go 1.24\n\n"
        "require (\n"
        f"\tgo.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
        f"\tgo.etcd.io/etcd/etcdctl/v3 {ETCD_VERSION}\n"
        ")\n"
    )
    return _build_module(
        "etcd",
        ETCD_VERSION,
        ETCD_BINARIES,
        go_mod,
        {"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3"},
        progress,
    )


_STAGING_RE = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s*=>\s*\./staging/", re.MULTILINE)


def kubernetes_staging_modules(progress: Progress = _stderr) -> list[str]:
    """The k8s.io/* modules that k8s.io/kubernetes replaces with its own
    ./staging copies; a consumer must pin each of them to the v0.X.Y release."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
        env=_go_env(),
    )
    if out.returncode != 0:
        raise BuildError(f"go mod download k8s.io/kubernetes failed:\n{out.stdout}{out.stderr}")
    info = json.loads(out.stdout)
    if "Error" in info:
        raise BuildError(f"go mod download k8s.io/kubernetes: {info['Error']}")
    modules = sorted(set(_STAGING_RE.findall(Path(info["GoMod"]).read_text())))
    if not modules:
        raise BuildError(f"no staging replace lines found in {info['GoMod']}")
    return modules


def ensure_kubernetes(progress: Progress = _stderr) -> Path:
    """Directory holding kube-apiserver, kube-controller-manager, kube-scheduler
    and kubectl of :data:`KUBERNETES_VERSION` (first build: ~15 min on 2 cores)."""
    bindir = component_dir("kubernetes", KUBERNETES_VERSION) / "bin"
    stamp = bindir / ".stamp"
    # Fast path without touching the network: the stamp records the go.mod.
    if stamp.exists() and all(os.access(bindir / b, os.X_OK) for b in KUBERNETES_BINARIES):
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(stamp.read_text())
            if recorded.get("version") == KUBERNETES_VERSION:
                return bindir
    replaces = "\n".join(
        f"\t{m} => {m} {KUBERNETES_STAGING_VERSION}" for m in kubernetes_staging_modules(progress)
    )
    go_mod = (
        "module kitexdev/k8sbuild\n\n"
        "go 1.24.0\n\n"
        f"require k8s.io/kubernetes {KUBERNETES_VERSION}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    return _build_module(
        "kubernetes",
        KUBERNETES_VERSION,
        KUBERNETES_BINARIES,
        go_mod,
        {name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_BINARIES},
        progress,
    )


def _module_dir(module: str, version: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=_go_env(),
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Dir" not in info:
        raise BuildError(f"go mod download {module}@{version} failed:\n{out.stdout}{out.stderr}")
    return Path(info["Dir"])


def ensure_kwok(progress: Progress = _stderr) -> Path:
    """Directory holding ``kwok`` of :data:`KWOK_VERSION` and ``stages.yaml``
    (kwok has no replace directives, so plain ``go install`` works)."""
    root = component_dir("kwok", KWOK_VERSION)
    bindir = root / "bin"
    spec: dict[str, object] = {
        "version": KWOK_VERSION,
        "binaries": list(KWOK_BINARIES),
        "stages": list(KWOK_STAGE_FILES),
    }
    if _stamp_matches(bindir, spec, KWOK_BINARIES):
        return bindir
    with _locked(root / ".lock", progress):
        if _stamp_matches(bindir, spec, KWOK_BINARIES):
            return bindir
        bindir.mkdir(parents=True, exist_ok=True)
        progress(f"building kwok {KWOK_VERSION} into {bindir}")
        _run(
            ["go", "install", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
            cwd=root,
            log=root / "build.log",
            progress=progress,
            what="kwok",
            env=_go_env({"GOBIN": str(bindir)}),
        )
        src = _module_dir("sigs.k8s.io/kwok", KWOK_VERSION)
        docs = [(src / f).read_text().strip() + "\n" for f in KWOK_STAGE_FILES]
        (bindir / "stages.yaml").write_text("---\n".join(docs))
        (bindir / ".stamp").write_text(json.dumps(spec))
    return bindir


def _go_install(component: str, package: str, version: str, binary: str,
                progress: Progress) -> Path:
    """``go install package@version`` into the cache (modules without replace
    directives), once: the binary's path."""
    root = component_dir(component, version)
    bindir = root / "bin"
    spec: dict[str, object] = {"version": version, "package": package, "binaries": [binary]}
    if _stamp_matches(bindir, spec, (binary,)):
        return bindir / binary
    with _locked(root / ".lock", progress):
        if not _stamp_matches(bindir, spec, (binary,)):
            bindir.mkdir(parents=True, exist_ok=True)
            progress(f"building {component} {version} into {bindir}")
            _run(["go", "install", f"{package}@{version}"], cwd=root, log=root / "build.log",
                 progress=progress, what=component, env=_go_env({"GOBIN": str(bindir)}))
            (bindir / ".stamp").write_text(json.dumps(spec))
    return bindir / binary


def ensure_helm(progress: Progress = _stderr) -> Path:
    """``helm`` of :data:`HELM_VERSION`, built from the Go module helm.sh/helm/v3."""
    return _go_install("helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION, "helm", progress)


def ensure_actionlint(progress: Progress = _stderr) -> Path:
    """``actionlint`` of :data:`ACTIONLINT_VERSION` (checks .github/workflows)."""
    return _go_install("actionlint", "github.com/rhysd/actionlint/cmd/actionlint",
                       ACTIONLINT_VERSION, "actionlint", progress)


def ensure_release_tools(progress: Progress = _stderr) -> tuple[Path, Path]:
    """helm and actionlint (a few minutes each on first use)."""
    return ensure_helm(progress), ensure_actionlint(progress)


def ensure_tools(progress: Progress = _stderr) -> Tools:
    """Every binary the local cluster needs, building what is missing (one at a
    time: the machine has 2 cores and each Go build uses them all)."""
    etcd = ensure_etcd(progress)
    kwok = ensure_kwok(progress)
    kube = ensure_kubernetes(progress)
    return Tools(
        etcd=etcd / "etcd",
        etcdctl=etcd / "etcdctl",
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        kubectl=kube / "kubectl",
        kwok=kwok / "kwok",
        kwok_stages=kwok / "stages.yaml",
    )
