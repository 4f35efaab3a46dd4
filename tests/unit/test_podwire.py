"""The fast pod decoder (``kube.podwire``) reads exactly what ``pod_view`` reads.

The operator's list pages and watch events go through msgspec structs; tests
and odd bodies go through the lenient ``pod_view``. Both must give the same
view of any pod, and a body msgspec refuses must still be read, leniently.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.kube.podwire import decode_event, decode_page
from kitex_etcd_operator.kube.wire import Item, item_of
from tests.support.factories import ANNOTATED, pod


def versioned(body: dict[str, Any]) -> Item:
    return item_of(body, pod_view)


ANNOTATIONS = {**ANNOTATED, "kubectl.kubernetes.io/last-applied-configuration": "{}"}


def page(*bodies: dict[str, Any], token: str = "") -> bytes:
    return json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "77",
                                                       "continue": token},
                       "items": list(bodies)}).encode()


def full(body: dict[str, Any]) -> dict[str, Any]:
    """A body with what the API server adds and the decoder must skip."""
    body["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    body["spec"]["volumes"] = [{"name": "token", "projected": {"sources": []}}]
    body["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}]
    body["spec"]["hostNetwork"] = True
    body["status"]["conditions"].append({"type": "example.com/lb", "status": "True",
                                         "lastTransitionTime": "2026-01-01T00:00:00Z"})
    body["status"]["podIPs"].append({"ip": "fd00::1"})
    body["status"]["containerStatuses"] = [{"name": "c", "ready": True}]
    return body


@given(ready=st.booleans(), deleting=st.booleans(), version=st.integers(1, 10**12),
       labels=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8),
                              max_size=3))
def test_a_page_decodes_as_pod_view_reads_it(ready: bool, deleting: bool, version: int,
                                            labels: dict[str, str]) -> None:
    bodies = [full(pod(f"u{i}", f"10.0.0.{i}", ready=ready, deleting=deleting,
                       version=version + i, labels=labels, annotations=ANNOTATIONS))
              for i in range(3)]
    items, resource_version, token = decode_page(page(*bodies, token="next"))
    assert items == [versioned(body) for body in bodies]
    assert (resource_version, token) == ("77", "next")
    assert items[0].value.pod_ips == ("10.0.0.0", "fd00::1") and items[0].value.host_network


def test_a_field_of_the_wrong_type_is_read_leniently() -> None:
    odd = pod("odd")
    odd["spec"]["containers"][0]["ports"][0]["containerPort"] = "8888"  # a string
    odd["metadata"]["labels"] = {"app": 7}
    items, _, _ = decode_page(page(odd, pod("fine")))
    assert [item.uid for item in items] == ["odd", "fine"]
    assert items[0] == versioned(odd)
    assert items[0].value.container_ports == () and items[0].value.labels == {}


def test_watch_events() -> None:
    body = full(pod("w", version=12))
    event = decode_event(json.dumps({"type": "MODIFIED", "object": body}).encode())
    assert (event.type, event.item, event.resource_version) == ("MODIFIED", versioned(body), "12")
    bookmark = decode_event(b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":'
                            b'{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":'
                            b'"true"}}}}')
    assert (bookmark.type, bookmark.resource_version) == ("BOOKMARK", "99")
    gone = decode_event(b'{"type":"ERROR","object":{"kind":"Status","code":410,'
                        b'"message":"too old resource version"}}')
    assert gone.item is None and gone.status is not None
    assert (gone.status.code, gone.status.message) == (410, "too old resource version")
