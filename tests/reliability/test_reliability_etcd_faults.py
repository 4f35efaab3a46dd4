"""etcd that answers but refuses: out of space, a role revoked, a client certificate expired.

Each must show as a Degraded condition and Events naming the cause in plain
words, the operator process must stay up (one start in its log: no crash
loop), the entries already written must stay, and fixing the cause must be
all it takes to recover.
"""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from kitex_devcluster import pki
from kitex_etcd_operator.kubeapi import CREDENTIALS_TYPE as CREDENTIALS
from tests.reliability.etcd_faults import (
    RETRY_FLAGS,
    Service,
    create_revisions,
    create_service,
    entries_lost,
    operator_starts,
    since,
)
from tests.support.etcd_probe import EtcdProbe
from tests.support.figures import GapSampler
from tests.support.helpers import wait_for

QUOTA = 2 * 1024 * 1024  # bytes: small, so that junk writes soon pass it


def _fault_and_fix(svc: Service, operator: Any, words: str, reason: str,
                   fix: Callable[[], None], figures: Callable[..., None], **extra: Any) -> None:
    """With the fault in place, one pod more: Degraded naming the fault, entries
    kept; one more pod while Degraded; then the fix, and every entry written."""
    before = create_revisions(svc.probe, svc.range)
    with GapSampler(svc.probe, svc.range, lambda: set(before)) as gaps:
        faulted_at = time.monotonic()
        svc.scale(3)
        degraded = svc.wait_condition("Degraded", "True")
        degraded_after = since(faulted_at)
        assert degraded["reason"] == reason, degraded
        assert words in degraded["message"].lower(), degraded
        ready = svc.condition("Ready")
        assert ready["status"] == "False" and words in ready["message"].lower(), ready
        def naming() -> list[Any]:
            # The two Events are posted apart; wait for both, not the first one.
            found = [e for e in svc.events("Degraded", "SyncFailed")
                     if words in e.message.lower()]
            return found if {"Degraded", "SyncFailed"} <= {e.reason for e in found} else []

        named = wait_for(naming, timeout=30, what=f"Degraded and SyncFailed Events naming "
                                                  f"{words!r}")
        assert {"Degraded", "SyncFailed"} <= {e.reason for e in named}, named
        assert operator.running, operator.tail()

        svc.scale(4)  # a change that has to wait for the fix
        wait_for(lambda: len(svc.ready()) == 4, timeout=60, what="4 ready pods")

        fix()
        fixed_at = time.monotonic()
        wait_for(lambda: svc.converged(4) and svc.condition("Ready")["status"] == "True",
                 timeout=60, what="every entry written and Ready once fixed", interval=0.05)
        recovered_after = since(fixed_at)
        assert svc.condition("Degraded")["status"] == "False"
    lost = entries_lost(before, create_revisions(svc.probe, svc.range), set(svc.desired()))
    starts = operator_starts(operator)
    figures(degraded_after_s=degraded_after, reason=degraded["reason"],
            condition=degraded["message"], recovered_after_fix_s=recovered_after,
            entries_lost=len(lost), longest_gap_s=round(gaps.max_gap, 2),
            probe_samples=gaps.samples, operator_restarts=starts - 1, **extra)
    assert not lost and gaps.max_gap == 0, (lost, gaps.longest)
    assert starts == 1 and operator.running, operator.tail()


def test_etcd_out_of_space(k8s: Any, namespace: str, tools: Any,
                           private_etcd: Callable[..., Any], start_operator: Callable[..., Any],
                           figures: Callable[..., None]) -> None:
    etcd = private_etcd("nospace", extra_args=[f"--quota-backend-bytes={QUOTA}"])
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints))
    operator = start_operator("--namespace", namespace, *RETRY_FLAGS, endpoints=etcd.endpoints)
    svc = create_service(k8s, namespace, "full", 2, probe)

    # Junk past the quota: etcd raises the NOSPACE alarm and refuses puts and leases.
    etcdctl = [str(tools.etcdctl), f"--endpoints={etcd.endpoints[0]}"]
    # etcd measures its database at each batch commit, so count on no number of
    # writes: write until refused, with a deadline.
    deadline = time.monotonic() + 90
    for i in itertools.count():
        assert time.monotonic() < deadline, f"{i} writes past the quota, never refused"
        put = subprocess.run([*etcdctl, "put", f"junk/{i % 100}"], input="x" * 200_000,
                             capture_output=True, text=True, timeout=30)
        if put.returncode:
            assert "database space exceeded" in put.stderr, put.stderr
            break
    assert "NOSPACE" in etcd.etcdctl("alarm", "list")

    def fix() -> None:  # etcd's documented procedure: free space, compact, defrag, disarm
        etcd.etcdctl("del", "--prefix", "junk/")
        revision = json.loads(etcd.etcdctl("endpoint", "status", "-w", "json")
                              )[0]["Status"]["header"]["revision"]
        etcd.etcdctl("compact", str(revision))
        etcd.etcdctl("defrag")
        etcd.etcdctl("alarm", "disarm")

    _fault_and_fix(svc, operator, "out of space (nospace alarm)", "EtcdOutOfSpace", fix,
                   figures, fault="etcd out of space")


def test_etcd_role_revoked(k8s: Any, namespace: str, tools: Any,
                           private_etcd: Callable[..., Any], start_operator: Callable[..., Any],
                           figures: Callable[..., None]) -> None:
    core = client.CoreV1Api(k8s)
    etcd = private_etcd("auth")
    etcd.enable_auth("root-pw")
    etcd.add_user("kitex", "kitex-pw", prefix="kitex/")
    etcd.etcdctl("role", "grant-permission", "kitex-role", "--prefix=true", "readwrite",
                 "kitex-etcd-operator/")
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints), "--user=root:root-pw")
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "etcd-auth"}, "type": CREDENTIALS,
        "stringData": {"username": "kitex", "password": "kitex-pw"}})
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints",
                              *RETRY_FLAGS)
    svc = create_service(k8s, namespace, "auth", 2, probe, etcd={
        "endpoints": etcd.endpoints, "authSecretRef": {"name": "etcd-auth"}})

    etcd.etcdctl("user", "revoke-role", "kitex", "kitex-role")
    _fault_and_fix(svc, operator, "permission denied", "EtcdPermissionDenied",
                   lambda: etcd.etcdctl("user", "grant-role", "kitex", "kitex-role"), figures,
                   fault="etcd role revoked")


def test_client_certificate_expired(k8s: Any, namespace: str, tools: Any,
                                    private_etcd: Callable[..., Any],
                                    start_operator: Callable[..., Any],
                                    figures: Callable[..., None]) -> None:
    core = client.CoreV1Api(k8s)
    etcd = private_etcd("mtls", tls=True, client_cert_auth=True)
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints), f"--cacert={etcd.ca_path}",
                      f"--cert={etcd.client_cert_path}", f"--key={etcd.client_key_path}")
    valid = {"ca.crt": etcd.ca_path.read_text(), "tls.crt": etcd.client_cert_path.read_text(),
             "tls.key": etcd.client_key_path.read_text()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "etcd-tls"},
                                              "type": CREDENTIALS, "stringData": valid})
    operator = start_operator("--namespace", namespace, "--allow-custom-endpoints",
                              *RETRY_FLAGS)
    svc = create_service(k8s, namespace, "cert", 2, probe, etcd={
        "endpoints": etcd.endpoints, "tlsSecretRef": {"name": "etcd-tls"}})

    # The Secret now holds a certificate of the same CA that ended two days ago.
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    cert, key = pki.issue(etcd.ca, "kitex-client", server=False, not_before=ended, days=1)
    core.patch_namespaced_secret("etcd-tls", namespace, {
        "stringData": {"tls.crt": cert.decode(), "tls.key": key.decode()}})
    _fault_and_fix(svc, operator, "client certificate expired", "ClientCertificateExpired",
                   lambda: core.patch_namespaced_secret("etcd-tls", namespace,
                                                        {"stringData": valid}), figures,
                   fault="client certificate expired")
