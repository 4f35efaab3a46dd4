"""Protobuf pod list pages (``kube.podproto``) read exactly as their JSON twins are.

The pages here are encoded by a small protobuf writer of the test's own,
field by field after k8s.io/api's generated.proto, with the fields the
decoder must skip (managedFields, volumes, container images, statuses) in
between: the decoder's schema is not used to make its input. The cluster
suite compares both encodings of the same pods from a real API server
(tests/cluster/test_pod_encodings.py).
"""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitex_etcd_operator.kube import podproto, podwire, wire
from tests.support.factories import ANNOTATED, pod


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _bytes(number, value.encode())


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _time(number: int, stamp: str) -> bytes:
    seconds = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    return _bytes(number, _int(1, seconds) + _int(2, 0))


def _map(number: int, mapping: dict[str, str]) -> bytes:
    # as the API server writes maps: one entry each, keys sorted
    return b"".join(_bytes(number, _text(1, k) + _text(2, v)) for k, v in sorted(mapping.items()))


def _meta(meta: dict[str, Any]) -> bytes:
    out = _text(1, meta["name"]) + _text(2, "gen-") + _text(3, meta["namespace"])
    out += _text(5, meta["uid"]) + _text(6, meta["resourceVersion"])
    out += _int(7, 3) + _time(8, meta["creationTimestamp"])
    if "deletionTimestamp" in meta:
        out += _time(9, meta["deletionTimestamp"]) + _int(10, 30)
    out += _map(11, meta.get("labels") or {}) + _map(12, meta.get("annotations") or {})
    managed = _text(1, "kubelet") + _text(2, "Update") + _bytes(7, _bytes(1, b'{"f:status":{}}'))
    return out + _bytes(13, _text(1, "ReplicaSet")) + _bytes(17, managed)


def _spec(spec: dict[str, Any]) -> bytes:
    out = _bytes(1, _text(1, "token") + _bytes(26, b"\x0a\x00"))  # a volume: skipped
    for container in spec.get("containers") or ():
        body = _text(1, container.get("name", "")) + _text(2, "example.com/app:1")
        for port in container.get("ports") or ():
            body += _bytes(6, _text(1, port.get("name", "")) + _int(3, port["containerPort"])
                           + _text(4, port.get("protocol", "TCP")))
        out += _bytes(2, body + _bytes(7, _text(1, "ENV") + _text(2, "x")))
    out += _text(3, "Always") + _text(10, "node-1")
    if spec.get("hostNetwork"):
        out += _int(11, 1)
    for gate in spec.get("readinessGates") or ():
        out += _bytes(28, _text(1, gate["conditionType"]))
    return out


def _status(status: dict[str, Any]) -> bytes:
    out = _text(1, status.get("phase", ""))
    for condition in status.get("conditions") or ():
        out += _bytes(2, _text(1, condition["type"]) + _int(7, 1) + _text(2, condition["status"])
                      + _time(4, "2026-01-01T00:00:00Z"))
    out += _text(5, status.get("hostIP", "")) + _text(6, status.get("podIP", ""))
    out += _bytes(8, _text(1, "c") + _int(3, 1))  # a container status: skipped
    for ip in status.get("podIPs") or ():
        out += _bytes(12, _text(1, ip["ip"]))
    return out + _text(9, "BestEffort")


def _pod(body: dict[str, Any]) -> bytes:
    return (_bytes(1, _meta(body["metadata"])) + _bytes(2, _spec(body["spec"]))
            + _bytes(3, _status(body["status"])))


def proto_page(*bodies: dict[str, Any], token: str = "") -> bytes:
    listed = _bytes(1, _text(2, "77") + (_text(3, token) if token else b""))
    listed += b"".join(_bytes(2, _pod(body)) for body in bodies)
    envelope = _bytes(1, _text(1, "v1") + _text(2, "PodList")) + _bytes(2, listed)
    return podproto.MAGIC + envelope + _text(3, "") + _text(4, "")


def json_page(*bodies: dict[str, Any], token: str = "") -> bytes:
    return json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "77",
                                                       "continue": token},
                       "items": list(bodies)}).encode()


def read(items: list[wire.Item]) -> list[tuple[str, int | None, Any]]:
    """Items as the feed reads them: a protobuf pod's view is built when asked."""
    return [(item.uid, item.version, item.view()) for item in items]


def full(body: dict[str, Any], *, gate: bool, host_network: bool) -> dict[str, Any]:
    if gate:
        body["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}]
        body["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    body["spec"]["hostNetwork"] = host_network
    body["spec"]["containers"].append({"name": "side", "ports": [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}, {"containerPort": 53,
                                                                        "protocol": "UDP"}]})
    body["status"]["podIPs"].append({"ip": "fd00::1"})
    return body


ANNOTATIONS = {**ANNOTATED, "kubectl.kubernetes.io/last-applied-configuration": "{}"}
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=8)


@settings(max_examples=60)
@given(ready=st.booleans(), deleting=st.booleans(), gate=st.booleans(),
       host_network=st.booleans(), version=st.integers(1, 10**12),
       labels=st.dictionaries(names, names, max_size=3), phase=st.sampled_from(
           ["Running", "Pending", "Succeeded", "Failed"]))
def test_a_page_decodes_as_its_json_twin(ready: bool, deleting: bool, gate: bool,
                                         host_network: bool, version: int,
                                         labels: dict[str, str], phase: str) -> None:
    bodies = []
    for i in range(3):
        body = full(pod(f"u{i}", f"10.0.0.{i}", ready=ready, deleting=deleting,
                        version=version + i, labels=labels, annotations=ANNOTATIONS,
                        created=f"2026-0{i + 1}-02T03:04:05Z"), gate=gate,
                    host_network=host_network)
        body["status"]["phase"] = phase
        bodies.append(body)
    items, version_, token = podproto.decode_page(proto_page(*bodies, token="next"))
    assert read(items) == read(podwire.decode_page(json_page(*bodies, token="next"))[0])
    assert (version_, token) == ("77", "next")


def test_pods_of_one_template_share_their_parts() -> None:
    bodies = [full(pod(f"u{i}", labels={"app": "a"}, annotations=ANNOTATIONS), gate=False,
                   host_network=False) for i in range(2)]
    first, second = (item.view() for item in podproto.decode_page(proto_page(*bodies))[0])
    assert first.labels is second.labels and first.annotations is second.annotations
    assert first.container_ports is second.container_ports
    assert first.container_ports == (("rpc", 8888, "TCP"), ("metrics", 9090, "TCP"),
                                     ("", 53, "UDP"))
    assert "kubectl.kubernetes.io/last-applied-configuration" not in first.annotations


def test_a_json_answer_is_read_as_json() -> None:
    body = pod("j")
    assert read(podproto.decode_page(json_page(body))[0]) == \
        read(podwire.decode_page(json_page(body))[0])


def test_a_broken_protobuf_body_asks_for_json() -> None:
    with pytest.raises(wire.Undecodable):
        podproto.decode_page(podproto.MAGIC + b"\x12\xff\xff\xff\xff\x0f")
    good = proto_page(pod("x"))
    with pytest.raises(wire.Undecodable):
        podproto.decode_page(good[:-20])  # cut short


def test_the_token_is_read_ahead_of_the_pods() -> None:
    bodies = [pod(f"t{i}") for i in range(3)]
    assert podproto.page_token(proto_page(*bodies, token="next")) == "next"
    assert podproto.page_token(proto_page(*bodies)) == ""  # the last page
    assert podproto.page_token(json_page(*bodies, token="next")) is None  # decode first
    assert podproto.page_token(podproto.MAGIC + b"\x12\xff\xff") is None
    assert podproto.page_token(podproto.MAGIC + b"\x08\x01") is None


def test_only_our_annotations_are_read_however_the_others_look() -> None:
    annotations = {**ANNOTATED, "x": "kitex.cloudwego.io/service", "a" * 200: "kitex.cloudwego.io/",
                   "kitex.cloudwego.io/" + "n" * 63: "long name", "cni.example/podIP": "10.0.0.9",
                   "kitex.cloudwego.io.example.com/service": "not ours"}
    body = pod("a", annotations=annotations)
    (item,), _, _ = podproto.decode_page(proto_page(body))
    assert read([item]) == read(podwire.decode_page(json_page(body))[0])
    assert set(item.view().annotations) == {*ANNOTATED, "kitex.cloudwego.io/" + "n" * 63}


@settings(max_examples=40)
@given(cuts=st.lists(st.integers(1, 400), max_size=30), count=st.integers(0, 5))
def test_a_whole_list_read_as_it_arrives_is_the_same_list(cuts: list[int], count: int) -> None:
    """The watch cache's one answer, cut anywhere: the same pods, version and token."""
    bodies = [full(pod(f"s{i}", f"10.0.1.{i}", annotations=ANNOTATIONS), gate=i % 2 == 0,
                   host_network=False) for i in range(count)]
    body = proto_page(*bodies, token="more")
    stream, items, at = podproto.ListStream(), [], 0
    for cut in [*cuts, len(body)]:
        items += stream.feed(body[at:at + cut])
        at += cut
    stream.finish()
    assert read(items) == read(podproto.decode_page(body)[0])
    assert (stream.resource_version, stream.token) == ("77", "more")


def test_a_list_cut_short_or_not_protobuf_is_refused() -> None:
    body = proto_page(pod("a"), pod("b"))
    stream = podproto.ListStream()
    stream.feed(body[:-30])
    with pytest.raises(wire.Undecodable):
        stream.finish()
    with pytest.raises(wire.Undecodable):
        podproto.ListStream().feed(json_page(pod("a")))
    with pytest.raises(wire.Undecodable):  # a length past the end of the list
        podproto.ListStream().feed(podproto.MAGIC + b"\x12\x03" + b"\x12\x09" + b"\x00" * 12)
