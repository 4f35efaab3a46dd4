"""KitexService parsing and the instance each pod becomes: every rule, every field named."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.kube.spec import (
    EtcdRef,
    ServiceSpec,
    SpecError,
    instance_for,
    parse_kitexservice,
)
from kitex_etcd_operator.model import Framework, Instance, decode_value, instance_key
from kitex_etcd_operator.retry import RetryConfig


def ksvc(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
                            "metadata": {"name": "echo", "namespace": "ns", "generation": 1},
                            "spec": {"selector": {"matchLabels": {"app": "echo"}}, "port": 8888}}
    body["spec"].update(spec)
    return body


def pod(*, ip: str | None = "10.0.0.7", ips: list[str] | None = None, ready: bool = True,
        deleting: bool = False, labels: dict[str, str] | None = None,
        host_ip: str | None = "192.168.1.5") -> Any:
    status: dict[str, Any] = {"conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": i} for i in (ips or [ip])])
    if host_ip:
        status["hostIP"] = host_ip
    meta: dict[str, Any] = {"uid": "u1", "namespace": "ns", "name": "echo-0",
                            "labels": labels if labels is not None else {"app": "echo"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod_view({"metadata": meta, "status": status, "spec": {"containers": [
        {"ports": [{"name": "rpc", "containerPort": 8888}, {"name": "admin",
                                                            "containerPort": 9000}]}]}})


# --- parsing ---------------------------------------------------------------------

def test_minimal_spec_takes_every_default() -> None:
    assert parse_kitexservice(ksvc()) == ServiceSpec(
        service_name="echo", port=8888, framework=Framework.KITEX, network="tcp", weight=10,
        tags=(), tags_from_labels=(), etcd=EtcdRef(), lease_ttl=None, retry=RetryConfig(),
        publish_not_ready=False, address_source="podIP", ip_family="Primary",
        fixed_host=None, fixed_port=None, origin="KitexService")


def test_full_spec() -> None:
    spec = parse_kitexservice(ksvc(
        serviceName="echo.api", framework="kitex", port="rpc", network="tcp", weight=25,
        tags={"env": "prod", "b": ""}, tagsFromLabels=["zone", "version", "zone"],
        etcd={"endpoints": ["etcd-0:2379", "https://etcd-1:2379"], "prefix": "svc/kitex",
              "dialTimeout": "30s", "authSecretRef": {"name": "etcd-auth"},
              "tlsSecretRef": {"name": "etcd-tls"}},
        leaseTTL=15, retry={"maxAttemptTimes": 0, "observeDelay": "1500ms", "retryDelay": "2s"},
        publishNotReadyAddresses=True, address={"source": "hostIP", "ipFamily": "IPv6",
                                                "port": 31000}))
    assert spec == ServiceSpec(
        service_name="echo.api", port="rpc", framework=Framework.KITEX, network="tcp",
        weight=25, tags=(("b", ""), ("env", "prod")), tags_from_labels=("zone", "version"),
        etcd=EtcdRef(endpoints=("etcd-0:2379", "https://etcd-1:2379"), prefix="svc/kitex",
                     dial_timeout=30.0, auth_secret="etcd-auth", tls_secret="etcd-tls"),
        lease_ttl=15, retry=RetryConfig(0, 1.5, 2.0), publish_not_ready=True,
        address_source="hostIP", ip_family="IPv6", fixed_port=31000)


def test_service_name_defaults_to_metadata_name_and_hertz_allows_slash() -> None:
    assert parse_kitexservice(ksvc()).service_name == "echo"
    spec = parse_kitexservice(ksvc(framework="hertz", serviceName="api/echo"))
    assert spec.framework is Framework.HERTZ and spec.service_name == "api/echo"


def test_port_may_come_from_address_port_alone() -> None:
    body = ksvc(address={"port": 31000})
    del body["spec"]["port"]
    spec = parse_kitexservice(body)
    assert spec.port == 31000 and spec.fixed_port == 31000


def test_numeric_string_port_is_a_number() -> None:
    assert parse_kitexservice(ksvc(port="8888")).port == 8888


def test_fixed_host_is_normalised() -> None:
    assert parse_kitexservice(ksvc(address={"host": "FD00:0::1"})).fixed_host == "fd00::1"
    assert parse_kitexservice(ksvc(address={"host": "echo.example"})).fixed_host == "echo.example"


def _service_ref(port: str) -> dict[str, Any]:
    body = ksvc(serviceRef={"name": "echo", "port": port})
    del body["spec"]["selector"], body["spec"]["port"]
    return body


def _without(key: str) -> dict[str, Any]:
    body = ksvc()
    del body["spec"][key]
    return body


@pytest.mark.parametrize(("body", "field"), [
    ({"metadata": {"name": "x"}}, "spec.selector"),
    ({"metadata": {"name": "x"}, "spec": []}, "spec"),
    (_without("selector"), "spec.selector"),
    (ksvc(selector={}), "spec.selector"),
    (ksvc(selector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
     "spec.selector.matchExpressions[0].values"),
    (_without("port"), "spec.port"),
    (ksvc(port=0), "spec.port"),
    (ksvc(port=65536), "spec.port"),
    (ksvc(port="Rpc"), "spec.port"),
    (ksvc(port="a-very-long-port-name"), "spec.port"),
    (ksvc(port="-rpc"), "spec.port"),
    (ksvc(port="r--pc"), "spec.port"),
    (ksvc(port="123-"), "spec.port"),
    (ksvc(port="99999"), "spec.port"),
    (ksvc(port=True), "spec.port"),
    (ksvc(port=88.5), "spec.port"),
    (ksvc(serviceName="a/b"), "spec.serviceName"),
    (ksvc(serviceName=""), "spec.serviceName"),
    (ksvc(serviceName=" echo"), "spec.serviceName"),
    (ksvc(serviceName="ec\nho"), "spec.serviceName"),
    (ksvc(serviceName="x" * 254), "spec.serviceName"),
    (ksvc(serviceName=7), "spec.serviceName"),
    (ksvc(framework="grpc"), "spec.framework"),
    (ksvc(network=""), "spec.network"),
    (ksvc(network="TCP"), "spec.network"),
    (ksvc(network=6), "spec.network"),
    (ksvc(weight=-1), "spec.weight"),
    (ksvc(weight="10"), "spec.weight"),
    (ksvc(weight=2**31), "spec.weight"),
    (ksvc(weight=False), "spec.weight"),
    (ksvc(tags=["a"]), "spec.tags"),
    (ksvc(tags={"": "x"}), "spec.tags"),
    (ksvc(tags={"a": 1}), "spec.tags[a]"),
    (ksvc(tags={str(i): "" for i in range(65)}), "spec.tags"),
    (ksvc(tagsFromLabels="zone"), "spec.tagsFromLabels"),
    (ksvc(tagsFromLabels=["zone", "not a label"]), "spec.tagsFromLabels[1]"),
    (ksvc(etcd=[]), "spec.etcd"),
    (ksvc(etcd={"endpoints": []}), "spec.etcd.endpoints"),
    (ksvc(etcd={"endpoints": "etcd:2379"}), "spec.etcd.endpoints"),
    (ksvc(etcd={"endpoints": ["a:1", "b 2"]}), "spec.etcd.endpoints[1]"),
    (ksvc(etcd={"endpoints": [f"e{i}:2379" for i in range(17)]}), "spec.etcd.endpoints"),
    (ksvc(etcd={"prefix": "/kitex"}), "spec.etcd.prefix"),
    (ksvc(etcd={"prefix": "kitex/"}), "spec.etcd.prefix"),
    (ksvc(etcd={"prefix": ""}), "spec.etcd.prefix"),
    (ksvc(etcd={"prefix": 1}), "spec.etcd.prefix"),
    (ksvc(etcd={"dialTimeout": "5 seconds"}), "spec.etcd.dialTimeout"),
    (ksvc(etcd={"dialTimeout": "0s"}), "spec.etcd.dialTimeout"),
    (ksvc(etcd={"dialTimeout": True}), "spec.etcd.dialTimeout"),
    # Bounds: an observation every few ns, a dial that waits for years (issue 14).
    (ksvc(etcd={"dialTimeout": "99ms"}), "spec.etcd.dialTimeout"),
    (ksvc(etcd={"dialTimeout": "100000h"}), "spec.etcd.dialTimeout"),
    (ksvc(etcd={"dialTimeout": "1m1s"}), "spec.etcd.dialTimeout"),
    (ksvc(retry={"observeDelay": "1ns"}), "spec.retry.observeDelay"),
    (ksvc(retry={"observeDelay": "999ms"}), "spec.retry.observeDelay"),
    (ksvc(retry={"observeDelay": "1h0m1s"}), "spec.retry.observeDelay"),
    (ksvc(retry={"retryDelay": "20ms"}), "spec.retry.retryDelay"),
    (ksvc(retry={"retryDelay": "2h"}), "spec.retry.retryDelay"),
    (ksvc(etcd={"authSecretRef": {}}), "spec.etcd.authSecretRef.name"),
    (ksvc(etcd={"authSecretRef": "etcd"}), "spec.etcd.authSecretRef"),
    (ksvc(etcd={"tlsSecretRef": {"name": "Etcd_TLS"}}), "spec.etcd.tlsSecretRef.name"),
    (ksvc(leaseTTL=4), "spec.leaseTTL"),
    (ksvc(leaseTTL=86401), "spec.leaseTTL"),
    (ksvc(leaseTTL="60s"), "spec.leaseTTL"),
    (ksvc(retry={"maxAttemptTimes": -1}), "spec.retry.maxAttemptTimes"),
    (ksvc(retry={"observeDelay": "0s"}), "spec.retry.observeDelay"),
    (ksvc(retry={"observeDelay": "-1s"}), "spec.retry.observeDelay"),
    (ksvc(retry={"retryDelay": "soon"}), "spec.retry.retryDelay"),
    (ksvc(retry={"retryDelay": "1e400s"}), "spec.retry.retryDelay"),
    (ksvc(retry=5), "spec.retry"),
    (ksvc(publishNotReadyAddresses="true"), "spec.publishNotReadyAddresses"),
    (ksvc(address="hostIP"), "spec.address"),
    (ksvc(address={"source": "nodeIP"}), "spec.address.source"),
    (ksvc(address={"ipFamily": "ipv6"}), "spec.address.ipFamily"),
    (ksvc(address={"host": "a b"}), "spec.address.host"),
    (ksvc(address={"host": "fd00::1/64"}), "spec.address.host"),
    (ksvc(address={"host": 3}), "spec.address.host"),
    (ksvc(address={"host": "1.2.3.4", "source": "hostIP"}), "spec.address.host"),
    (ksvc(address={"port": 0}), "spec.address.port"),
    (ksvc(address={"port": "80"}), "spec.address.port"),
    # Python's `$` matches before a final newline: the checks must use fullmatch.
    (ksvc(port="rpc\n"), "spec.port"),
    (ksvc(network="tcp\n"), "spec.network"),
    (ksvc(tagsFromLabels=["zone\n"]), "spec.tagsFromLabels[0]"),
    (ksvc(etcd={"authSecretRef": {"name": "etcd\n"}}), "spec.etcd.authSecretRef.name"),
    # Unicode blanks and controls the CRD's ASCII \\s would let through.
    (ksvc(etcd={"endpoints": ["etcd\u00a0:2379"]}), "spec.etcd.endpoints[0]"),
    (ksvc(etcd={"endpoints": ["etcd\x00:2379"]}), "spec.etcd.endpoints[0]"),
    (ksvc(etcd={"endpoints": ["etcd\x85:2379"]}), "spec.etcd.endpoints[0]"),
    (ksvc(serviceName="\u00a0echo"), "spec.serviceName"),
    (ksvc(serviceName="echo\u2028"), "spec.serviceName"),
    # Selector keys no pod can carry: the selector would silently select nothing.
    (ksvc(selector={"matchLabels": {"": "x"}}), "spec.selector.matchLabels"),
    (ksvc(selector={"matchLabels": {"a b": "x"}}), "spec.selector.matchLabels"),
    (ksvc(selector={"matchExpressions": [{"key": "a\n", "operator": "Exists"}]}),
     "spec.selector.matchExpressions[0].key"),
    # Past 4,300 digits int() raises a plain ValueError, which escaped as a crash.
    (ksvc(port="9" * 5000), "spec.port"),
    (_service_ref("9" * 5000), "spec.serviceRef.port"),
    # An IPv6 zone: ipaddress takes any text after the %, controls included.
    (ksvc(address={"host": "fe80::1%eth0"}), "spec.address.host"),
    (ksvc(address={"host": "fe80::1%\x00\n..x\u202e"}), "spec.address.host"),
])
def test_each_error_names_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_kitexservice(body)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


def test_errors_survive_pickling() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(SpecError("spec.port", "bad")))
    assert (err.field, err.message) == ("spec.port", "bad")


# --- instances -------------------------------------------------------------------------

def test_instance_exact_value() -> None:
    spec = parse_kitexservice(ksvc(port="rpc", weight=20, tags={"env": "prod"},
                                   tagsFromLabels=["zone", "absent"]))
    instance = instance_for(pod(labels={"app": "echo", "zone": "a"}), spec)
    assert instance is not None
    assert instance.encode() == (b'{"network":"tcp","address":"10.0.0.7:8888","weight":20,'
                                 b'"tags":{"env":"prod","zone":"a"}}')


def test_label_tags_override_static_tags() -> None:
    spec = parse_kitexservice(ksvc(tags={"zone": "default"}, tagsFromLabels=["zone"]))
    with_label = instance_for(pod(labels={"zone": "b"}), spec)
    without = instance_for(pod(labels={}), spec)
    assert with_label is not None and dict(with_label.tags) == {"zone": "b"}
    assert without is not None and dict(without.tags) == {"zone": "default"}


def test_no_tags_encode_as_null() -> None:
    instance = instance_for(pod(), parse_kitexservice(ksvc()))
    assert instance is not None and instance.encode().endswith(b'"tags":null}')


def test_ineligible_pods_have_no_instance() -> None:
    spec = parse_kitexservice(ksvc())
    assert instance_for(pod(ready=False), spec) is None
    assert instance_for(pod(deleting=True), spec) is None
    assert instance_for(pod(ip=None), spec) is None


def test_publish_not_ready_still_skips_terminating() -> None:
    spec = parse_kitexservice(ksvc(publishNotReadyAddresses=True))
    assert instance_for(pod(ready=False), spec) is not None
    assert instance_for(pod(ready=False, deleting=True), spec) is None


def test_unknown_port_name_is_an_error_on_the_pod() -> None:
    with pytest.raises(SpecError) as info:
        instance_for(pod(), parse_kitexservice(ksvc(port="grpc")))
    assert info.value.field == "spec.port"
    assert "admin, rpc" in info.value.message


def test_named_port_resolves_per_pod() -> None:
    instance = instance_for(pod(), parse_kitexservice(ksvc(port="admin")))
    assert instance is not None and instance.address == "10.0.0.7:9000"


def test_dual_stack_rules() -> None:
    dual = pod(ip="10.0.0.7", ips=["10.0.0.7", "fd00::7"])
    primary = instance_for(dual, parse_kitexservice(ksvc()))
    v6 = instance_for(dual, parse_kitexservice(ksvc(address={"ipFamily": "IPv6"})))
    v4 = instance_for(dual, parse_kitexservice(ksvc(address={"ipFamily": "IPv4"})))
    assert primary is not None and primary.address == "10.0.0.7:8888"
    assert v6 is not None and v6.address == "[fd00::7]:8888"
    assert v4 is not None and v4.address == "10.0.0.7:8888"
    with pytest.raises(SpecError) as info:
        instance_for(pod(), parse_kitexservice(ksvc(address={"ipFamily": "IPv6"})))
    assert info.value.field == "spec.address.ipFamily"


def test_ipv6_only_pod_is_bracketed() -> None:
    instance = instance_for(pod(ip="fd00::7"), parse_kitexservice(ksvc()))
    assert instance is not None and instance.address == "[fd00::7]:8888"


def test_host_ip_source_and_fixed_address() -> None:
    by_host = instance_for(pod(), parse_kitexservice(ksvc(address={"source": "hostIP",
                                                                   "port": 31000})))
    assert by_host is not None and by_host.address == "192.168.1.5:31000"
    assert instance_for(pod(host_ip=None),
                        parse_kitexservice(ksvc(address={"source": "hostIP"}))) is None
    fixed = instance_for(pod(), parse_kitexservice(ksvc(address={"host": "echo.example"})))
    assert fixed is not None and fixed.address == "echo.example:8888"


def test_bad_pod_ip_names_the_pod_field() -> None:
    with pytest.raises(SpecError) as info:
        instance_for(pod(ip="not-an-ip:1"), parse_kitexservice(ksvc()))
    assert info.value.field == "status.podIPs"


# --- properties --------------------------------------------------------------------------

_text = st.text(max_size=12)
_scalar = st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=True) | _text
_value = st.recursive(_scalar, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(_text, c, max_size=3), max_leaves=8)
_fields = ["serviceName", "framework", "selector", "port", "network", "weight", "tags",
           "tagsFromLabels", "etcd", "leaseTTL", "retry", "publishNotReadyAddresses", "address"]


@given(st.dictionaries(st.sampled_from(_fields), _value, max_size=6))
def test_arbitrary_specs_only_raise_spec_error(overrides: dict[str, Any]) -> None:
    body = ksvc()
    body["spec"].update(overrides)
    try:
        spec = parse_kitexservice(copy.deepcopy(body))
    except SpecError:
        return
    with contextlib.suppress(SpecError):
        instance_for(pod(), spec)


_label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_valid_specs = st.fixed_dictionaries({
    "serviceName": st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                                         blacklist_characters="/"), min_size=1, max_size=30),
    "port": st.integers(1, 65535) | st.sampled_from(["rpc", "admin"]),
    "weight": st.integers(0, 2**31 - 1),
    "tags": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4),
    "tagsFromLabels": st.lists(_label, max_size=3),
    "address": st.fixed_dictionaries({}, optional={
        "ipFamily": st.sampled_from(["Primary", "IPv4", "IPv6"]),
        "port": st.integers(1, 65535)}),
})


@given(_valid_specs, st.dictionaries(_label, _label, max_size=4),
       st.lists(st.ip_addresses().map(str), min_size=1, max_size=2))
def test_valid_specs_round_trip_through_model(fields: dict[str, Any], labels: dict[str, str],
                                             ips: list[str]) -> None:
    spec = parse_kitexservice(ksvc(**fields))
    view = pod(ip=ips[0], ips=ips, labels=labels)
    try:
        instance = instance_for(view, spec)
    except SpecError as err:
        assert err.field == "spec.address.ipFamily"  # the only pod-dependent failure left
        return
    assert instance is not None
    assert decode_value(instance.encode()) == instance
    key = instance_key("kitex/registry-etcd", spec.service_name, instance.address)
    assert key.rsplit("/", 1)[1] == instance.address
    expected_tags = dict(fields["tags"])
    expected_tags.update({k: labels[k] for k in fields["tagsFromLabels"] if k in labels})
    assert instance == Instance.make(
        instance.address.rsplit(":", 1)[0].strip("[]"),
        int(instance.address.rsplit(":", 1)[1]), weight=fields["weight"], tags=expected_tags)


@pytest.mark.parametrize(("retry", "etcd"), [
    ({"observeDelay": "1s", "retryDelay": "1h"},
     {"dialTimeout": "100ms", "endpoints": ["etcd:2379"]}),
    ({"observeDelay": "3600000ms", "retryDelay": "1000ms"},
     {"dialTimeout": "1m", "endpoints": ["etcd:2379"]}),
])
def test_duration_bounds_are_inclusive(retry: dict[str, str], etcd: dict[str, str]) -> None:
    parse_kitexservice(ksvc(retry=retry, etcd=etcd))
