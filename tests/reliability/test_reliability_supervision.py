"""Nothing dies silently: a crashing task is restarted and reported; one that keeps
crashing turns /healthz false; a removal etcd refuses is reported, not hidden.

Crashes are injected through the supervisor's test hook
(``KITEX_ETCD_OPERATOR_INJECT_CRASH``), on a real operator process: the test
sees exactly what a user would (the log, /metrics, /healthz, Events and
conditions). Each test has an etcd of its own, so no binding of another test
can take the injected crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.reliability.etcd_faults import RETRY_FLAGS, create_service
from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import custom

INJECT = "KITEX_ETCD_OPERATOR_INJECT_CRASH"
CRASHES = "kitex_etcd_operator_task_crashes_total"


def test_a_crashing_binding_worker_is_restarted_and_reported(
        k8s: Any, namespace: str, tools: Any, private_etcd: Callable[..., Any],
        start_operator: Callable[..., Any]) -> None:
    etcd = private_etcd()
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints))
    operator = start_operator("--namespace", namespace, *RETRY_FLAGS,
                              endpoints=etcd.endpoints, env={INJECT: "binding:2"})
    # Written despite two crashes of its worker: the supervisor restarted it.
    svc = create_service(k8s, namespace, "crashy", 2, probe)
    assert operator.metric(CRASHES, kind="binding") == 2
    events = wait_for(lambda: svc.events("InternalError"), timeout=30,
                      what="an InternalError Event on the KitexService")
    assert "InjectedCrash" in events[0].message and events[0].type == "Warning"
    log = operator.log()
    assert log.count("crashed (InjectedCrash") == 2
    assert "Traceback (most recent call last)" in log
    assert "Restarting binding task" in log
    assert operator.probe("/healthz") == 200  # two crashes: not a crash loop
    assert svc.condition("Ready")["status"] == "True"


def test_a_task_that_keeps_crashing_turns_healthz_false(
        namespace: str, tools: Any, private_etcd: Callable[..., Any],
        start_operator: Callable[..., Any]) -> None:
    etcd = private_etcd()
    operator = start_operator("--namespace", namespace, *RETRY_FLAGS,
                              endpoints=etcd.endpoints, env={INJECT: "status-writer:1000"})
    assert operator.probe("/healthz") == 200
    # Five crashes within five minutes (backoff 1, 2, 4, 8 s): Kubernetes restarts the pod.
    wait_for(lambda: operator.probe("/healthz") == 503, timeout=90, interval=0.5,
             what="/healthz false once the status writer keeps crashing")
    assert operator.metric("kitex_etcd_operator_tasks_failing") == 1
    assert operator.metric(CRASHES, kind="status-writer") >= 5
    assert operator.running  # it does not exit by itself: the liveness probe decides


def test_a_removal_that_fails_is_reported(
        k8s: Any, namespace: str, tools: Any, private_etcd: Callable[..., Any],
        start_operator: Callable[..., Any], etcd_probe: EtcdProbe) -> None:
    """Before: Ready=True Synced stayed on a KitexService whose deletion was stuck."""
    etcd = private_etcd()
    probe = EtcdProbe(tools.etcdctl, list(etcd.endpoints))
    start_operator("--namespace", namespace, "--allow-custom-endpoints", *RETRY_FLAGS)
    svc = create_service(k8s, namespace, "stuck", 2, probe,
                         etcd={"endpoints": list(etcd.endpoints)})
    etcd.stop_member(0)
    custom(k8s).delete_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", namespace,
                                                "kitexservices", "stuck")
    ready = svc.wait_condition("Ready", "False", timeout=60)
    assert ready["reason"] == "RemovalFailed", ready
    assert "could not be removed" in ready["message"] and "unavailable" in ready["message"]
    events = wait_for(lambda: svc.events("RemovalFailed"), timeout=30,
                      what="a RemovalFailed Event")
    assert events[0].type == "Warning"
    etcd.start_member(0)
    wait_for(lambda: not probe.values(svc.range), timeout=60,
             what="the entries removed once etcd is back")

    def gone() -> bool:
        try:
            custom(k8s).get_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1",
                                                     namespace, "kitexservices", "stuck")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, what="the KitexService gone (finalizer released)")
