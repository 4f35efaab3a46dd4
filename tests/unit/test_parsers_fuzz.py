"""The parsers under many more random inputs than the cluster tests can afford.

A KitexService body or a pod's annotations can be anything a user or another
controller wrote: the parsers may refuse it only with ``SpecError`` naming the
field, and what they accept must become an entry whose bytes decode back to
the same instance. ``pod_view`` never raises at all. 500 examples each,
derandomized like the rest of the suite (``HYPOTHESIS_PROFILE=explore`` for
more).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitex_etcd_operator.kube.annotations import spec_from_annotations
from kitex_etcd_operator.kube.errors import SpecError
from kitex_etcd_operator.kube.names import ANNOTATION_PREFIX, Annotation
from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.kube.spec import instance_for, parse_kitexservice
from kitex_etcd_operator.model import MAX_VALUE_BYTES, decode_value

MANY = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Strings most likely to slip between Go and Python: Unicode blanks, C0/C1
# controls, a final newline, '/', lone surrogates, and plain text.
_tricky = st.sampled_from(["\u00a0", "\u2028", "\u3000", "\x85", "\u200b", "\t", "\n", " ",
                           "\x00", "\x7f", "/", "=", ",", "{", "}", '"', ":", "%", "\ud800"])
_text = st.lists(st.characters() | _tricky, max_size=16).map("".join)
_numbers = (st.integers(-(2**64), 2**64) | st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from([0, 1, 8888, 65535, 65536, 2**31 - 1, 2**31, -1]))
_scalar = st.none() | st.booleans() | _numbers | _text | st.sampled_from(
    ["8888", "rpc", "tcp", "hertz", "kitex", "hostIP", "IPv6", "30s", "0s", "1e400s", "10.0.0.1",
     "fd00::1", "a/b", "x" * 300, "9" * 5000, "fe80::1%\x00\n", "fe80::1%eth0"])
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_text | st.sampled_from(["name", "matchLabels"]), inner,
                                       max_size=4), max_leaves=12)
_fields = ["serviceName", "framework", "selector", "port", "network", "weight", "tags",
           "tagsFromLabels", "etcd", "leaseTTL", "retry", "publishNotReadyAddresses", "address",
           "unknownField"]
_nested = {
    "etcd": st.fixed_dictionaries({}, optional={
        "endpoints": _json, "prefix": _json, "dialTimeout": _json, "authSecretRef": _json,
        "tlsSecretRef": _json}),
    "retry": st.fixed_dictionaries({}, optional={
        "maxAttemptTimes": _json, "observeDelay": _json, "retryDelay": _json}),
    "address": st.fixed_dictionaries({}, optional={
        "source": _json, "ipFamily": _json, "host": _json, "port": _json}),
    "selector": st.fixed_dictionaries({}, optional={
        "matchLabels": st.dictionaries(_text, _json, max_size=3),
        "matchExpressions": st.lists(st.fixed_dictionaries({}, optional={
            "key": _json, "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist",
                                                       "in"]), "values": _json}), max_size=2)}),
    "tags": st.dictionaries(_text, _json, max_size=3)
    | st.integers(60, 1000).map(lambda n: {f"k{i}": "v" for i in range(n)}),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A KitexService with random fields: some of the right shape, some anything at all."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "echo"}}, "port": 8888}
    for field in draw(st.lists(st.sampled_from(_fields), max_size=6, unique=True)):
        shaped = _nested.get(field)
        spec[field] = draw(shaped | _json if shaped is not None else _json)
    meta: Any = {"name": draw(st.sampled_from(["echo", "a/b", ""]) | _text), "namespace": "ns"}
    return {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": draw(st.just(meta) | _json), "spec": draw(st.just(spec) | _json)}


def _pod(annotations: Any, ips: list[str], labels: Any = None) -> dict[str, Any]:
    return {"metadata": {"uid": "u", "namespace": "ns", "name": "p",
                         "labels": labels if labels is not None else {"zone": "a"},
                         "annotations": annotations},
            "spec": {"containers": [{"ports": [{"name": "rpc", "containerPort": 8888}]}]},
            "status": {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips],
                       "hostIP": "192.168.1.5",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


_ips = st.lists(st.ip_addresses().map(str), min_size=1, max_size=2)


def _check_instance(view: Any, spec: Any) -> None:
    """What a pod becomes: nothing, a SpecError, or an entry that decodes to itself."""
    try:
        instance = instance_for(view, spec)
    except SpecError as err:
        assert err.field and err.message
        return
    if instance is not None:
        raw = instance.encode()
        json.loads(raw)  # valid JSON, whatever the tags held
        assert decode_value(raw) == instance
        assert len(raw) <= MAX_VALUE_BYTES
        assert instance.address.isascii() and instance.address.isprintable()  # in the key


@MANY
@given(bodies(), _ips)
def test_kitexservice_parser_only_raises_spec_error(body: dict[str, Any], ips: list[str]) -> None:
    original = copy.deepcopy(body)
    try:
        spec = parse_kitexservice(body)
    except SpecError as err:
        assert err.field.startswith(("spec", "metadata")), err.field
        assert err.message
        return
    finally:
        assert body == original, "the parser must not modify the object it reads"
    _check_instance(pod_view(_pod({}, ips, {"app": "echo", "zone": "a"})), spec)


_annotation_names = (st.sampled_from([a.value for a in Annotation])
                     | st.builds(lambda s: ANNOTATION_PREFIX + s, _text))
_annotation_values = (_text | st.sampled_from(
    ["8888", "rpc", " 8888 ", "true", "YES", "a=b,c=d", "a=b,a=c", '{"a":"b"}', '{"a":1}',
     "{", "hostIP", "IPv6", "10.0.0.1", "fd00::1", "-1", "65536", "hertz", "a/b", "x" * 5000,
     # int() refuses past 4,300 digits, json.loads past ~1,000 levels: neither with a
     # SpecError. An IPv6 zone: any text after the %, for the etcd key.
     "9" * 5000, '{"a":' + "[" * 5000 + "]" * 5000 + "}", "fe80::1%\x00\n", "fe80::1%eth0"])
                      | st.integers(60, 2000).map(lambda n: ",".join(f"k{i}=v" for i in
                                                                     range(n))))


@MANY
@given(st.dictionaries(_annotation_names, _annotation_values, max_size=8), _ips,
       st.dictionaries(_text, _text, max_size=3))
def test_annotation_parser_only_raises_spec_error(notes: dict[str, str], ips: list[str],
                                                 labels: dict[str, str]) -> None:
    notes.setdefault(Annotation.SERVICE.value, "echo")
    view = pod_view(_pod(notes, ips, labels))
    try:
        spec = spec_from_annotations(view)
    except SpecError as err:
        # One annotation is named, and it is one the pod has (or the port it lacks).
        assert err.field.startswith(f"metadata.annotations[{ANNOTATION_PREFIX}"), err.field
        assert err.field.endswith("]")
        name = err.field[len("metadata.annotations["):-1]
        assert name in notes or name == Annotation.PORT.value, (name, sorted(notes))
        return
    assert spec is not None
    _check_instance(view, spec)


@MANY
@given(_json, _json, _json)
def test_pod_view_never_raises(meta: Any, spec: Any, status: Any) -> None:
    view = pod_view({"metadata": meta, "spec": spec, "status": status})
    assert all(isinstance(k, str) for k in view.annotations)
    try:
        notes = spec_from_annotations(view)
    except SpecError:
        return
    if notes is not None:
        _check_instance(view, notes)
