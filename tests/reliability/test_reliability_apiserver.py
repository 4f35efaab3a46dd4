"""kube-apiserver faults: watch streams cut, the API server restarted, a 410 Gone.

The operator reaches the API server through a proxy that can reset every
connection (a load balancer or network dropping long-lived streams), while
the test keeps its own direct connection to change pods during the cut. The
rule under test: nothing the operator cannot see is read as "gone" (no entry
of a pod that stayed is deleted, a stayer's key is never missing), and what
changed while it was blind is applied once it sees again, including pods
deleted meanwhile, which only a relist can reveal when the watch history is
gone (410).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.reliability.etcd_faults import (
    PORT,
    RETRY_FLAGS,
    create_revisions,
    entries_lost,
    operator_starts,
    since,
)
from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.figures import GapSampler
from tests.support.helpers import pod_is_ready, set_pod_ready, wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, expected, ready_pods, value
from tests.support.tcp_proxy import CuttableProxy

WATCH_ERRORS = "kitex_etcd_operator_pod_watch_errors_total"


def proxied_kubeconfig(kube: Any, proxy: CuttableProxy, path: Path) -> Path:
    text = Path(kube.kubeconfig).read_text()
    path.write_text(text.replace(kube.server, f"https://{proxy.address}"))
    return path


class Pods:
    """Two annotated Deployments of one service: ``stay`` is never touched, ``move`` is."""

    def __init__(self, k8s: Any, namespace: str, probe: EtcdProbe) -> None:
        self.core, self.apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
        self.namespace, self.probe = namespace, probe
        self.service = f"api-{namespace}"
        self.range = f"{PREFIX}/{self.service}/"
        annotations = {ANN + "service": self.service, ANN + "port": str(PORT)}
        for name, replicas in (("stay", 3), ("move", 2)):
            self.apps.create_namespaced_deployment(
                namespace, deployment(name, replicas, annotations=annotations))

    def desired(self) -> dict[str, bytes]:
        return {**expected(self.core, self.namespace, "stay", self.service, PORT),
                **expected(self.core, self.namespace, "move", self.service, PORT)}

    def ready(self, app: str) -> list[Any]:
        return ready_pods(self.core, self.namespace, app)

    def wait_registered(self, stay: int, move: int) -> dict[str, bytes]:
        wait_for(lambda: len(self.ready("stay")) == stay and len(self.ready("move")) == move,
                 timeout=90, what=f"{stay} stay and {move} move pods ready")
        want = self.desired()
        wait_keys(self.probe, self.range, want, timeout=60, what="the desired entries")
        return want

    def stayer_keys(self) -> set[str]:
        return {f"{self.range}{p.status.pod_ip}:{PORT}" for p in self.ready("stay")}

    def change_move(self) -> None:
        """One pod more, one turned not ready, one deleted (its ReplicaSet replaces it)."""
        self.apps.patch_namespaced_deployment_scale("move", self.namespace,
                                                    {"spec": {"replicas": 3}})
        pods = wait_for(lambda: len(p := self.ready("move")) == 3 and p, timeout=60,
                        what="3 move pods ready")
        set_pod_ready(self.core, pods[0].metadata.name, self.namespace, False)
        self.core.delete_namespaced_pod(pods[1].metadata.name, self.namespace,
                                        grace_period_seconds=0)
        wait_for(lambda: len(self.ready("move")) == 2
                 and pods[1].metadata.name not in {p.metadata.name for p in self.ready("move")},
                 timeout=60, what="move back at 2 ready pods (one not ready, one replaced)")


def test_watch_streams_cut(kube: Any, k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                           start_operator: Callable[..., Any], tmp_path: Path,
                           figures: Callable[..., None]) -> None:
    proxy = CuttableProxy(kube.server)
    try:
        operator = start_operator("--namespace", namespace, *RETRY_FLAGS,
                                  kubeconfig=proxied_kubeconfig(kube, proxy, tmp_path / "kc"))
        pods = Pods(k8s, namespace, etcd_probe)
        before = pods.wait_registered(3, 2)
        stayers = pods.stayer_keys()
        revisions = create_revisions(etcd_probe, pods.range)
        recorder = etcd_probe.watch(pods.range)
        errors_before = operator.metric(WATCH_ERRORS)
        with GapSampler(etcd_probe, pods.range, lambda: stayers) as gaps:
            cut_at = time.monotonic()
            streams = proxy.cut()
            pods.change_move()  # while the operator cannot see the API server
            # The cut lasts until the operator has failed to reconnect three times.
            wait_for(lambda: operator.metric(WATCH_ERRORS) >= errors_before + 3, timeout=60,
                     what="three failed reconnections")
            # Blind, it must hold on to what it knew: etcd is exactly as before the cut.
            assert etcd_probe.values(pods.range) == before
            cut_for = since(cut_at)
            proxy.restore()
            restored_at = time.monotonic()
            want = pods.desired()
            wait_keys(etcd_probe, pods.range, want, timeout=90,
                      what="the changes made during the cut")
            applied_after = since(restored_at)
        recorder.stop()
        deleted_stayers = set(recorder.deletes()) & stayers
        assert not deleted_stayers, recorder.deletes()
        assert gaps.max_gap == 0, gaps.longest
        lost = entries_lost(revisions, create_revisions(etcd_probe, pods.range), stayers)
        assert not lost
        assert operator_starts(operator) == 1
        figures(connections_reset=streams, cut_seconds=cut_for,
                refused_while_cut=proxy.refused, applied_after_restore_s=applied_after,
                watch_errors=operator.metric(WATCH_ERRORS),
                relists_gone=operator.metric("kitex_etcd_operator_pod_relists_total",
                                    reason="gone"),
                stayer_deletes=len(deleted_stayers), stayer_max_gap_s=gaps.max_gap,
                entries_lost=len(lost), gap_samples=gaps.samples)
    finally:
        proxy.close()


def test_apiserver_restarted(kube: Any, k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                             start_operator: Callable[..., Any],
                             figures: Callable[..., None]) -> None:
    operator = start_operator("--namespace", namespace, *RETRY_FLAGS)
    pods = Pods(k8s, namespace, etcd_probe)
    pods.wait_registered(3, 2)
    stayers = pods.stayer_keys()
    revisions = create_revisions(etcd_probe, pods.range)
    recorder = etcd_probe.watch(pods.range)
    with GapSampler(etcd_probe, pods.range, lambda: stayers) as gaps:
        down_for = kube.restart_apiserver()
        back_at = time.monotonic()
        # Changes that need no controller: kube-controller-manager and kwok recover
        # from the restart at their own pace, which is not what is measured here.
        move = pods.ready("move")
        set_pod_ready(pods.core, move[0].metadata.name, namespace, False)
        pods.core.delete_namespaced_pod(move[1].metadata.name, namespace,
                                        grace_period_seconds=0)
        changed_after = since(back_at)
        # The ReplicaSet's replacement joins whenever it is ready: the desired set is read
        # anew at each poll, so etcd must end up exactly as the pods say.
        wait_for(lambda: etcd_probe.values(pods.range) == pods.desired(), timeout=90,
                 what="the changes after the restart in etcd")
        applied_after = since(back_at)
    recorder.stop()
    assert not set(recorder.deletes()) & stayers, recorder.deletes()
    assert gaps.max_gap == 0, gaps.longest
    lost = entries_lost(revisions, create_revisions(etcd_probe, pods.range), stayers)
    assert not lost
    assert operator_starts(operator) == 1
    figures(apiserver_restart_s=round(down_for, 2), changes_done_after_s=changed_after,
            applied_after_apiserver_ready_s=applied_after,
            watch_errors=operator.metric(WATCH_ERRORS),
            relists_gone=operator.metric("kitex_etcd_operator_pod_relists_total",
                                reason="gone"),
            stayer_deletes=0, stayer_max_gap_s=gaps.max_gap, entries_lost=len(lost))


def test_watch_answered_410_gone(kube: Any, k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                                 start_operator: Callable[..., Any], tmp_path: Path,
                                 figures: Callable[..., None]) -> None:
    """Cut, change pods, restart the API server behind the cut, reconnect.

    The restarted API server's watch cache starts at the current revision, so
    the operator's resourceVersion from before is too old: the watch is
    answered 410 Gone and only a relist can tell it which pods were deleted.
    """
    proxy = CuttableProxy(kube.server)
    try:
        operator = start_operator("--namespace", namespace, *RETRY_FLAGS,
                                  kubeconfig=proxied_kubeconfig(kube, proxy, tmp_path / "kc"))
        pods = Pods(k8s, namespace, etcd_probe)
        pods.wait_registered(3, 2)
        stayers = pods.stayer_keys()
        revisions = create_revisions(etcd_probe, pods.range)
        recorder = etcd_probe.watch(pods.range)
        gone_before = operator.metric("kitex_etcd_operator_pod_relists_total", reason="gone")
        with GapSampler(etcd_probe, pods.range, lambda: stayers) as gaps:
            proxy.cut()
            pods.change_move()
            pods.apps.patch_namespaced_deployment_scale("move", namespace,
                                                        {"spec": {"replicas": 0}})
            wait_for(lambda: not pods.core.list_namespaced_pod(
                namespace, label_selector="app=move").items, timeout=60,
                what="every move pod deleted while the operator is blind")
            # Then the history goes: the restarted API server's watch cache starts now.
            kube.restart_apiserver()
            proxy.restore()
            restored_at = time.monotonic()
            want = pods.desired()
            assert set(want) == stayers
            wait_keys(etcd_probe, pods.range, want, timeout=90,
                      what="the move pods' entries gone after the relist")
            applied_after = since(restored_at)
        recorder.stop()
        gone = operator.metric("kitex_etcd_operator_pod_relists_total", reason="gone")
        assert gone > gone_before, operator.tail()
        assert "410 Gone" in operator.log()
        assert not set(recorder.deletes()) & stayers, recorder.deletes()
        assert gaps.max_gap == 0, gaps.longest
        lost = entries_lost(revisions, create_revisions(etcd_probe, pods.range), stayers)
        assert not lost
        assert operator_starts(operator) == 1
        figures(relists_after_410=gone - gone_before, applied_after_restore_s=applied_after,
                deletes_seen=len(recorder.deletes()), stayer_deletes=0,
                stayer_max_gap_s=gaps.max_gap, entries_lost=len(lost))
    finally:
        proxy.close()


def test_periodic_resync_relists_and_changes_nothing(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., Any], figures: Callable[..., None]) -> None:
    """Every --resync-period the watch ends and the pods are listed again: a complete list
    that agrees with what the operator holds must change nothing in etcd."""
    operator = start_operator("--namespace", namespace, *RETRY_FLAGS, "--resync-period", "4s")
    pods = Pods(k8s, namespace, etcd_probe)
    before = pods.wait_registered(3, 2)
    revisions = create_revisions(etcd_probe, pods.range)
    recorder = etcd_probe.watch(pods.range)
    relists = operator.metric("kitex_etcd_operator_pod_relists_total", reason="resync")
    wait_for(lambda: operator.metric("kitex_etcd_operator_pod_relists_total", reason="resync")
             >= relists + 2, timeout=60, what="two periodic relists")
    recorder.stop()
    assert etcd_probe.values(pods.range) == before
    assert create_revisions(etcd_probe, pods.range) == revisions
    assert not recorder.snapshot()
    assert operator.metric(WATCH_ERRORS) == 0  # a stream ended by the server is no error
    figures(resync_relists=2, etcd_events=0, watch_errors=0)


REPLAY_EVENTS = 600


def _bare_pod(name: str, node: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "reuse"}, "annotations": annotations},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "fake/kitex-server"}]}}


def test_a_resumed_watch_replays_what_it_missed_before_writing(
        kube: Any, k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., Any], tmp_path: Path,
        figures: Callable[..., None]) -> None:
    """While the operator is cut off, a pod is deleted and a new one takes its IP (kwok
    reuses a freed IP at once; found by the soak). The resumed watch replays the
    deletion first: a write made before the replay reaches the present deletes the
    key of a pod that is ready. It must wait, and touch the key not at all."""
    proxy = CuttableProxy(kube.server)
    try:
        operator = start_operator("--namespace", namespace, *RETRY_FLAGS,
                                  kubeconfig=proxied_kubeconfig(kube, proxy, tmp_path / "kc"))
        core = client.CoreV1Api(k8s)
        service = f"reuse-{namespace}"
        prefix = f"{PREFIX}/{service}/"
        annotations = {ANN + "service": service, ANN + "port": str(PORT)}
        node = kube.node_names[0]

        def ready_ip(name: str) -> str | None:
            pod = core.read_namespaced_pod(name, namespace)
            return pod.status.pod_ip if pod_is_ready(pod) else None

        core.create_namespaced_pod(namespace, _bare_pod("old", node, annotations))
        core.create_namespaced_pod(namespace, _bare_pod("noise", node, {}))
        ip = wait_for(lambda: ready_ip("old"), timeout=60, what="pod old ready")
        key = f"{prefix}{ip}:{PORT}"
        wait_keys(etcd_probe, prefix, {key: value(ip, PORT)}, timeout=60,
                  what="old's entry")
        recorder = etcd_probe.watch(prefix)
        errors_before = operator.metric(WATCH_ERRORS)
        proxy.cut()
        wait_for(lambda: operator.metric(WATCH_ERRORS) > errors_before, timeout=60,
                 what="the operator to notice the cut")
        core.delete_namespaced_pod("old", namespace, grace_period_seconds=0)
        wait_for(lambda: not [p for p in core.list_namespaced_pod(namespace).items
                              if p.metadata.name == "old"], timeout=60, what="old gone")
        # Events between the two, so that the replay lasts longer than a write takes
        # to start (a lone change goes out at once): without the wait it writes in between.
        for i in range(REPLAY_EVENTS):
            core.patch_namespaced_pod("noise", namespace, {"metadata": {"labels": {"n": str(i)}}})
        core.create_namespaced_pod(namespace, _bare_pod("new", node, annotations))
        wait_for(lambda: ready_ip("new"), timeout=60, what="pod new ready")
        # kwok set new's IP while it was Pending and never touches it again.
        core.patch_namespaced_pod_status("new", namespace, {"status": {
            "podIP": ip, "podIPs": [{"ip": ip}]}},
            _content_type="application/merge-patch+json")
        core.create_namespaced_pod(namespace, _bare_pod("last", node, annotations))
        last_ip = wait_for(lambda: ready_ip("last"), timeout=60, what="pod last ready")
        assert ready_ip("new") == ip
        proxy.restore()
        restored_at = time.monotonic()
        want = {key: value(ip, PORT), f"{prefix}{last_ip}:{PORT}": value(last_ip, PORT)}
        wait_keys(etcd_probe, prefix, want, timeout=60, what="last's entry, after the replay")
        applied_after = since(restored_at)
        wait_for(lambda: "caught up with resourceVersion" in operator.log(), timeout=30,
                 what="the operator to log that its view caught up")
        recorder.stop()
        touched = [(e.kind, e.key) for e in recorder.snapshot() if e.key == key]
        assert not touched, touched  # the key passed from old to new untouched
        assert set(etcd_probe.values(prefix)) == set(want)
        figures(applied_after_restore_s=applied_after, writes_to_the_reused_key=len(touched))
    finally:
        proxy.close()
