"""Desired state: which pods become which keys, event by event, with dirty tracking."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kitex_etcd_operator import desired
from kitex_etcd_operator.desired import DesiredState, EtcdAccess, Source
from kitex_etcd_operator.kube import (
    PodView,
    ServiceSpec,
    instance_for,
    parse_kitexservice,
    pod_view,
    spec_from_annotations,
)
from kitex_etcd_operator.kube.services import ServiceView, service_spec, service_view, slice_view
from kitex_etcd_operator.plan import Binding
from tests.support.factories import ANNOTATED, endpoint_slice, kitexservice, pod, service

DEFAULT = Binding("default", "kitex/registry-etcd", "echo")




def test_annotated_ready_pod_gives_one_key() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    assert state.values(DEFAULT) == {
        "kitex/registry-etcd/echo/10.0.0.1:8888":
            b'{"network":"tcp","address":"10.0.0.1:8888","weight":10,"tags":null}'}
    assert state.take_dirty() == {DEFAULT: {"kitex/registry-etcd/echo/10.0.0.1:8888"}}
    assert state.take_dirty() == {}


def test_not_ready_and_terminating_pods_leave() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.take_dirty()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED, ready=False)))
    assert state.values(DEFAULT) == {}
    assert state.take_dirty() == {DEFAULT: {"kitex/registry-etcd/echo/10.0.0.1:8888"}}
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED, deleting=True)))
    assert state.values(DEFAULT) == {}


def test_losing_the_annotation_removes_the_key() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.upsert_pod(pod_view(pod("a")))
    assert state.values(DEFAULT) == {}


def test_malformed_annotation_is_a_pod_error_not_a_crash() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations={**ANNOTATED,
                                                    "kitex.cloudwego.io/weight": "heavy"})))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", annotations=ANNOTATED)))
    assert "a" in state.pod_errors
    assert "weight" in state.pod_errors["a"][1].field
    assert list(state.values(DEFAULT)) == ["kitex/registry-etcd/echo/10.0.0.2:8888"]


def test_an_unexpected_exception_is_that_pods_error_not_the_watchs(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A parser bug on one pod must not escape: the pod watch would crash, relist, meet
    the pod again and crash again, and every tenant's changes would stop."""
    def parse(view: PodView, **kw: Any) -> Any:
        if view.name == "pod-a":
            raise RecursionError("a bug")
        return spec_from_annotations(view, **kw)

    monkeypatch.setattr(desired, "spec_from_annotations", parse)
    state = DesiredState()
    with caplog.at_level(logging.ERROR):
        state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", annotations=ANNOTATED)))
    error = state.pod_errors["a"][1]
    assert error.field == "metadata.annotations" and "RecursionError" in error.message
    assert any(r.exc_info and "pod default/pod-a" in r.getMessage() for r in caplog.records)
    assert list(state.values(DEFAULT)) == ["kitex/registry-etcd/echo/10.0.0.2:8888"]


def test_an_unexpected_exception_making_an_instance_is_that_pods_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def make(view: PodView, spec: ServiceSpec) -> Any:
        if view.name == "pod-a":
            raise ValueError("a bug")
        return instance_for(view, spec)

    monkeypatch.setattr(desired, "instance_for", make)
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", annotations=ANNOTATED)))
    assert "ValueError" in state.pod_errors["a"][1].message
    assert list(state.values(DEFAULT)) == ["kitex/registry-etcd/echo/10.0.0.2:8888"]


def test_an_unexpected_exception_is_that_services_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(view: ServiceView, *args: Any) -> Any:
        if view.name == "bad":
            raise RecursionError("a bug")
        return service_spec(view, *args)

    monkeypatch.setattr(desired, "service_spec", parse)
    state = DesiredState()
    state.set_namespaces({"default": {"kitex.cloudwego.io/auto-register": "enabled"}})
    for name in ("bad", "echo"):
        state.upsert_service(service_view(service(name)))
        state.upsert_slice(slice_view(endpoint_slice(f"s-{name}", name, [("10.0.0.1", True)])))
    assert "RecursionError" in state.service_errors[("default", "bad")].message
    assert list(state.values(DEFAULT)) == ["kitex/registry-etcd/echo/10.0.0.1:8888"]


def test_kitexservice_selects_by_label_with_named_port_and_label_tags() -> None:
    state = DesiredState()
    body = kitexservice("svc", port="rpc", weight=5, tagsFromLabels=["zone"],
                        etcd={"prefix": "custom/prefix"})
    state.upsert_spec(("default", "svc"), parse_kitexservice(body), body["spec"]["selector"])
    state.upsert_pod(pod_view(pod("a", labels={"app": "echo", "zone": "z1"})))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", labels={"app": "other"})))
    binding = Binding("default", "custom/prefix", "svc")
    assert state.values(binding) == {
        "custom/prefix/svc/10.0.0.1:8888":
            b'{"network":"tcp","address":"10.0.0.1:8888","weight":5,"tags":{"zone":"z1"}}'}
    assert set(state.sources(binding)) == {Source("KitexService", "default", "svc")}
    state.remove_spec(("default", "svc"))
    assert state.values(binding) == {}
    assert not state.sources(binding)


def test_spec_with_own_etcd_gets_its_own_scope() -> None:
    state = DesiredState()
    body = kitexservice("svc", port=1, etcd={"endpoints": ["10.9.9.9:2379"],
                                             "authSecretRef": {"name": "creds"}})
    binding, config = state.binding_of(parse_kitexservice(body), "default")
    assert config.access == EtcdAccess(scope="10.9.9.9:2379", registry=None,
                                       endpoints=("10.9.9.9:2379",), namespace="default",
                                       auth_secret="creds")
    assert binding.etcd == config.access.id != "default"


def test_two_pods_claiming_one_address_do_not_flap() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("b", annotations=ANNOTATED)))
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.remove_pod("b")
    assert list(state.values(DEFAULT)) == ["kitex/registry-etcd/echo/10.0.0.1:8888"]
    state.remove_pod("a")
    assert state.values(DEFAULT) == {}


def test_an_event_that_changes_nothing_costs_nothing() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))
    state.take_dirty()
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED, labels={"unrelated": "x"})))
    assert state.take_dirty() == {}
