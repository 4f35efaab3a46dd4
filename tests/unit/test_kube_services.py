"""Services and EndpointSlices without a cluster: views, opt-in and opt-out, names, ports,
which endpoints count, and the desired state they make next to pods and KitexServices."""

from __future__ import annotations

import json

import pytest

from kitex_etcd_operator.desired import DesiredState, Source
from kitex_etcd_operator.kube import SpecError, parse_kitexservice, pod_view
from kitex_etcd_operator.kube.services import (
    service_port,
    service_spec,
    service_view,
    slice_instances,
    slice_view,
)
from kitex_etcd_operator.kube.tenancy import parse_policy
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.policy import SERVICE, AutoRegister, PolicySet
from kitex_etcd_operator.retry import RetryConfig
from tests.support.factories import ANNOTATED, endpoint_slice, kitexservice, pod, service

A = "kitex.cloudwego.io/"
ON = AutoRegister(enabled=True)
OFF = AutoRegister()
RETRY = RetryConfig()


def value(address: str, weight: int = 10, tags: str = "null") -> bytes:
    return (f'{{"network":"tcp","address":"{address}","weight":{weight},"tags":{tags}}}'
            ).encode()


# --- views ----------------------------------------------------------------------------

def test_slice_view_reads_conditions_as_the_api_documents_them() -> None:
    body = endpoint_slice("s1", "echo", [("10.0.0.1", True), ("10.0.0.2", False)])
    body["endpoints"].append({"addresses": ["10.0.0.3"]})  # no conditions: ready
    body["endpoints"].append({"addresses": []})  # no address: nothing to register
    view = slice_view(body)
    assert (view.service, view.address_type, view.ports) == ("echo", "IPv4",
                                                              (("kitex", 8888, "TCP"),))
    assert [(e.address, e.ready, e.serving) for e in view.endpoints] == [
        ("10.0.0.1", True, True), ("10.0.0.2", False, False), ("10.0.0.3", True, True)]
    assert view.managed_by == "endpointslice-controller.k8s.io"


def test_views_never_raise_on_odd_bodies() -> None:
    for body in ({}, {"metadata": 1, "spec": [], "endpoints": "x", "ports": [{"port": True}]}):
        assert slice_view(body).endpoints == ()
        assert service_view(body).ports == ()


# --- which Services register, as what ---------------------------------------------------

def test_opt_in_by_namespace_or_annotation_and_opt_out() -> None:
    plain = service_view(service("echo"))
    assert service_spec(plain, OFF, RETRY) is None
    spec = service_spec(plain, ON, RETRY)
    assert spec is not None and (spec.service_name, spec.port) == ("echo", "")
    named = service_view(service("echo", annotations={A + "service": "echo-rpc"}))
    spec = service_spec(named, OFF, RETRY)
    assert spec is not None and spec.service_name == "echo-rpc"
    out = service_view(service("echo", annotations={A + "auto-register": "disabled",
                                                    A + "service": "x"}))
    assert service_spec(out, ON, RETRY) is None


def test_name_template_weight_tags_from_service_labels() -> None:
    view = service_view(service("echo", ns="shop", labels={"zone": "z1"}, annotations={
        A + "weight": "5", A + "tags": "env=prod", A + "tags-from-labels": "zone"}))
    spec = service_spec(view, AutoRegister(True, "{name}.{namespace}"), RETRY)
    assert spec is not None
    assert (spec.service_name, spec.weight, spec.tags) == (
        "echo.shop", 5, (("env", "prod"), ("zone", "z1")))


@pytest.mark.parametrize(("notes", "field"), [
    ({A + "weight": "heavy"}, f"metadata.annotations[{A}weight]"),
    ({A + "host": "10.0.0.1"}, f"metadata.annotations[{A}host]"),
    ({A + "port": "Not_A_Port"}, f"metadata.annotations[{A}port]"),
    ({A + "wieght": "5"}, f"metadata.annotations[{A}wieght]"),
    # Past 4,300 digits int() raises a plain ValueError, which escaped as a crash.
    ({A + "port": "9" * 5000}, f"metadata.annotations[{A}port]"),
    ({A + "weight": "9" * 5000}, f"metadata.annotations[{A}weight]"),
    ({A + "tags": '{"a":' + "[" * 5000 + "]" * 5000 + "}"}, f"metadata.annotations[{A}tags]"),
    ({A + "tags": '{"a":' + "[" * 100000 + "]" * 100000 + "}"},
     f"metadata.annotations[{A}tags]"),
])
def test_bad_service_annotations_name_the_annotation(notes: dict[str, str], field: str) -> None:
    with pytest.raises(SpecError) as err:
        service_spec(service_view(service("echo", annotations=notes)), ON, RETRY)
    assert err.value.field == field


def test_service_port_rule() -> None:
    two = service_view(service("echo", ports=[
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "kitex", "port": 9000, "protocol": "TCP"}]))
    assert service_port(two, "", "p") == "kitex"
    assert service_port(two, "http", "p") == "http"
    assert service_port(two, 80, "p") == "http"
    only = service_view(service("echo", ports=[{"port": 80, "protocol": "TCP"}]))
    assert service_port(only, "", "p") == ""
    neither = service_view(service("echo", ports=[
        {"name": "a", "port": 1, "protocol": "TCP"}, {"name": "b", "port": 2, "protocol": "TCP"}]))
    with pytest.raises(SpecError, match="none named 'kitex'"):
        service_port(neither, "", "p")
    with pytest.raises(SpecError, match="no TCP port 'c'"):
        service_port(neither, "c", "p")


def test_ready_endpoints_with_the_target_port_both_families() -> None:
    spec = service_spec(service_view(service("echo")), ON, RETRY)
    assert spec is not None
    v4 = slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True), ("10.0.0.2", False)]))
    v6 = slice_view(endpoint_slice("s2", "echo", [("fd00::1", True)], address_type="IPv6"))
    assert [i.address for i in slice_instances(v4, spec, "kitex")[0]] == ["10.0.0.1:8888"]
    assert [i.address for i in slice_instances(v6, spec, "kitex")[0]] == ["[fd00::1]:8888"]
    assert slice_instances(v4, spec, "other") == ([], [])


def test_ready_is_not_enough_for_a_terminating_or_not_serving_endpoint() -> None:
    """A Service with publishNotReadyAddresses has ready set on every endpoint, by the
    EndpointSlice controller: terminating or not serving, the pod is not an instance."""
    spec = service_spec(service_view(service("echo")), ON, RETRY)
    assert spec is not None
    leaving = slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True)], serving=True,
                                        terminating=True))
    unready = slice_view(endpoint_slice("s2", "echo", [("10.0.0.2", True)], serving=False))
    assert slice_instances(leaving, spec, "kitex")[0] == []
    assert slice_instances(unready, spec, "kitex")[0] == []


def test_publish_not_ready_takes_serving_never_terminating() -> None:
    spec = service_spec(service_view(service("echo")), AutoRegister(True, publish_not_ready=True),
                        RETRY)
    assert spec is not None
    serving = slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", False)], serving=True))
    leaving = slice_view(endpoint_slice("s2", "echo", [("10.0.0.2", False)], serving=True,
                                        terminating=True))
    assert len(slice_instances(serving, spec, "kitex")[0]) == 1
    assert slice_instances(leaving, spec, "kitex")[0] == []


def test_kitexservice_service_ref_excludes_selector_and_pod_fields() -> None:
    body = kitexservice("api", serviceRef={"name": "echo", "port": "kitex"})
    del body["spec"]["selector"]
    spec = parse_kitexservice(body)
    assert (spec.service_ref, spec.port) == ("echo", "kitex")
    with pytest.raises(SpecError, match=r"spec\.selector"):
        parse_kitexservice(kitexservice("api", serviceRef={"name": "echo"}))
    body["spec"]["port"] = 8888
    with pytest.raises(SpecError, match=r"spec\.port"):
        parse_kitexservice(body)


def test_policy_auto_register_settings() -> None:
    rule = parse_policy({"metadata": {"name": "p"}, "spec": {
        "namespaceSelector": {}, "autoRegister": {"enabled": True,
                                                  "nameTemplate": "{name}.{namespace}",
                                                  "portName": "rpc"}}})
    assert rule.auto_register == AutoRegister(True, "{name}.{namespace}", "rpc", False)
    with pytest.raises(SpecError, match="portName"):
        parse_policy({"metadata": {"name": "p"}, "spec": {
            "namespaceSelector": {}, "autoRegister": {"portName": "Bad_Name"}}})


# --- the desired state --------------------------------------------------------------------

ECHO = Binding("default", "kitex/registry-etcd", "echo")


def labelled() -> DesiredState:
    state = DesiredState()
    state.set_namespaces({"default": {A + "auto-register": "enabled"}, "other": {}})
    return state


def test_state_registers_a_labelled_namespaces_service_and_follows_its_slices() -> None:
    state = labelled()
    state.upsert_slice(slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True)])))
    assert state.values(ECHO) == {}  # a slice before its Service: nothing yet
    state.upsert_service(service_view(service("echo")))
    assert state.values(ECHO) == {"kitex/registry-etcd/echo/10.0.0.1:8888":
                                  value("10.0.0.1:8888")}
    state.upsert_slice(slice_view(endpoint_slice("s2", "echo", [("10.0.0.2", True)])))
    assert len(state.values(ECHO)) == 2
    state.remove_slice("s1")
    assert list(state.values(ECHO)) == ["kitex/registry-etcd/echo/10.0.0.2:8888"]
    assert state.sources(ECHO) == {Source(SERVICE, "default", "echo"): "namespace/default"}
    state.set_namespace("default", {})  # the label removed: the entries leave
    assert state.values(ECHO) == {} and not state.claimed(ECHO)


def test_explicit_registration_wins_and_the_service_says_why() -> None:
    state = labelled()
    state.upsert_service(service_view(service("echo")))
    state.upsert_slice(slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True)])))
    state.upsert_pod(pod_view(pod("a", "10.0.0.1", annotations={**ANNOTATED,
                                                                A + "weight": "3"})))
    assert state.values(ECHO) == {"kitex/registry-etcd/echo/10.0.0.1:8888":
                                  value("10.0.0.1:8888", weight=3)}
    assert state.service_errors[("default", "echo")].reason == "SourceConflict"
    state.remove_pod("a")  # the explicit source gone: the Service registers again
    assert state.values(ECHO) == {"kitex/registry-etcd/echo/10.0.0.1:8888":
                                  value("10.0.0.1:8888")}
    assert ("default", "echo") not in state.service_errors


def test_a_kitexservice_service_ref_replaces_auto_registration() -> None:
    state = labelled()
    state.upsert_service(service_view(service("echo")))
    state.upsert_slice(slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True)])))
    body = kitexservice("api", serviceRef={"name": "echo"}, weight=7)
    del body["spec"]["selector"]
    state.upsert_spec(("default", "api"), parse_kitexservice(body), {})
    state.upsert_pod(pod_view(pod("a", "10.0.0.5", labels={"app": "echo"})))  # not selected
    api = Binding("default", "kitex/registry-etcd", "api")
    assert state.values(api) == {"kitex/registry-etcd/api/10.0.0.1:8888":
                                 value("10.0.0.1:8888", weight=7)}
    assert state.values(ECHO) == {} and not state.claimed(ECHO)


def test_tags_too_large_for_an_entry_are_the_services_error() -> None:
    """Go escapes each `<` as 6 bytes: 20 KB of tags made 120 KB entries, one per
    endpoint, with no bound on this path (the pod path had one)."""
    state = labelled()
    tags = json.dumps({f"k{i}": "<" * 1000 for i in range(20)})
    state.upsert_service(service_view(service("echo")))
    state.upsert_service(service_view(service("big", annotations={A + "tags": tags})))
    for name in ("echo", "big"):
        state.upsert_slice(slice_view(endpoint_slice(f"s-{name}", name, [("10.0.0.1", True)])))
    error = state.service_errors[("default", "big")]
    assert error.field == f"metadata.annotations[{A}tags]" and "4096" in error.message
    assert state.values(Binding("default", "kitex/registry-etcd", "big")) == {}
    assert list(state.values(ECHO)) == ["kitex/registry-etcd/echo/10.0.0.1:8888"]


def test_tags_too_large_for_an_entry_are_the_service_refs_error() -> None:
    state = labelled()
    state.upsert_service(service_view(service("echo")))
    state.upsert_slice(slice_view(endpoint_slice("s1", "echo", [("10.0.0.1", True)])))
    body = kitexservice("api", serviceRef={"name": "echo"},  # what the CRD admits
                        tags={f"k{i}": "<" * 1024 for i in range(64)})
    del body["spec"]["selector"]
    state.upsert_spec(("default", "api"), parse_kitexservice(body), {})
    error = state.service_errors[("default", "echo")]
    assert error.field == "spec.tags" and "4096" in error.message
    assert state.values(Binding("default", "kitex/registry-etcd", "api")) == {}


def test_an_unlisted_namespace_under_a_policy_registers_nothing() -> None:
    state = DesiredState(policies=PolicySet([parse_policy({"metadata": {"name": "p"}, "spec": {
        "namespaceSelector": {"matchLabels": {"team": "a"}},
        "autoRegister": {"enabled": True}}})]))
    state.set_namespaces({"default": {"team": "a"}, "other": {}})
    for ns in ("default", "other"):
        state.upsert_service(service_view(service("echo", ns=ns,
                                                  annotations={A + "service": "echo"})))
        state.upsert_slice(slice_view(endpoint_slice(f"s-{ns}", "echo", [("10.0.0.1", True)],
                                                     ns=ns)))
    assert state.namespaces_of(ECHO, "namespace/default") == {"default"}
    assert state.service_errors[("other", "echo")].reason == "RegistrationRefused"
