"""Each attack of a tenant on another team's service, against the real operator and cluster.

Threat model and mitigations: docs/security.md. Every test lets team-b try
one attack on team-a's ``payment`` and then proves three things: the attempt
is refused where team-b looks (a condition or an Event naming the owner or
the rule), team-a's entries are byte-identical on the same lease with not one
etcd event on their range, and a real Kitex resolver (registry-etcd's Go
code) returns exactly team-a's instances.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.interop.programs import Launcher
from tests.support.etcd_probe import EtcdProbe, wait_keys
from tests.support.helpers import wait_for
from tests.support.kube_objects import ANN, PREFIX, deployment, expected, ready_pods
from tests.tenancy.teams import Teams

pytestmark = pytest.mark.interop
CREDENTIALS = "kitex.cloudwego.io/etcd-credentials"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with Launcher(tmp_path_factory.mktemp("tenancy")) as launch:
        yield launch


def resolved(launcher: Launcher, registry_etcd: Any, service: str) -> set[str]:
    """What a Kitex client of ``service`` gets, through registry-etcd's own resolver."""
    result = launcher.resolve(list(registry_etcd.endpoints), service)
    return set(result.by_address())


def team_a_addresses(t: Teams) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in t.before}


def attacker_pods(k8s: Any, t: Teams, annotations: dict[str, str], replicas: int = 2) -> None:
    client.AppsV1Api(k8s).create_namespaced_deployment(t.b, deployment(
        "intruder", replicas, annotations=annotations))


# --- 1. hijack by merging ----------------------------------------------------------------

def test_annotated_pods_of_another_namespace_cannot_join_a_service(
        k8s: Any, teams: Callable[..., Teams], launcher: Launcher, registry_etcd: Any) -> None:
    t = teams()
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    attacker_pods(k8s, t, {ANN + "service": t.service, ANN + "port": "8888",
                           ANN + "weight": "2147483647"})
    event = t.wait_event(t.b, "NotOwner")
    assert event.involved_object.kind == "Pod" and f"namespace {t.a}" in event.message
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()


def test_a_kitexservice_of_another_namespace_cannot_join_nor_redirect(
        k8s: Any, teams: Callable[..., Teams], launcher: Launcher, registry_etcd: Any) -> None:
    t = teams()
    attacker_pods(k8s, t, {}, replicas=1)
    t.kitexservice(t.b, "metadata-ip", {
        "serviceName": t.service, "port": 8888, "weight": 2147483647,
        "selector": {"matchLabels": {"app": "intruder"}},
        "address": {"host": "169.254.169.254"}})
    t.kitexservice(t.b, "node-ip", {
        "serviceName": t.service, "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "address": {"source": "hostIP"}})
    for name in ("metadata-ip", "node-ip"):
        cond = wait_for(lambda n=name: (c := t.condition(t.b, n, "Conflict"))
                        and c["status"] == "True" and c, timeout=60,
                        what=f"a Conflict condition on {name}")
        assert cond["reason"] == "NotOwner" and f"namespace {t.a}" in cond["message"]
        assert t.condition(t.b, name, "Ready")["status"] == "False"
        assert t.status(t.b, name).get("readyInstances") == 0
        t.wait_event(t.b, "NotOwner", name)
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()


# --- 2. settings takeover ------------------------------------------------------------------

def test_another_namespace_cannot_change_the_lease_or_retry_of_a_service(
        k8s: Any, teams: Callable[..., Teams], etcd_probe: EtcdProbe) -> None:
    t = teams()
    lease = next(iter(t.before.values())).lease
    ttl_before = _granted_ttl(etcd_probe, lease)
    t.kitexservice(t.b, "takeover", {
        "serviceName": t.service, "port": 8888, "leaseTTL": 5,
        "retry": {"observeDelay": "1s", "retryDelay": "1s"},
        "selector": {"matchLabels": {"app": "none"}}})
    wait_for(lambda: t.condition(t.b, "takeover", "Conflict").get("reason") == "NotOwner",
             timeout=60, what="NotOwner on the takeover KitexService")
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        "kitex.cloudwego.io", "v1alpha1", t.b, "kitexservices", "takeover")
    wait_for(lambda: not _exists(k8s, t.b, "takeover"), timeout=60,
             what="the takeover KitexService gone")
    assert _granted_ttl(etcd_probe, lease) == ttl_before
    t.assert_untouched()


def _granted_ttl(probe: EtcdProbe, lease: int) -> int:
    import json
    return int(json.loads(probe.run("lease", "timetolive", f"{lease:x}", "-w", "json"))
               ["granted-ttl"])


def _exists(k8s: Any, namespace: str, name: str) -> bool:
    try:
        client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            "kitex.cloudwego.io", "v1alpha1", namespace, "kitexservices", name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


# --- 3. nested ranges ----------------------------------------------------------------------

def test_a_range_inside_another_service_is_refused(
        k8s: Any, teams: Callable[..., Teams], launcher: Launcher, registry_etcd: Any,
        etcd_probe: EtcdProbe) -> None:
    t = teams()
    attacker_pods(k8s, t, {}, replicas=1)
    t.kitexservice(t.b, "nested", {
        "serviceName": "x", "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"prefix": f"{PREFIX}/{t.service}"}})
    cond = wait_for(lambda: (c := t.condition(t.b, "nested", "Conflict"))
                    and c.get("status") == "True" and c, timeout=60,
                    what="a Conflict condition on the nested KitexService")
    assert cond["reason"] == "RangeConflict" and t.range in cond["message"]
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()

    # Hertz allows '/' in names: "x" and "x/inner" nest the same way.
    hertz = f"h-{t.service}"
    t.kitexservice(t.a, "hertz", {
        "serviceName": hertz, "framework": "hertz", "port": 8888,
        "selector": {"matchLabels": {"app": "payment"}}})
    wait_keys(etcd_probe, f"hertz/registry-etcd/{hertz}/",
              lambda: len(etcd_probe.values(f"hertz/registry-etcd/{hertz}/")) == 3,
              timeout=60, what="the Hertz service registered")
    t.kitexservice(t.b, "hertz-inner", {
        "serviceName": f"{hertz}/inner", "framework": "hertz", "port": 8888,
        "selector": {"matchLabels": {"app": "intruder"}}})
    wait_for(lambda: t.condition(t.b, "hertz-inner", "Conflict").get("reason")
             == "RangeConflict", timeout=60, what="RangeConflict on the inner Hertz service")
    assert len(etcd_probe.values(f"hertz/registry-etcd/{hertz}/")) == 3


def test_a_range_equal_to_another_service_is_refused(
        k8s: Any, teams: Callable[..., Teams], launcher: Launcher, registry_etcd: Any) -> None:
    """Hertz ``kitex`` + ``registry-etcd/<payment>`` is payment's very range, yet another
    binding: ownership, decided per binding, gave it an owner of its own, and its first
    sync (blind: no lease of its own there) put its instance among payment's."""
    t = teams()
    attacker_pods(k8s, t, {}, replicas=1)
    wait_for(lambda: ready_pods(t.core, t.b, "intruder"), timeout=60,
             what="team-b's pod ready, so that its instance is there to write")
    root, rest = PREFIX.split("/", 1)
    t.kitexservice(t.b, "same-range", {
        "serviceName": f"{rest}/{t.service}", "framework": "hertz", "port": 8888,
        "weight": 2147483647, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"prefix": root}})
    cond = wait_for(lambda: (c := t.condition(t.b, "same-range", "Conflict"))
                    and c.get("status") == "True" and c, timeout=60,
                    what="a Conflict condition on the same-range KitexService")
    assert cond["reason"] == "RangeConflict" and t.range in cond["message"]
    assert t.condition(t.b, "same-range", "Ready")["status"] == "False"
    t.wait_event(t.b, "RangeConflict", "same-range")
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()


# --- 4. a second connection to the same etcd ------------------------------------------------

def test_endpoints_reaching_the_operators_etcd_get_no_second_scope(
        k8s: Any, teams: Callable[..., Teams], registry_etcd: Any, kube: Any) -> None:
    t = teams("--allow-custom-endpoints")
    port = registry_etcd.endpoints[0].rsplit(":", 1)[1]
    attacker_pods(k8s, t, {}, replicas=1)
    # The same etcd, written another way: refused before any connection...
    t.kitexservice(t.b, "alias", {
        "serviceName": "other", "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"endpoints": [f"127.0.0.1:{port}"]}})
    # ...and by another name: refused once etcd's own cluster id is known.
    t.kitexservice(t.b, "by-name", {
        "serviceName": t.service, "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"endpoints": [f"localhost:{port}"]}})
    cond = wait_for(lambda: (c := t.condition(t.b, "alias", "Ready")) and
                    c.get("status") == "False" and c, timeout=60, what="alias refused")
    assert "reach registry default" in cond["message"]
    cond = wait_for(lambda: (c := t.condition(t.b, "by-name", "Ready")) and
                    c.get("status") == "False" and "cluster" in c.get("message", "") and c,
                    timeout=60, what="by-name refused")
    assert "registry default" in cond["message"]
    # A dial timeout alone cannot make a second connection either: refused at admission.
    refused = kube.kubectl("apply", "-n", t.b, "-f", "-", check=False, input=(
        "apiVersion: kitex.cloudwego.io/v1alpha1\nkind: KitexService\nmetadata: {name: dial}\n"
        f"spec: {{serviceName: {t.service}, port: 1, selector: {{matchLabels: {{app: x}}}},"
        " etcd: {dialTimeout: 1s}}\n"))
    assert refused.returncode != 0 and "dialTimeout needs endpoints" in refused.stderr
    for name in ("alias", "by-name"):
        client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
            "kitex.cloudwego.io", "v1alpha1", t.b, "kitexservices", name)
    wait_for(lambda: not _exists(k8s, t.b, "by-name") and not _exists(k8s, t.b, "alias"),
             timeout=60, what="the attacking KitexServices gone")
    t.assert_untouched()


# --- 5. freezing a service with large values ------------------------------------------------

def test_oversized_entries_are_an_error_of_their_own_object(
        k8s: Any, teams: Callable[..., Teams], etcd_probe: EtcdProbe) -> None:
    t = teams()
    attacker_pods(k8s, t, {}, replicas=2)
    t.kitexservice(t.b, "bulk", {
        "serviceName": f"bulk-{t.service}", "port": 8888,
        "selector": {"matchLabels": {"app": "intruder"}},
        "tags": {f"t{i}": "v" * 1000 for i in range(60)}})
    cond = wait_for(lambda: (c := t.condition(t.b, "bulk", "InvalidPods"))
                    and c.get("status") == "True" and c, timeout=60,
                    what="InvalidPods on the oversized KitexService")
    assert "spec.tags" in cond["message"] and "4096" in cond["message"]
    assert etcd_probe.values(f"{PREFIX}/bulk-{t.service}/") == {}
    # team-a's service keeps syncing: a scale-up lands while the attacker is there.
    t.stop_watching()
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale("payment", t.a,
                                                            {"spec": {"replicas": 4}})
    core = client.CoreV1Api(k8s)
    wait_keys(etcd_probe, t.range,
              lambda: len(exp := expected(core, t.a, "payment", t.service, 8888)) == 4
              and etcd_probe.values(t.range) == exp, timeout=60, what="team-a's 4th instance")


# --- 6. status leaks -------------------------------------------------------------------------

def test_status_shows_only_the_objects_own_instances(
        k8s: Any, teams: Callable[..., Teams],
        cluster_objects: Callable[..., None]) -> None:
    run = uuid.uuid4().hex[:6]
    cluster_objects("kitexregistrationpolicies", f"shared-{run}", {
        "namespaceSelector": {"matchLabels": {"bluegreen": run}},
        "serviceNames": ["*"], "sharedServiceNames": ["payment-*"]})
    t = teams(labels_a={"bluegreen": run}, labels_b={"bluegreen": run}, settle=False)
    for ns in (t.a, t.b):
        if ns == t.b:
            client.AppsV1Api(k8s).create_namespaced_deployment(ns, deployment("payment", 2))
        t.kitexservice(ns, "payment", {"serviceName": t.service, "port": 8888,
                                       "selector": {"matchLabels": {"app": "payment"}}})
    core = client.CoreV1Api(k8s)
    wait_for(lambda: len(t.probe.values(t.range)) == 5, timeout=90,
             what="both namespaces' instances (shared name)")
    for ns, count in ((t.a, 3), (t.b, 2)):
        own = {f"{p.status.pod_ip}:8888" for p in core.list_namespaced_pod(ns).items
               if p.status.pod_ip}
        status = wait_for(lambda n=ns, c=count: (s := t.status(n, "payment"))
                          and s.get("readyInstances") == c and s, timeout=60,
                          what=f"{ns}'s status with its {count} instances")
        assert set(status["registeredAddresses"]) == own


# --- 7. endpoints pointing anywhere ---------------------------------------------------------

def test_tenant_endpoints_are_refused_or_summarised(
        k8s: Any, teams: Callable[..., Teams], kube: Any,
        cluster_objects: Callable[..., None]) -> None:
    t = teams()
    for bad in ("unix:///var/run/secrets/x", "https://", "dns:///etcd:2379"):
        refused = kube.kubectl("apply", "-n", t.b, "-f", "-", check=False, input=(
            "apiVersion: kitex.cloudwego.io/v1alpha1\nkind: KitexService\n"
            "metadata: {name: scan}\nspec: {serviceName: scan, port: 1, "
            f"selector: {{matchLabels: {{app: x}}}}, etcd: {{endpoints: ['{bad}']}}}}\n"))
        assert refused.returncode != 0 and "spec.etcd.endpoints" in refused.stderr, bad
    # Without a policy allowing it, endpoints of one's own are refused by the default.
    t.kitexservice(t.b, "probe", {
        "serviceName": "probe", "port": 8888, "selector": {"matchLabels": {"app": "x"}},
        "etcd": {"endpoints": ["127.0.0.1:1"]}})
    cond = wait_for(lambda: (c := t.condition(t.b, "probe", "Ready"))
                    and c.get("reason") == "RegistrationRefused" and c, timeout=60,
                    what="RegistrationRefused on custom endpoints")
    assert "spec.etcd.endpoints" in cond["message"]
    # Allowed by a policy: the error says what the operator knows, not what the far end
    # said. (team-a's policy first: once a policy exists, unselected namespaces get nothing.)
    cluster_objects("kitexregistrationpolicies", f"victim-{t.a}", {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.a}}})
    cluster_objects("kitexregistrationpolicies", f"custom-{t.b}", {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.b}},
        "allowCustomEndpoints": True})
    attacker_pods(k8s, t, {}, replicas=1)
    t.custom.patch_namespaced_custom_object("kitex.cloudwego.io", "v1alpha1", t.b,
                                            "kitexservices", "probe",
                                            {"spec": {"selector": {"matchLabels":
                                                                   {"app": "intruder"}}}})
    summary = "etcd unavailable: no endpoint answered"
    cond = wait_for(lambda: (c := t.condition(t.b, "probe", "Ready"))
                    and summary in c.get("message", "") and c, timeout=90,
                    what="the unreachable endpoint reported")
    message = cond["message"].lower()
    assert "etcd unavailable: no endpoint answered" in message
    for remote in ("refused", "failed to connect", "ipv4:", "errno"):
        assert remote not in message, cond["message"]
    t.assert_untouched()


# --- 8. confused deputy on Secrets ----------------------------------------------------------

def test_only_credentials_secrets_of_the_objects_namespace_are_read(
        k8s: Any, teams: Callable[..., Teams], registry_etcd: Any, kube: Any) -> None:
    t = teams("--allow-custom-endpoints")
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(t.b, {
        "metadata": {"name": "someones-login"}, "type": "kubernetes.io/basic-auth",
        "data": {"username": base64.b64encode(b"root").decode(),
                 "password": base64.b64encode(b"s3cret-of-someone").decode()}})
    core.create_namespaced_secret(t.b, {
        "metadata": {"name": "empty-tls"}, "type": CREDENTIALS,
        "data": {"tls.crt": base64.b64encode(b"x").decode()}})
    attacker_pods(k8s, t, {}, replicas=1)
    # A second etcd of the attacker's own would do; any endpoint that is not a registry.
    t.kitexservice(t.b, "deputy", {
        "serviceName": "deputy", "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"endpoints": ["127.0.0.2:2379"], "authSecretRef": {"name": "someones-login"}}})
    t.kitexservice(t.b, "no-ca", {
        "serviceName": "no-ca", "port": 8888, "selector": {"matchLabels": {"app": "intruder"}},
        "etcd": {"endpoints": ["127.0.0.2:2379"], "tlsSecretRef": {"name": "empty-tls"}}})
    cond = wait_for(lambda: (c := t.condition(t.b, "deputy", "Ready"))
                    and "kubernetes.io/basic-auth" in c.get("message", "") and c, timeout=60,
                    what="the basic-auth Secret refused")
    assert CREDENTIALS in cond["message"] and "s3cret" not in cond["message"]
    cond = wait_for(lambda: (c := t.condition(t.b, "no-ca", "Ready"))
                    and "ca.crt" in c.get("message", "") and c, timeout=60,
                    what="a TLS Secret without a CA refused")
    # Secrets never travel with the operator's etcd: refused at admission.
    refused = kube.kubectl("apply", "-n", t.b, "-f", "-", check=False, input=(
        "apiVersion: kitex.cloudwego.io/v1alpha1\nkind: KitexService\nmetadata: {name: ca}\n"
        "spec: {serviceName: ca, port: 1, selector: {matchLabels: {app: x}}, "
        "etcd: {tlsSecretRef: {name: empty-tls}}}\n"))
    assert refused.returncode != 0 and "tlsSecretRef needs endpoints" in refused.stderr
    t.assert_untouched()


# --- admin rules -----------------------------------------------------------------------------

def test_policy_rules_refuse_names_weights_and_unselected_namespaces(
        k8s: Any, teams: Callable[..., Teams], cluster_objects: Callable[..., None],
        launcher: Launcher, registry_etcd: Any) -> None:
    run = uuid.uuid4().hex[:6]
    cluster_objects("kitexregistrationpolicies", f"team-a-{run}", {
        "namespaceSelector": {"matchLabels": {"tenant": f"a-{run}"}},
        "serviceNames": ["payment-*"], "maxWeight": 100})
    cluster_objects("kitexregistrationpolicies", f"team-b-{run}", {
        "namespaceSelector": {"matchLabels": {"tenant": f"b-{run}"}},
        "serviceNames": ["{namespace}.*"], "maxWeight": 100})
    t = teams(labels_a={"tenant": f"a-{run}"}, labels_b={"tenant": f"b-{run}"})
    attacker_pods(k8s, t, {ANN + "service": t.service, ANN + "port": "8888"})
    event = t.wait_event(t.b, "RegistrationRefused")
    assert "serviceNames" in event.message and f"team-b-{run}" in event.message
    t.kitexservice(t.b, "heavy", {"serviceName": f"{t.b}.heavy", "port": 8888, "weight": 1000,
                                  "selector": {"matchLabels": {"app": "intruder"}}})
    cond = wait_for(lambda: (c := t.condition(t.b, "heavy", "Ready"))
                    and c.get("reason") == "RegistrationRefused" and c, timeout=60,
                    what="the weight refused")
    assert "spec.weight" in cond["message"] and "maxWeight" in cond["message"]
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()


# --- legitimate cases ------------------------------------------------------------------------

def test_the_owner_keeps_its_name_across_restarts_and_rollouts(
        k8s: Any, teams: Callable[..., Teams], start_operator: Callable[..., Any],
        etcd_probe: EtcdProbe, launcher: Launcher, registry_etcd: Any) -> None:
    t = teams()
    attacker_pods(k8s, t, {ANN + "service": t.service, ANN + "port": "8888"}, replicas=1)
    t.wait_event(t.b, "NotOwner")
    # A roll of team-a: every new pod is younger than the intruder; the record decides.
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    t.stop_watching()
    old = {p.metadata.name for p in core.list_namespaced_pod(t.a).items}
    apps.patch_namespaced_deployment(namespace=t.a, name="payment", body={
        "spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}})
    # kwok may hand a freed IP to a new pod: judge the roll by pod names.
    wait_for(lambda: not ({p.metadata.name for p in core.list_namespaced_pod(t.a).items} & old)
             and len(exp := expected(core, t.a, "payment", t.service, 8888)) == 3
             and etcd_probe.values(t.range) == exp, timeout=120,
             what="team-a's rolled pods, and only them")
    intruder = {f"{p.status.pod_ip}:8888" for p in core.list_namespaced_pod(t.b).items
                if p.status.pod_ip}
    assert not intruder & resolved(launcher, registry_etcd, t.service)
    # A new operator (a restart, or a new leader) reads the owner from etcd, not from ages.
    rolled = etcd_probe.get_prefix(t.range)
    t.operator.stop()
    t.operator = start_operator("--namespace", t.a, "--namespace", t.b)
    watch = etcd_probe.watch(t.range)
    try:
        # ready (start_operator waits for /readyz) means every service was synced once
        assert {k: v.value for k, v in etcd_probe.get_prefix(t.range).items()} == \
            {k: v.value for k, v in rolled.items()}
        assert watch.deletes() == []
    finally:
        watch.stop()


# --- the Service source ---------------------------------------------------------------------

def test_a_service_of_another_namespace_cannot_join_a_service(
        k8s: Any, teams: Callable[..., Teams], launcher: Launcher, registry_etcd: Any) -> None:
    """team-b opts its namespace in and names a Service, and a hand-written slice, after
    team-a's service: the Service source goes through the same ownership as pods."""
    t = teams()
    core = client.CoreV1Api(k8s)
    core.patch_namespace(t.b, {"metadata": {"labels": {ANN + "auto-register": "enabled"}}})
    attacker_pods(k8s, t, {})
    ports = [{"name": "kitex", "port": 8888, "protocol": "TCP"}]
    core.create_namespaced_service(t.b, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "intruder", "annotations": {ANN + "service": t.service,
                                                         ANN + "weight": "2147483647"}},
        "spec": {"selector": {"app": "intruder"}, "ports": ports}})
    core.create_namespaced_service(t.b, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "by-hand", "annotations": {ANN + "service": t.service}},
        "spec": {"ports": ports}})
    client.DiscoveryV1Api(k8s).create_namespaced_endpoint_slice(t.b, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "by-hand-1", "labels": {
            "kubernetes.io/service-name": "by-hand",
            "endpointslice.kubernetes.io/managed-by": "attacker.example.com"}},
        "addressType": "IPv4", "ports": ports,
        "endpoints": [{"addresses": ["10.66.0.1"], "conditions": {"ready": True}}]})
    for name in ("intruder", "by-hand"):
        event = t.wait_event(t.b, "NotOwner", name)
        assert event.involved_object.kind == "Service" and f"namespace {t.a}" in event.message
    assert resolved(launcher, registry_etcd, t.service) == team_a_addresses(t)
    t.assert_untouched()
