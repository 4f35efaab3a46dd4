"""Annotation mode: each annotation, its default, and the error naming it when malformed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.kube.annotations import spec_from_annotations
from kitex_etcd_operator.kube.errors import SpecError
from kitex_etcd_operator.kube.fields import from_annotations
from kitex_etcd_operator.kube.names import ANNOTATION_PREFIX, Annotation
from kitex_etcd_operator.kube.pods import PodView, pod_view
from kitex_etcd_operator.kube.spec import EtcdRef, ServiceSpec, instance_for
from kitex_etcd_operator.model import Framework, decode_value
from kitex_etcd_operator.retry import RetryConfig

P = ANNOTATION_PREFIX


def annotated(notes: dict[str, str], *, labels: dict[str, str] | None = None,
              ips: list[str] | None = None) -> PodView:
    ips = ips or ["10.0.0.7"]
    return pod_view({
        "metadata": {"uid": "u", "namespace": "ns", "name": "p", "labels": labels or {},
                     "annotations": notes},
        "spec": {"containers": [{"ports": [{"name": "rpc", "containerPort": 8888}]}]},
        "status": {"podIP": ips[0], "podIPs": [{"ip": i} for i in ips], "hostIP": "192.168.1.5",
                   "conditions": [{"type": "Ready", "status": "True"}]}})


def test_no_service_annotation_means_not_annotated() -> None:
    assert spec_from_annotations(annotated({})) is None
    assert spec_from_annotations(annotated({P + "port": "8888"})) is None
    assert spec_from_annotations({"other.io/service": "echo"}) is None


def test_minimal_annotations() -> None:
    spec = spec_from_annotations(annotated({P + "service": "echo", P + "port": "8888"}))
    assert spec == ServiceSpec(service_name="echo", port=8888, framework=Framework.KITEX,
                               network="tcp", weight=10, tags=(), tags_from_labels=(),
                               etcd=EtcdRef(), lease_ttl=None, retry=RetryConfig(),
                               publish_not_ready=False, address_source="podIP",
                               ip_family="Primary", fixed_host=None, fixed_port=None,
                               origin="annotations")


def test_every_annotation() -> None:
    notes = {P + "service": "echo", P + "port": "rpc", P + "weight": " 30 ",
             P + "network": "tcp", P + "tags": "env=prod, zone = a ,",
             P + "tags-from-labels": "version, track", P + "framework": "kitex",
             P + "publish-not-ready": "True", P + "ip-family": "IPv6", P + "fixed-port": "31000"}
    retry = RetryConfig(3, 20, 5)
    spec = spec_from_annotations(annotated(notes), retry=retry)
    assert spec is not None
    assert (spec.port, spec.weight, spec.tags, spec.tags_from_labels, spec.publish_not_ready,
            spec.ip_family, spec.fixed_port, spec.retry) == (
        "rpc", 30, (("env", "prod"), ("zone", "a")), ("version", "track"), True, "IPv6",
        31000, retry)
    assert set(notes) == {a.value for a in Annotation} - {P + "address-source", P + "host",
                                                          P + "auto-register"}


def test_address_source_and_host() -> None:
    by_host = spec_from_annotations(annotated({P + "service": "e", P + "port": "1",
                                               P + "address-source": "hostIP"}))
    assert by_host is not None and by_host.address_source == "hostIP"
    fixed = spec_from_annotations(annotated({P + "service": "e", P + "fixed-port": "80",
                                             P + "host": "10.1.1.1"}))
    assert fixed is not None and (fixed.fixed_host, fixed.port) == ("10.1.1.1", 80)


def test_hertz_allows_slash() -> None:
    spec = spec_from_annotations(annotated({P + "service": "api/echo", P + "port": "1",
                                            P + "framework": "hertz"}))
    assert spec is not None and spec.framework is Framework.HERTZ


def test_instance_from_annotations() -> None:
    view = annotated({P + "service": "echo", P + "port": "rpc", P + "tags": '{"a,b": "c=d"}',
                      P + "tags-from-labels": "zone"}, labels={"zone": "z1"})
    spec = spec_from_annotations(view)
    assert spec is not None
    instance = instance_for(view, spec)
    assert instance is not None
    assert instance.encode() == (b'{"network":"tcp","address":"10.0.0.7:8888","weight":10,'
                                 b'"tags":{"a,b":"c=d","zone":"z1"}}')


def test_unknown_port_name_names_the_annotation() -> None:
    view = annotated({P + "service": "echo", P + "port": "grpc"})
    spec = spec_from_annotations(view)
    assert spec is not None
    with pytest.raises(SpecError) as info:
        instance_for(view, spec)
    assert info.value.field == f"metadata.annotations[{P}port]"


def test_missing_family_names_the_annotation() -> None:
    view = annotated({P + "service": "echo", P + "port": "1", P + "ip-family": "IPv6"})
    spec = spec_from_annotations(view)
    assert spec is not None
    with pytest.raises(SpecError) as info:
        instance_for(view, spec)
    assert info.value.field == f"metadata.annotations[{P}ip-family]"


@pytest.mark.parametrize(("text", "tags"), [
    ("", ()),
    (" , ", ()),
    ("a=1", (("a", "1"),)),
    ("b=2,a=", (("a", ""), ("b", "2"))),
    ("a=x=y", (("a", "x=y"),)),
    ('{"k": "v, w"}', (("k", "v, w"),)),
    ("{}", ()),
])
def test_tag_formats(text: str, tags: tuple[tuple[str, str], ...]) -> None:
    assert from_annotations({Annotation.TAGS.value: text}, "tags") == tags


def test_leading_zeros_do_not_count_as_digits() -> None:
    assert from_annotations({Annotation.WEIGHT.value: "0" * 20 + "30"}, "weight") == 30
    with pytest.raises(SpecError, match="11 digits"):
        from_annotations({Annotation.WEIGHT.value: "1" * 11}, "weight")


@pytest.mark.parametrize(("notes", "name"), [
    ({"service": "a/b", "port": "1"}, "service"),
    ({"service": "", "port": "1"}, "service"),
    ({"service": "echo"}, "port"),
    ({"service": "echo", "port": "0"}, "port"),
    ({"service": "echo", "port": "RPC"}, "port"),
    ({"service": "echo", "port": "1", "weight": "-1"}, "weight"),
    ({"service": "echo", "port": "1", "weight": "ten"}, "weight"),
    ({"service": "echo", "port": "1", "weight": "1.5"}, "weight"),
    ({"service": "echo", "port": "1", "weight": "٣"}, "weight"),
    ({"service": "echo", "port": "1", "network": "TCP"}, "network"),
    ({"service": "echo", "port": "1", "tags": "a"}, "tags"),
    ({"service": "echo", "port": "1", "tags": "=v"}, "tags"),
    ({"service": "echo", "port": "1", "tags": "a=1,a=2"}, "tags"),
    ({"service": "echo", "port": "1", "tags": "{bad json"}, "tags"),
    ({"service": "echo", "port": "1", "tags": '{"a": 1}'}, "tags"),
    ({"service": "echo", "port": "1", "tags": '{"": "x"}'}, "tags"),
    ({"service": "echo", "port": "1", "tags-from-labels": "ok,not ok"}, "tags-from-labels"),
    ({"service": "echo", "port": "1", "framework": "grpc"}, "framework"),
    ({"service": "echo", "port": "1", "publish-not-ready": "maybe"}, "publish-not-ready"),
    ({"service": "echo", "port": "1", "address-source": "nodeIP"}, "address-source"),
    ({"service": "echo", "port": "1", "ip-family": "v6"}, "ip-family"),
    ({"service": "echo", "port": "1", "host": "a b"}, "host"),
    ({"service": "echo", "port": "1", "host": "1.1.1.1", "address-source": "podIP"}, "host"),
    ({"service": "echo", "fixed-port": "70000"}, "fixed-port"),
    ({"service": "echo", "port": "1", "wieght": "5"}, "wieght"),
    # Past 4,300 digits int() raises a plain ValueError, which escaped as a crash.
    ({"service": "echo", "port": "1", "weight": "9" * 5000}, "weight"),
    ({"service": "echo", "port": "9" * 5000}, "port"),
    ({"service": "echo", "fixed-port": "9" * 5000}, "fixed-port"),
    # Nested past the recursion limit: a RecursionError, not a ValueError; and the
    # 200 KB an annotation may hold, refused before parsing.
    ({"service": "echo", "port": "1", "tags": '{"a":' + "[" * 5000 + "]" * 5000 + "}"},
     "tags"),
    ({"service": "echo", "port": "1", "tags": '{"a":' + "[" * 100000 + "]" * 100000 + "}"},
     "tags"),
    ({"service": "echo", "port": "1", "tags": '{"a":' + "[" * 500 + "]" * 500 + "}"}, "tags"),
    # An IPv6 zone: ipaddress takes any text after the %, controls included.
    ({"service": "echo", "port": "1", "host": "fe80::1%eth0"}, "host"),
    ({"service": "echo", "port": "1", "host": "fe80::1%\x00\n..x\u202e"}, "host"),
])
def test_each_error_names_its_annotation(notes: dict[str, str], name: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_annotations(annotated({P + k: v for k, v in notes.items()}))
    assert info.value.field == f"metadata.annotations[{P}{name}]"


_names = st.sampled_from([a.value for a in Annotation] + [P + "bogus"])
_values = st.text(max_size=12) | st.sampled_from(
    ["8888", "rpc", "true", "false", "hostIP", "podIP", "IPv4", "IPv6", "hertz", "a=b,c=d",
     '{"a":"b"}', "10.0.0.1", "fd00::1", "0", "-1", "65535"])


@given(st.dictionaries(_names, _values, max_size=8), st.lists(
    st.ip_addresses().map(str), min_size=1, max_size=2))
def test_random_annotations_only_raise_spec_error(notes: dict[str, str], ips: list[str]) -> None:
    notes.setdefault(Annotation.SERVICE.value, "echo")
    view = annotated(notes, ips=ips)
    try:
        spec = spec_from_annotations(view)
    except SpecError as err:
        assert err.field.startswith("metadata.annotations[" + P)
        return
    assert spec is not None
    try:
        instance = instance_for(view, spec)
    except SpecError:
        return
    if instance is not None:
        assert decode_value(instance.encode()) == instance


def test_parsing_is_cached_per_content() -> None:
    notes = {P + "service": "cached", P + "port": "1"}
    first = spec_from_annotations(annotated(notes))
    assert spec_from_annotations(annotated(dict(notes))) is first
