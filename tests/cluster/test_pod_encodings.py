"""A real API server's protobuf pod pages read as its JSON pages of the same pods.

The operator asks for pod lists as protobuf (``kube.podproto``, a schema of
its own with the field numbers of k8s.io/api) and reads watch events as JSON
(``kube.podwire``): both must make the same view of every pod, whatever it
carries: several containers and ports, readiness gates, other tools'
annotations, a pod being deleted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from kubernetes import client

from kitex_etcd_operator.kube import podproto, podwire, wire
from kitex_etcd_operator.kubeapi import KubeApi
from kitex_etcd_operator.listwatch import PODS, ListWatch
from tests.support.helpers import async_wait_for, set_pod_ready, wait_for

pytestmark = pytest.mark.cluster


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "enc", "tier": name},
                         "annotations": {"kitex.cloudwego.io/service": "echo",
                                         "kitex.cloudwego.io/port": "8888",
                                         "example.com/other": "x" * 300}},
            "spec": {"containers": [
                {"name": "app", "image": "fake/kitex-server",
                 "ports": [{"name": "rpc", "containerPort": 8888},
                           {"containerPort": 53, "protocol": "UDP"}],
                 "env": [{"name": "A", "value": "b"}]},
                {"name": "side", "image": "fake/side",
                 "ports": [{"name": "metrics", "containerPort": 9090}]}],
                "terminationGracePeriodSeconds": 30, **spec}}


async def test_protobuf_and_json_pages_make_the_same_views(k8s: Any, kubeconfig: Any,
                                                           namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, _pod("plain"))
    core.create_namespaced_pod(namespace, _pod(
        "gated", readinessGates=[{"conditionType": "example.com/lb"}]))
    leaving = _pod("leaving")
    leaving["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_pod(namespace, leaving)
    wait_for(lambda: _all_running(core, namespace), timeout=60, what="three Running pods")
    set_pod_ready(core, "plain", namespace, True)
    # kwok turns every readiness gate True: this one turns False, as a load balancer would
    core.patch_namespaced_pod_status("gated", namespace, {"status": {"conditions": [
        {"type": "example.com/lb", "status": "False"}]}})
    core.delete_namespaced_pod("leaving", namespace)
    kube = KubeApi.from_environment(str(kubeconfig))
    path = kube.pods_path(namespace)

    async def views(types: str) -> list[Any]:
        # two pods a page: tokens read ahead, three pages
        codec = dataclasses.replace(podproto.CODEC, page_types=types, page_size=2)
        return read([item for page in [x async for x in kube.list_codec(path, codec)]
                     for item in page.items])

    try:
        # The first page alone, as each encoding brings it from the server:
        raw = await kube._read("GET", path, params={"limit": "500"},
                               accept=podproto.CODEC.page_types)
        assert raw.startswith(podproto.MAGIC)
        as_protobuf = await views(podproto.CODEC.page_types)
        as_json = await views("application/json")
        assert as_protobuf == as_json == read(podwire.decode_page(
            await kube._read("GET", path, params={}, accept="application/json"))[0])
        by_name = {view.name: view for _, _, view in as_protobuf}
        assert by_name["plain"].ready and by_name["plain"].pod_ips
        assert not by_name["gated"].ready  # Ready, but not its gate
        assert by_name["leaving"].terminating
        assert by_name["plain"].container_ports == (("rpc", 8888, "TCP"), ("", 53, "UDP"),
                                                    ("metrics", 9090, "TCP"))
        assert set(by_name["plain"].annotations) == {"kitex.cloudwego.io/service",
                                                     "kitex.cloudwego.io/port"}
        assert by_name["plain"].created.endswith("Z")

        # The watch cache's one answer, read as it arrives (it may lag a moment).
        async def cached_like_pages() -> bool:
            cached = read([item async for page in kube.list_cached(path, podproto.CODEC)
                           for item in page.items])
            return sorted(cached) == sorted(await views(podproto.CODEC.page_types))

        await async_wait_for(cached_like_pages, timeout=10, what="the cache's list")
        # Answered as JSON (a proxy that rewrites): refused before any pod, so the
        # list is read page by page instead (listwatch).
        json_only = dataclasses.replace(podproto.CODEC, page_types="application/json")
        with pytest.raises(wire.Undecodable):
            [page async for page in kube.list_cached(path, json_only)]
        sink = _Sink()
        watch = ListWatch(kube, namespace, sink, resource=dataclasses.replace(
            PODS, codec=json_only), resync_period=3600)
        await watch._relist("initial")
        assert sink.uids == {uid for uid, _, _ in as_protobuf}
    finally:
        core.patch_namespaced_pod("leaving", namespace, {"metadata": {"finalizers": None}})
        await kube.close()


def read(items: list[wire.Item]) -> list[tuple[str, int | None, Any]]:
    """Items as the feed reads them: a protobuf pod's view is built when asked."""
    return [(item.uid, item.version, item.view()) for item in items]


class _Sink:
    def __init__(self) -> None:
        self.uids: set[str] = set()

    def on_item(self, event_type: str | None, item: Any) -> None:
        self.uids.add(item.uid)

    def listed(self, namespace: str | None, uids: set[str], started: float) -> None:
        assert uids == self.uids


def _all_running(core: Any, namespace: str) -> bool:
    pods = core.list_namespaced_pod(namespace).items
    return len(pods) == 3 and all(p.status.phase == "Running" and p.status.pod_ip
                                  for p in pods)
