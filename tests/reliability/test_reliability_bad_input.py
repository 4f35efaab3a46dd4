"""Bad input against the real API server: hypothesis generates it, the operator survives it.

Random KitexService specs (unicode, '/' in names, wrong types, huge tag maps,
out-of-range numbers, unknown fields) and random pod annotations go to the
real kube-apiserver with the operator running. Every one must end one of
three ways: refused at admission (schema or CEL), reported by the operator
(a condition or an Event naming the field), or registered. Whatever happens,
the operator process is the same one at the end and the control service's
entry was never rewritten.

The expected outcome of an accepted object is what the operator's own parser
says of the object as the API server stored it; the test checks that the
running operator does exactly that, and that the schema and CEL leave the
parser nothing to choke on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.kube.annotations import spec_from_annotations
from kitex_etcd_operator.kube.errors import SpecError
from kitex_etcd_operator.kube.names import ANNOTATION_PREFIX, Annotation
from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.kube.spec import instance_for, parse_kitexservice
from kitex_etcd_operator.model import service_range
from tests.support.etcd_probe import EtcdProbe
from tests.support.helpers import wait_for
from tests.support.kube_objects import (
    ANN,
    PREFIX,
    condition,
    custom,
    deployment,
    kitexservice,
    ready_pods,
)

GROUP, VERSION, PLURAL = "kitex.cloudwego.io", "v1alpha1", "kitexservices"
EXAMPLES = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
TARGET_PODS = 2

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_dns = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
_names = _dns | _text | st.sampled_from(["a/b", "", " ", "echo.v2", "ünïcode", "x" * 300])
_ports = (st.integers(-5, 70_000) | _text | st.sampled_from(["8888", "rpc", "http", "0"])
          | st.booleans() | st.lists(st.integers(), max_size=2))
_small_tags = st.dictionaries(_text, _text, max_size=5)
_huge_tags = st.integers(200, 1000).map(lambda n: {f"k{i}": "v" * 40 for i in range(n)})
_any = st.none() | st.booleans() | st.integers() | _text | st.lists(st.integers(), max_size=2)

_valid = {
    "serviceName": _dns | st.sampled_from(["echo.v2", "a.b-c"]),
    "framework": st.sampled_from(["kitex", "hertz"]),
    "weight": st.integers(0, 100),
    "tags": st.dictionaries(_dns, st.text(max_size=20), max_size=5) | _huge_tags,
    "tagsFromLabels": st.lists(_dns, max_size=3),
    "network": st.just("tcp"),
    "leaseTTL": st.integers(10, 3600),
    "retry": st.fixed_dictionaries({}, optional={
        "maxAttemptTimes": st.integers(0, 10), "observeDelay": st.sampled_from(["2s", "30s"]),
        "retryDelay": st.sampled_from(["1s", "10s"])}),
    "etcd": st.fixed_dictionaries({}, optional={
        "prefix": st.sampled_from(["custom/prefix", "kitex/registry-etcd"])}),
}
_junk = {
    "serviceName": _names | _any,
    "port": _ports,
    "framework": st.sampled_from(["grpc", "KITEX"]) | _any,
    "weight": st.integers(-10, 2**40) | _any,
    "tags": _small_tags | _any,
    "tagsFromLabels": st.lists(_text, max_size=3) | _any,
    "network": st.sampled_from(["udp", "unix", ""]) | _any,
    "leaseTTL": st.integers(-1, 10**6) | _any,
    "retry": st.fixed_dictionaries({}, optional={
        "maxAttemptTimes": st.integers(-1, 100) | _any,
        "observeDelay": st.sampled_from(["1h", "-1s", "soon"]) | _any,
        "retryDelay": st.sampled_from(["0s", "10x"]) | _any}) | _any,
    "etcd": st.fixed_dictionaries({}, optional={
        "prefix": st.sampled_from(["/lead", "trail/", ""]) | _text}) | _any,
    "notInTheSchema": _any,
}


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec with zero to two fields replaced by junk: every outcome is reachable."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "target"}},
                            "port": draw(st.sampled_from([8888, "8888", "rpc"]))}
    for field in draw(st.lists(st.sampled_from(sorted(_valid)), max_size=4, unique=True)):
        spec[field] = draw(_valid[field])
    for field in draw(st.lists(st.sampled_from(sorted(_junk)), max_size=2, unique=True)):
        spec[field] = draw(_junk[field])
    return spec


_annotation_names = st.sampled_from([a.value for a in Annotation] + [ANNOTATION_PREFIX + "bogus"])
_annotation_values = (_text | st.sampled_from(
    ["8888", "rpc", "http", "true", "false", "a=b,c=d", "=x", "1e3", "-1", "65536", "hertz",
     "hostIP", "IPv6", "a/b", "x" * 2000]))
_valid_annotations = st.fixed_dictionaries(
    {Annotation.PORT.value: st.sampled_from(["8888", "rpc"])},
    optional={Annotation.WEIGHT.value: st.integers(0, 100).map(str),
              Annotation.TAGS.value: st.sampled_from(["a=b", "a=b,c=d", ""])})


@st.composite
def annotation_sets(draw: st.DrawFn) -> dict[str, str]:
    """Valid annotations with zero to two replaced or added at random."""
    notes = {Annotation.SERVICE.value: "fuzz", **draw(_valid_annotations)}
    for _ in range(draw(st.integers(0, 2))):
        notes[draw(_annotation_names)] = draw(_annotation_values)
    return notes


@pytest.fixture
def world(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
          start_operator: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """The operator, two ready target pods, and a control service that must stay untouched."""
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    operator = start_operator("--namespace", namespace, "--observe-delay", "2s",
                              "--retry-delay", "1s")
    apps.create_namespaced_deployment(namespace, deployment(
        "target", TARGET_PODS, ports=[{"name": "rpc", "containerPort": 8888}]))
    control = f"control-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment(
        "control", 1, annotations={ANN + "service": control, ANN + "port": "8888"}))
    wait_for(lambda: len(ready_pods(core, namespace, "target")) == TARGET_PODS
             and len(etcd_probe.get_prefix(f"{PREFIX}/{control}/")) == 1, timeout=90,
             what="target pods and the control entry")
    before = etcd_probe.get_prefix(f"{PREFIX}/{control}/")
    counts = {"refused": 0, "reported": 0, "registered": 0, "ignored": 0}
    yield {"core": core, "operator": operator, "counts": counts, "names": itertools.count()}
    after = etcd_probe.get_prefix(f"{PREFIX}/{control}/")
    assert after == before, "the control entry was rewritten or lost"
    assert operator.running and operator.log().count("Operator starting") == 1
    print("BAD INPUT", counts)


def _condition(k8s: Any, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    obj = custom(k8s).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


@EXAMPLES
@given(spec=specs())
def test_random_kitexservices(k8s: Any, namespace: str, etcd_probe: EtcdProbe,
                              world: dict[str, Any], spec: dict[str, Any]) -> None:
    name = f"ks{next(world['names'])}"
    api = custom(k8s)
    try:
        stored = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                     kitexservice(name, spec))
    except client.ApiException as exc:
        assert exc.status in (400, 422), exc  # refused at admission, never a 500
        world["counts"]["refused"] += 1
        return
    try:
        parsed = parse_kitexservice(stored)
    except SpecError as err:
        ready = wait_for(lambda: (c := _condition(k8s, namespace, name, "Ready"))
                         and c["status"] == "False" and c, timeout=30,
                         what=f"Ready=False on {name} for {err.field}")
        assert ready["reason"] == "InvalidSpec" and err.field in ready["message"], ready
        world["counts"]["reported"] += 1
    else:
        binding = DesiredState().binding_of(parsed, namespace)[0]  # hertz has its own prefix
        rng = service_range(binding.prefix, binding.service)
        wait_for(lambda: (c := _condition(k8s, namespace, name, "Ready"))
                 and c["status"] == "True", timeout=30, what=f"Ready=True on {name}")
        pods_ok = _condition(k8s, namespace, name, "InvalidPods")
        if pods_ok is not None and pods_ok["status"] == "True":
            world["counts"]["reported"] += 1
        else:
            wait_for(lambda: len(etcd_probe.get_prefix(rng)) == TARGET_PODS, timeout=30,
                     what=f"{TARGET_PODS} entries under {rng}")
            world["counts"]["registered"] += 1
    api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for(lambda: name not in {o["metadata"]["name"] for o in api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"]}, timeout=30,
        what=f"{name} deleted (its finalizer released)")
    assert world["operator"].running


def _pod(name: str, node: str, notes: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "fuzz"}, "annotations": notes},
            "spec": {"nodeName": node, "containers": [{
                "name": "c", "image": "fuzz/kitex", "ports": [
                    {"name": "rpc", "containerPort": 8888}]}]}}


@EXAMPLES
@given(notes=annotation_sets())
def test_random_pod_annotations(kube: Any, namespace: str, etcd_probe: EtcdProbe,
                                world: dict[str, Any], notes: dict[str, str]) -> None:
    core = world["core"]
    name = f"fuzz{next(world['names'])}"
    try:
        core.create_namespaced_pod(namespace, _pod(name, kube.node_names[0], notes))
    except client.ApiException as exc:
        assert exc.status in (400, 422), exc  # an annotation the API itself refuses
        world["counts"]["refused"] += 1
        return
    pod = wait_for(lambda: (p := core.read_namespaced_pod(name, namespace)).status.pod_ip
                   and any(c.type == "Ready" and c.status == "True"
                           for c in p.status.conditions or []) and p,
                   timeout=60, what=f"pod {name} ready")
    view = pod_view(core.api_client.sanitize_for_serialization(pod))
    try:
        spec = spec_from_annotations(view)
        instance = instance_for(view, spec) if spec is not None else None
    except SpecError as err:
        event = wait_for(lambda: [e for e in core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}").items
            if e.reason == "InvalidKitexRegistration"], timeout=30,
            what=f"an Event on {name} naming {err.field}")[0]
        annotation = err.field.split("[", 1)[-1].rstrip("]")
        assert annotation in event.message, (err.field, event.message)
        world["counts"]["reported"] += 1
    else:
        if spec is None or instance is None:
            world["counts"]["ignored"] += 1
        else:
            binding = DesiredState().binding_of(spec, namespace)[0]
            key = f"{service_range(binding.prefix, binding.service)}{instance.address}"
            wait_for(lambda: key in etcd_probe.get_prefix(key), timeout=30,
                     what=f"{key} registered")
            world["counts"]["registered"] += 1
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            wait_for(lambda: key not in etcd_probe.get_prefix(key), timeout=30,
                     what=f"{key} removed with its pod")
            return
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(
        namespace, field_selector=f"metadata.name={name}").items, timeout=60,
        what=f"pod {name} gone")
    assert world["operator"].running


# --- what the API server admits, the parser accepts ---------------------------------------
#
# The operator reports a spec its parser refuses (Ready=False, InvalidSpec), but
# a user learns of it only after the apply went through. Every such object is a
# gap in the CRD: the rule exists in the parser, so admission should say it at
# once. This property looks for gaps with the strings most likely to slip
# between Go's and Python's ideas of a character: Unicode blanks (Go's \s is
# ASCII only, Python's str.isspace() is not), C0/C1 controls, a trailing newline
# (Python's `$` matches before it, Go's does not), '/', and numbers at the edges.
# It needs no operator: objects are created with dryRun=All, so nothing is stored.

_TRICKY = ["\u00a0", "\u2028", "\u3000", "\x85", "\u200b", "\t", "\n", " ", "\x00", "\x7f",
           "\x1c", "\x0b", "/", "%", ":", "é", "_", ".", "-", "A"]
# Plain characters four times as likely as tricky ones: most strings have one or
# two tricky characters, so a good share is admitted and reaches the parser.
_ALPHABET = st.sampled_from(list("abcxyz0129") * 4 + _TRICKY)


def _tricky_text(min_size: int = 0, max_size: int = 10) -> st.SearchStrategy[str]:
    return st.lists(_ALPHABET, min_size=min_size, max_size=max_size).map("".join)


_durations = st.sampled_from(["0s", "0ms", "0.0s", "1ns", "10s", "1.5h", "1.s", "2m30s",
                              "9" * 25 + "h", "1µs", "3us"]) | st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(0, 10**6),
    st.sampled_from(["ns", "us", "ms", "s", "m", "h"]))
_edge_fields: dict[str, st.SearchStrategy[Any]] = {
    "serviceName": _tricky_text(0, 8) | st.just("x" * 254),
    "framework": st.sampled_from(["kitex", "hertz"]),
    "port": st.integers(-1, 70_000) | _tricky_text(0, 6)
    | st.sampled_from(["rpc\n", "0080", "65536", "a--b"]),
    "network": _tricky_text(0, 5) | st.sampled_from(["tcp\n", "udp"]),
    "weight": st.sampled_from([-1, 0, 2**31 - 1, 2**31, 2**63 - 1]),
    "leaseTTL": st.sampled_from([4, 5, 86400, 86401]),
    "tags": st.dictionaries(_tricky_text(0, 4), _tricky_text(0, 4), max_size=3),
    "tagsFromLabels": st.lists(_tricky_text(1, 6), max_size=3, unique=True),
    "etcd": st.fixed_dictionaries({}, optional={
        "prefix": _tricky_text(0, 8),
        "endpoints": st.lists(_tricky_text(1, 8), min_size=1, max_size=2),
        "dialTimeout": _durations,
        "authSecretRef": st.fixed_dictionaries({"name": _tricky_text(1, 6)}),
        "tlsSecretRef": st.fixed_dictionaries({"name": _tricky_text(1, 6)})}),
    "retry": st.fixed_dictionaries({}, optional={
        "observeDelay": _durations, "retryDelay": _durations,
        "maxAttemptTimes": st.sampled_from([-1, 0, 2**31 - 1, 2**31])}),
    "address": st.fixed_dictionaries({}, optional={
        "host": _tricky_text(1, 8) | st.sampled_from(
            ["10.0.0.1", "fd00::1", "fe80::1%eth0", "::ffff:10.0.0.1", "010.0.0.1",
             "a.example", "-a", "a..b"]),
        "port": st.integers(0, 65536)}),
    "selector": st.fixed_dictionaries({"matchLabels": st.dictionaries(
        _tricky_text(0, 4), _tricky_text(0, 4), min_size=1, max_size=2)}),
}


@st.composite
def edge_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec with one to three fields set to edge values."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "target"}}, "port": 8888}
    for field in draw(st.lists(st.sampled_from(sorted(_edge_fields)), min_size=1,
                               max_size=3, unique=True)):
        spec[field] = draw(_edge_fields[field])
    return spec


@pytest.fixture
def admission(k8s: Any, crds: None, namespace: str,
              figures: Callable[..., None]) -> Iterator[dict[str, Any]]:
    counts = {"refused": 0, "admitted": 0, "refused_parser_would_accept": 0}
    stricter: list[dict[str, Any]] = []
    yield {"api": custom(k8s), "namespace": namespace, "counts": counts,
           "names": itertools.count(), "stricter": stricter}
    # Refused at admission though the parser would take it: the CRD is stricter
    # (a duration past Go's 290 years). Harmless.
    figures(examples=sum(counts.values()) - counts["refused_parser_would_accept"], **counts,
            stricter_examples=stricter[:3])


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=edge_specs())
def test_what_the_api_server_admits_the_parser_accepts(admission: dict[str, Any],
                                                       spec: dict[str, Any]) -> None:
    name = f"edge{next(admission['names'])}"
    body = kitexservice(name, spec)
    try:
        stored = admission["api"].create_namespaced_custom_object(
            GROUP, VERSION, admission["namespace"], PLURAL, body, dry_run="All")
    except client.ApiException as exc:
        assert exc.status in (400, 422), exc
        admission["counts"]["refused"] += 1
        try:
            parse_kitexservice(body)
            admission["counts"]["refused_parser_would_accept"] += 1
            admission["stricter"].append(spec)
        except SpecError:
            pass
        return
    admission["counts"]["admitted"] += 1
    try:
        parse_kitexservice(stored)
    except SpecError as err:
        raise AssertionError(f"admitted, but the operator refuses it: {err}\n"
                             f"spec: {stored['spec']!r}") from None


# Each gap the property above found (or reading the parser next to the CRD did),
# now refused at admission: (field as the API server names it, spec overrides).
ADMISSION_GAPS = [
    ("spec.serviceName", {"serviceName": "\u00a0echo"}),
    ("spec.serviceName", {"serviceName": "echo\u2028"}),
    ("spec.serviceName", {"serviceName": "echo\x85"}),
    ("spec.retry.observeDelay", {"retry": {"observeDelay": "0s"}}),
    ("spec.retry.retryDelay", {"retry": {"retryDelay": "0.0ms"}}),
    ("spec.etcd.dialTimeout", {"etcd": {"dialTimeout": "0s"}}),
    ("spec.address.host", {"address": {"host": "\t"}}),
    ("spec.address.host", {"address": {"host": "\u00a0"}}),
    ("spec.address.host", {"address": {"host": "a b"}}),
    ("spec.selector.matchLabels", {"selector": {"matchLabels": {"": "x"}}}),
    ("spec.selector.matchLabels", {"selector": {"matchLabels": {"a b": "x"}}}),
    ("spec.selector.matchExpressions[0].key",
     {"selector": {"matchExpressions": [{"key": "a b", "operator": "Exists"}]}}),
    ("spec.tagsFromLabels[0]", {"tagsFromLabels": ["Bad Key"]}),
    ("spec.tagsFromLabels[0]", {"tagsFromLabels": ["zone\n"]}),
    ("spec.etcd.authSecretRef.name", {"etcd": {"authSecretRef": {"name": "Bad_Name"}}}),
    ("spec.etcd.tlsSecretRef.name", {"etcd": {"tlsSecretRef": {"name": "tls\n"}}}),
    ("spec.etcd.endpoints[0]", {"etcd": {"endpoints": ["etcd\u00a0:2379"]}}),
    ("spec.etcd.endpoints[0]", {"etcd": {"endpoints": ["etcd\x00:2379"]}}),
    ("spec.etcd.prefix", {"etcd": {"prefix": "a\x00b"}}),
    ("spec.etcd.prefix", {"etcd": {"prefix": "a\nb"}}),
]


@pytest.mark.parametrize("field,overrides", ADMISSION_GAPS,
                         ids=[f"{f}={o!r}"[:60] for f, o in ADMISSION_GAPS])
def test_admission_refuses_what_the_operator_would_refuse(
        k8s: Any, crds: None, namespace: str, field: str, overrides: dict[str, Any]) -> None:
    spec = {"selector": {"matchLabels": {"app": "target"}}, "port": 8888, **overrides}
    body = kitexservice("gap", spec)
    with pytest.raises(SpecError):
        parse_kitexservice(body)
    with pytest.raises(client.ApiException) as info:
        custom(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                    dry_run="All")
    assert info.value.status == 422, info.value
    assert field in str(info.value.body), info.value.body


@pytest.mark.parametrize("port,admitted", [("9" * 5000, False), ("Not_A_Port", False),
                                           (80, True), ("80", True), ("kitex", True)],
                         ids=["5000-digits", "bad-name", "int", "digits", "name"])
def test_service_ref_ports_are_bounded_at_admission(
        k8s: Any, crds: None, namespace: str, port: int | str, admitted: bool) -> None:
    """serviceRef.port had no bound: 5,000 digits were admitted, and int() raised a
    plain ValueError in the operator (the KitexService list at start never ended)."""
    body = kitexservice("ref", {"serviceRef": {"name": "api", "port": port}})
    try:
        custom(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                    dry_run="All")
    except client.ApiException as exc:
        assert not admitted, exc
        assert exc.status == 422 and "spec.serviceRef.port" in str(exc.body), exc
        return
    assert admitted
    parse_kitexservice(body)


def test_nested_hertz_services_keep_their_entries(
        k8s: Any, namespace: str, etcd_probe: EtcdProbe,
        start_operator: Callable[..., Any], figures: Callable[..., None]) -> None:
    """Valid input the operator once mishandled: Hertz allows '/' in names, so
    service "x"'s range holds the entries of service "x/inner". Each binding's
    periodic full read saw the other's key, on a lease of ours, as stale and
    deleted it; the other put it back at its own next read, and so on. Since
    tenancy ranges never nest: the one registered first keeps its entries, the
    other is refused (RangeConflict) and writes nothing, with no flapping."""
    core = client.CoreV1Api(k8s)
    operator = start_operator("--namespace", namespace)
    client.AppsV1Api(k8s).create_namespaced_deployment(namespace, deployment(
        "target", 1, ports=[{"name": "rpc", "containerPort": 8888}]))
    outer = f"nest-{namespace}"
    rng = f"hertz/registry-etcd/{outer}/"
    pod = wait_for(lambda: (p := ready_pods(core, namespace, "target")) and p[0], timeout=60,
                   what="the target pod ready")
    keys = {f"{rng}{pod.status.pod_ip}:8888"}
    for name, service in (("outer", outer), ("inner", f"{outer}/inner")):
        custom(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                    kitexservice(name, {
            "selector": {"matchLabels": {"app": "target"}}, "port": 8888,
            "framework": "hertz", "serviceName": service,
            "retry": {"observeDelay": "1s"}}))
        if name == "outer":
            wait_for(lambda: set(etcd_probe.values(rng)) == keys, timeout=30,
                     what=f"the outer entry {keys}")
    refused = wait_for(lambda: (c := condition(k8s, namespace, "inner", "Conflict"))
                       and c.get("reason") == "RangeConflict" and c, timeout=30,
                       what="RangeConflict on the inner service")
    assert rng in refused["message"]
    recorder = etcd_probe.watch(rng)
    try:
        def full_syncs() -> float:
            return float(operator.metric(
                "kitex_etcd_operator_sync_duration_seconds_count", kind="full"))
        start = full_syncs()
        # Six full reads (three cycles of each service).
        wait_for(lambda: full_syncs() >= start + 6, timeout=30, what="six full syncs")
    finally:
        recorder.stop()
    events = recorder.snapshot()
    figures(case="nested hertz services", full_syncs=int(full_syncs() - start),
            deletes=len(recorder.deletes()), puts=sum(e.kind == "PUT" for e in events))
    assert events == [], events
    assert set(etcd_probe.values(rng)) == keys
