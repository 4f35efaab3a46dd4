"""The proof: real Kitex (and Hertz) code finds and calls pods that only the operator registered."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig
from kitex_etcd_operator.model import DEFAULT_PREFIX, Instance, instance_key
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.registry import BindingRegistry
from kitex_etcd_operator.resolve import go_resolve
from tests.interop.programs import MODULE_DIR, REGISTRY_ETCD_VERSION, Launcher
from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import pod_is_ready, set_pod_ready, wait_for

pytestmark = pytest.mark.interop
GOLDEN = MODULE_DIR / "golden" / f"registry-etcd-{REGISTRY_ETCD_VERSION}.json"
ANN = "kitex.cloudwego.io/"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with Launcher(tmp_path_factory.mktemp("interop")) as launch:
        yield launch


def test_operator_bytes_equal_the_go_registry_golden_vectors() -> None:
    vectors = json.loads(GOLDEN.read_text())["vectors"]
    checked = 0
    for vector in vectors:
        spec = vector["input"]
        host, _, port = spec["addr"].rpartition(":")
        if vector["name"] == "ipv6-go-unbracketed":
            # The Go registry writes fd00::1:8888, which no client can dial; we bracket.
            assert Instance.make(host.strip("[]"), int(port)).address == "[fd00::1]:8888"
            continue
        inst = Instance.make(host, int(port), weight=spec.get("weight", 10),
                             tags=spec.get("tags"))
        key = instance_key(spec.get("prefix", DEFAULT_PREFIX), spec["service"], inst.address)
        assert (key, inst.encode()) == (vector["key"], vector["value"].encode()), vector["name"]
        checked += 1
    assert checked >= 6


async def test_go_resolver_returns_exactly_what_the_operator_wrote(
        registry_etcd: Any, launcher: Launcher) -> None:
    etcd = EtcdClient(EtcdConfig(tuple(registry_etcd.endpoints)))
    registry = BindingRegistry(etcd, cluster_id=f"parity-{uuid.uuid4().hex[:6]}")
    await registry.load_ownership()
    run = uuid.uuid4().hex[:6]
    kinds: dict[str, tuple[str, list[Instance]]] = {
        f"v4-{run}": (DEFAULT_PREFIX, [Instance.make("10.3.0.1", 8888),
                                       Instance.make("10.3.0.2", 8888)]),
        f"v6-{run}": (DEFAULT_PREFIX, [Instance.make("fd00::7", 8888)]),
        f"tags-{run}": (DEFAULT_PREFIX, [Instance.make("10.3.1.1", 1, tags={"env": "a"}),
                                         Instance.make("10.3.1.2", 1, tags={"env": "a"})]),
        f"weights-{run}": (DEFAULT_PREFIX, [Instance.make("10.3.2.1", 1, weight=0),
                                            Instance.make("10.3.2.2", 1, weight=7)]),
        f"prefix-{run}": (f"custom{run}/registry", [Instance.make("10.3.3.1", 9)]),
        # Different tags per instance (older resolvers shared one decoded map).
        f"mixed-{run}": (DEFAULT_PREFIX, [Instance.make("10.3.4.1", 1, tags={"zone": "a"}),
                                          Instance.make("10.3.4.2", 1, tags={"env": "b"})]),
    }
    try:
        for service, (prefix, instances) in kinds.items():
            await registry.sync(Binding("default", prefix, service),
                                {instance_key(prefix, service, i.address): i.encode()
                                 for i in instances}, ttl=60)
        for service, (prefix, instances) in kinds.items():
            go = launcher.resolve(registry_etcd.endpoints, service, prefix=prefix)
            assert go.ok, go.error
            got = set(go.instances)  # one instance type: what Go resolves is a model.Instance
            kvs, _ = await etcd.get_prefix(f"{prefix}/{service}/")
            ours = go_resolve(service, [(kv.key, kv.value, kv.lease) for kv in kvs])
            assert got == set(ours.instances), service  # `kitex-etcd-operator resolve` is exact
            assert all(i.tags is None or i.tags for i in got), "the operator writes null tags"
            assert got == {replace(i, weight=i.weight or 10) for i in instances}, service
    finally:
        await registry.close()
        await etcd.close()


def _pod(name: str, node: str, annotations: dict[str, str], labels: dict[str, str]
         ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "kitex/echo"}]}}


def _point_pod_at(core: Any, namespace: str, name: str, ip: str) -> None:
    """Give a kwok pod the loopback address its real Kitex server listens on.

    kwok sets a pod's IP once while it is Pending and never again, so the
    address set here through the status subresource stays.
    """
    core.patch_namespaced_pod_status(name, namespace, {"status": {
        "podIP": ip, "podIPs": [{"ip": ip}]}}, _content_type="application/merge-patch+json")


def test_kitex_client_calls_operator_registered_pods(
        k8s: Any, kube: Any, namespace: str, registry_etcd: Any, etcd_probe: EtcdProbe,
        launcher: Launcher, start_operator: Callable[..., Any], tmp_path: Path) -> None:
    core = client.CoreV1Api(k8s)
    service = f"rpc-{namespace}"
    port = 20000 + int(uuid.uuid4().int % 20000)
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    servers = {ip: launcher.echo_server(f"{ip}:{port}", f"pod-{i}") for i, ip in enumerate(ips)}
    assert servers
    # A server that still registers itself, under the same service, beside the pods.
    selfreg = launcher.echo_server(f"127.0.0.5:{port}", "self-registered",
                                   register_etcd=registry_etcd.endpoints, service=service)
    selfreg_key = f"{DEFAULT_PREFIX}/{service}/127.0.0.5:{port}"
    selfreg_value = etcd_probe.values(f"{DEFAULT_PREFIX}/{service}/")[selfreg_key]

    start_operator("--namespace", namespace, "--observe-delay", "2s")
    annotations = {ANN + "service": service, ANN + "port": str(port)}
    node = kube.node_names[0]
    for i, ip in enumerate(ips):
        core.create_namespaced_pod(namespace, _pod(f"pod-{i}", node, annotations, {"app": "rpc"}))
        wait_for(lambda i=i: pod_is_ready(core.read_namespaced_pod(f"pod-{i}", namespace)),
                 timeout=60, what=f"pod-{i} ready")
        _point_pod_at(core, namespace, f"pod-{i}", ip)
    wait_for(lambda: set(etcd_probe.values(f"{DEFAULT_PREFIX}/{service}/")) ==
             {f"{DEFAULT_PREFIX}/{service}/{ip}:{port}" for ip in [*ips, "127.0.0.5"]},
             timeout=30, what="3 pods registered by the operator beside the self-registered one")

    calls, summary = launcher.run_echo_client(registry_etcd.endpoints, service, calls=60,
                                              interval=0.02, lb="roundrobin")
    assert summary.errors == 0, calls[:5]
    assert set(summary.by_server) == {"pod-0", "pod-1", "pod-2", "self-registered"}, summary

    # The operator never touched the self-registered key, across two observations.
    since = time.monotonic()
    wait_for(lambda: time.monotonic() > since + 4.5, timeout=10, what="two observeDelays")
    assert etcd_probe.values(f"{DEFAULT_PREFIX}/{service}/").get(selfreg_key) == selfreg_value

    # Scale down: pod-0 turns not ready; clients stop calling it after their refresh.
    running = launcher.echo_client(registry_etcd.endpoints, service, interval=0.02,
                                   lb="roundrobin")
    wait_for(lambda: any(c.server == "pod-0" for c in running.calls()), timeout=20,
             what="the client calling pod-0")
    turned = time.time()
    set_pod_ready(core, "pod-0", namespace, False)
    key = f"{DEFAULT_PREFIX}/{service}/127.0.0.2:{port}"
    wait_for(lambda: key not in etcd_probe.values(f"{DEFAULT_PREFIX}/{service}/"), timeout=10,
             what="pod-0's key removed")
    removed = time.time()
    wait_for(lambda: time.time() > turned + 9, timeout=15, what="a client refresh or two")
    summary = running.finish()
    last = max(c.time for c in running.calls() if c.server == "pod-0")
    after = [c for c in running.calls() if c.time > turned + 9 and c.server == "pod-0"]
    print(f"pod not ready -> key deleted: {removed - turned:.2f}s; "
          f"-> last call reaching it: {last - turned:.2f}s")
    assert after == [] and last - turned < 8, f"pod-0 still called {last - turned:.2f}s later"
    assert summary.errors == 0
    selfreg.stop()


def test_hertz_resolver_reads_a_hertz_kitexservice(
        k8s: Any, kube: Any, namespace: str, registry_etcd: Any, etcd_probe: EtcdProbe,
        launcher: Launcher, start_operator: Callable[..., Any]) -> None:
    core = client.CoreV1Api(k8s)
    start_operator("--namespace", namespace)
    node = kube.node_names[0]
    for i in range(2):
        core.create_namespaced_pod(namespace, _pod(f"h-{i}", node, {}, {"app": "web"}))
    wait_for(lambda: all(pod_is_ready(core.read_namespaced_pod(f"h-{i}", namespace))
                         and core.read_namespaced_pod(f"h-{i}", namespace).status.pod_ip
                         for i in range(2)), timeout=60, what="2 ready pods")
    service = f"web/{namespace}"  # Hertz allows '/' in service names
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices",
        {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
         "metadata": {"name": "web"},
         "spec": {"framework": "hertz", "serviceName": service, "port": 8080,
                  "selector": {"matchLabels": {"app": "web"}}}})
    ips = {core.read_namespaced_pod(f"h-{i}", namespace).status.pod_ip for i in range(2)}
    wait_for(lambda: len(etcd_probe.values(f"hertz/registry-etcd/{service}/")) == 2, timeout=30,
             what="2 entries under hertz/registry-etcd")
    result = launcher.hertz_resolve(registry_etcd.endpoints, service)
    assert result.ok, result.error
    assert {i.address for i in result.instances} == {f"{ip}:8080" for ip in ips}
    assert all(i.weight == 10 for i in result.instances)
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", "web")


def _host_ipv4() -> str:
    """This machine's own non-loopback IPv4 address: EndpointSlices refuse loopback ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # UDP: nothing is sent, a route is chosen
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "this machine has no non-loopback IPv4 address"
    return address


def test_kitex_client_calls_a_service_registered_from_its_endpointslices(
        k8s: Any, namespace: str, registry_etcd: Any, etcd_probe: EtcdProbe,
        launcher: Launcher, start_operator: Callable[..., Any]) -> None:
    """No annotation on any pod: the namespace opts in, the Service's EndpointSlices give
    the instances, a real Kitex client resolves and calls every one.

    The slices are written as a custom controller would: the API server refuses
    loopback addresses in slices, so the servers listen on this machine's own
    address, one per port, one slice per port (tests/e2e/test_services.py covers
    kube-controller-manager's slices).
    """
    core = client.CoreV1Api(k8s)
    core.patch_namespace(namespace, {"metadata": {"labels": {
        ANN + "auto-register": "enabled"}}})
    host = _host_ipv4()
    base = 20000 + int(uuid.uuid4().int % 20000)
    ports = [base, base + 1]
    servers = [launcher.echo_server(f"{host}:{p}", f"svc-ep-{i}") for i, p in enumerate(ports)]
    assert servers
    start_operator("--namespace", namespace)
    service = f"svc-{namespace}"  # a name of its own: etcd outlives the test's namespace
    core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "annotations": {
            ANN + "service": service}},
        "spec": {"ports": [{"name": "http", "port": 80}, {"name": "kitex", "port": 8888}]}})
    for i, port in enumerate(ports):
        client.DiscoveryV1Api(k8s).create_namespaced_endpoint_slice(namespace, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}", "labels": {
                "kubernetes.io/service-name": "svc",
                "endpointslice.kubernetes.io/managed-by": "interop-test.example.com"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "kitex", "port": port}],
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}]})
    want = {f"{host}:{port}" for port in ports}
    wait_for(lambda: set(etcd_probe.values(f"{DEFAULT_PREFIX}/{service}/")) ==
             {f"{DEFAULT_PREFIX}/{service}/{address}" for address in want}, timeout=60,
             what="both endpoints registered")
    resolved = launcher.resolve(registry_etcd.endpoints, service)
    assert resolved.ok and {i.address for i in resolved.instances} == want, resolved
    calls, summary = launcher.run_echo_client(registry_etcd.endpoints, service, calls=30,
                                              interval=0.02, lb="roundrobin")
    assert summary.errors == 0, calls[:5]
    assert set(summary.by_server) == {"svc-ep-0", "svc-ep-1"}, summary
