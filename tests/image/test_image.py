"""The image, built with buildah and run here: as uid 10001, with a read-only
root file system and a tmpfs on /tmp (what the Deployment sets), then as the
operator against the local cluster until a pod is registered.

The build uses the local Debian base (IMAGE_BASE=local): tests reach no image
registry. The base is cached after its first build (`make tools` prepares it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, ready_pods
from tests.support.operator_process import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/kitex-etcd-operator:test"
UID = "10001"


def buildah(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"buildah {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


BUILT: dict[str, Any] = {}


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    out = subprocess.run([str(ROOT / "scripts" / "build-image.sh")], capture_output=True,
                         text=True, timeout=1200,
                         env={**os.environ, "IMAGE": IMAGE, "IMAGE_BASE": "local"})
    assert out.returncode == 0, out.stderr[-4000:]
    BUILT.update(image_build_s=round(time.monotonic() - started),
                 image_size=buildah("images", "--format", "{{.Size}}", IMAGE))
    print(f"built {IMAGE}: {BUILT}")
    return IMAGE


@pytest.fixture
def rootfs(image: str) -> Iterator[Path]:
    """The image's file system (a working container, mounted), removed afterwards."""
    ctr = buildah("from", "--pull=never", "--quiet", image)
    try:
        yield Path(buildah("mount", ctr))
    finally:
        subprocess.run(["buildah", "umount", ctr], capture_output=True, timeout=60)
        subprocess.run(["buildah", "rm", ctr], capture_output=True, timeout=60)


def read_only(root: Path, argv: list[str], *, files: dict[str, Path] | None = None,
              **popen: Any) -> subprocess.Popen[str]:
    """Run ``argv`` in ``root`` as uid 10001 in a mount namespace of its own where
    the root file system is read-only and /tmp a 64 MiB tmpfs, like the
    Deployment's securityContext and volumes. ``files`` are copied into /tmp."""
    copies = " && ".join(f'cp "{src}" "$R/tmp/{name}" && chmod 644 "$R/tmp/{name}"'
                         for name, src in (files or {}).items()) or "true"
    script = (
        'set -e; R="$1"; shift; '
        'mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"; '
        'mount -t tmpfs -o size=64m,mode=1777 tmpfs "$R/tmp"; '
        'mount -t proc proc "$R/proc"; '
        f"{copies}; "
        f'exec chroot --userspec={UID}:{UID} "$R" '
        "/usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 "
        "PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \"$@\"")
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--fork",
                             "sh", "-c", script, "sh", str(root), *argv],
                            text=True, start_new_session=True, **popen)


def test_help_as_uid_10001_with_buildah_run(image: str) -> None:
    ctr = buildah("from", "--pull=never", "--quiet", image)
    try:
        out = buildah("run", "--isolation", "chroot", "--user", f"{UID}:{UID}", ctr, "--",
                      "kitex-etcd-operator", "--help")
        assert "run " in out and "resolve" in out and "dev " not in out, out
        who = buildah("run", "--isolation", "chroot", "--user", f"{UID}:{UID}", ctr, "--",
                      "python3", "-c",
                      "import getpass, os; print(os.getuid(), os.getgid(), getpass.getuser())")
        assert who == f"{UID} {UID} operator"  # kopf asks for the user name
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, timeout=60)


def test_help_with_a_read_only_root(rootfs: Path) -> None:
    proc = read_only(rootfs, ["kitex-etcd-operator", "--help"], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "run " in out and "purge" in out, out
    # Nothing but /tmp is writable for the operator's user.
    probe = ("import os\n"
             "bad = [d for d, _, _ in os.walk('/') if not d.startswith(('/proc', '/tmp'))"
             " and os.access(d, os.W_OK)]\n"
             "open('/tmp/ok', 'w').write('x')\n"
             "print(bad)\n")
    proc = read_only(rootfs, ["python3", "-c", probe], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and out.strip() == "[]", out


def test_the_image_holds_the_operator_and_nothing_to_build_with(rootfs: Path,
                                                                figures: Any) -> None:
    """What is in it: the base, python3 and one venv; no compiler, no dev code."""
    for tool in ("gcc", "cc", "c++", "make", "go", "apt-get install", "pip"):
        assert not (rootfs / "usr/bin" / tool).exists(), tool
        assert not (rootfs / "opt/venv/bin" / tool).exists(), tool
    site = next((rootfs / "opt/venv/lib").glob("python3*/site-packages"))
    assert (site / "kitex_etcd_operator").is_dir()
    for unwanted in ("kitex_devcluster", "tests", "benchmarks", "pytest", "mypy", "ruff",
                     "setuptools", "pip"):
        assert not (site / unwanted).exists(), unwanted
    assert not list(site.glob("kitex_etcd_operator/devcluster*"))
    assert not (rootfs / "src").exists()
    def mib(path: Path) -> int:
        return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])

    figures(**BUILT, image_mib=mib(rootfs), venv_mib=mib(rootfs / "opt/venv"),
            packages=sorted(p.name.split("-")[0] for p in site.glob("*.dist-info")))


def test_the_operator_from_the_image_registers_a_pod(
        rootfs: Path, kube: Any, k8s: Any, crds: None, registry_etcd: Any, namespace: str,
        etcd_probe: EtcdProbe, tmp_path: Path, figures: Any) -> None:
    port = free_port()
    log = tmp_path / "operator.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = read_only(rootfs, [
            "kitex-etcd-operator", "run", "--kubeconfig", "/tmp/kubeconfig",
            "--etcd-endpoints", ",".join(registry_etcd.endpoints),
            "--health-port", str(port), "--namespace", namespace,
            "--cluster-id", f"image-{namespace}"],
            files={"kubeconfig": kube.kubeconfig}, stdout=out, stderr=subprocess.STDOUT)
    try:
        core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
        service = f"image-{namespace}"
        apps.create_namespaced_deployment(namespace, deployment(
            "img", 1, annotations={ANN + "service": service, ANN + "port": "8888"}))

        def registered() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            pods = ready_pods(core, namespace, "img")
            values = etcd_probe.values(f"{PREFIX}/{service}/")
            return len(pods) == 1 and len(values) == 1 and \
                f"{pods[0].status.pod_ip}:8888".encode() in next(iter(values.values()))

        wait_for(registered, timeout=90, what="the pod registered by the operator in the image")
        figures(image_operator_registered_s=round(time.monotonic() - started, 1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        print(f"--- operator in the image (tail)\n{log.read_text()[-3000:]}")


@pytest.fixture(autouse=True, scope="module")
def _needs_buildah() -> None:
    assert shutil.which("buildah") and shutil.which("unshare"), \
        "buildah missing: run `make image-tools` (make test does)"
