"""What a complete pod list may conclude: which pods were deleted unseen.

``Controller.pods_listed`` is the only place a pod leaves without a delete
event, so it must be narrow: only pods of the listed namespace, and only pods
no event mentioned since the list began (a watch event can be newer than the
list's snapshot).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kitex_etcd_operator.controller import Controller
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.settings import Settings
from tests.support.factories import ANNOTATED, kitexservice, pod

A = "kitex.cloudwego.io/"
ECHO = Binding("default", "kitex/registry-etcd", "echo")


def controller() -> Controller:
    return Controller(Settings(), kube=None)


async def test_a_complete_list_removes_only_unlisted_pods_of_its_namespace() -> None:
    c = controller()
    a, b, other = pod("a", "10.0.0.1"), pod("b", "10.0.0.2"), pod("c", "10.0.0.3")
    other["metadata"]["namespace"] = "elsewhere"
    for body in (a, b, other):
        c.on_pod(None, body)
    started = time.monotonic()
    c.pods_listed(a["metadata"]["namespace"], {a["metadata"]["uid"]}, started)
    assert set(c.state.pods) == {a["metadata"]["uid"], other["metadata"]["uid"]}


async def test_a_cluster_wide_list_covers_every_namespace() -> None:
    c = controller()
    a, other = pod("a", "10.0.0.1"), pod("c", "10.0.0.3")
    other["metadata"]["namespace"] = "elsewhere"
    for body in (a, other):
        c.on_pod(None, body)
    c.pods_listed(None, {a["metadata"]["uid"]}, time.monotonic())
    assert set(c.state.pods) == {a["metadata"]["uid"]}


async def test_a_pod_heard_of_after_the_list_began_is_kept() -> None:
    c = controller()
    started = time.monotonic()
    late = pod("late", "10.0.0.9")
    c.on_pod("ADDED", late)  # a watch event newer than the list's snapshot
    c.pods_listed(late["metadata"]["namespace"], set(), started)
    assert late["metadata"]["uid"] in c.state.pods


async def test_a_deleted_pod_is_not_revived_by_an_older_list() -> None:
    c = controller()
    gone = pod("gone", "10.0.0.4")
    c.on_pod(None, gone)
    c.on_pod("DELETED", gone)
    c.on_pod(None, gone)  # a relist whose snapshot predates the deletion
    assert gone["metadata"]["uid"] not in c.state.pods


async def test_only_what_the_watch_heard_since_the_last_list_is_remembered() -> None:
    """``_seen_at`` held a time for every pod ever seen (45 bytes a pod at 100,000):
    a list's own items need none, and a list forgets what its scope heard before it."""
    c = controller()
    listed, heard, other = pod("a", "10.0.0.1"), pod("b", "10.0.0.2"), pod("c", "10.0.0.3")
    other["metadata"]["namespace"] = "elsewhere"
    c.on_pod(None, listed)
    c.on_pod("MODIFIED", heard)
    c.on_pod("MODIFIED", other)
    assert set(c.pods._seen_at) == {"b", "c"}
    namespace = listed["metadata"]["namespace"]
    c.pods_listed(namespace, {"a", "b"}, time.monotonic())
    assert set(c.pods._seen_at) == {"c"}  # another namespace's list is still to come
    assert set(c.state.pods) == {"a", "b", "c"}


def test_a_list_tells_the_workers_once_when_complete() -> None:
    """Per item, the metrics and the dirty-key hand-over cost 100,000 calls a list."""
    from kitex_etcd_operator.feeds import Feed
    from kitex_etcd_operator.kube.wire import item_of

    calls: list[int] = []
    held: dict[str, Any] = {}
    feed = Feed("Pod", upsert=lambda body: held.update({body["metadata"]["uid"]: body}),
                remove=lambda uid: held.pop(uid, None),
                held=lambda: [(uid, "default", uid) for uid in held],
                changed=lambda: calls.append(1), resync_period=300)
    started = time.monotonic()
    for uid in ("a", "b", "c"):
        feed.on_item(None, item_of(pod(uid), lambda body: body))
    assert calls == []
    feed.listed(None, {"a", "b", "c"}, started)
    assert calls == [1]
    feed.on_event("MODIFIED", pod("a", version=2))  # a watch event: at once
    assert calls == [1, 1]


def test_a_relist_leaves_what_it_already_holds_alone() -> None:
    """The same resourceVersion is the same object: a resync's copy of a pod held is
    not upserted again (100,000 new views a resync undid the frozen heap)."""
    from kitex_etcd_operator.feeds import Feed
    from kitex_etcd_operator.kube.wire import item_of

    upserts: list[str] = []
    feed = Feed("Pod", upsert=lambda body: upserts.append(body["metadata"]["uid"]),
                remove=lambda uid: None, held=lambda: [], changed=lambda: None,
                resync_period=300)
    feed.on_item(None, item_of(pod("a"), lambda body: body))
    feed.on_item(None, item_of(pod("b"), lambda body: body))
    feed.on_event("MODIFIED", pod("b", version=2))
    assert upserts == ["a", "b", "b"]
    for body in (pod("a"), pod("b", version=2)):  # the resync: nothing new
        feed.on_item(None, item_of(body, lambda body: body))
    assert upserts == ["a", "b", "b"]
    feed.on_item(None, item_of(pod("a", version=3), lambda body: body))  # changed unseen
    assert upserts == ["a", "b", "b", "a"]


def test_a_pod_whose_upsert_failed_is_tried_again_by_the_next_list() -> None:
    from kitex_etcd_operator.feeds import Feed
    from kitex_etcd_operator.kube.wire import item_of

    attempts: list[str] = []

    def upsert(body: dict[str, Any]) -> None:
        attempts.append(body["metadata"]["uid"])
        if len(attempts) == 1:
            raise ValueError("a bug")

    feed = Feed("Pod", upsert=upsert, remove=lambda uid: None, held=lambda: [],
                changed=lambda: None, resync_period=300)
    with pytest.raises(ValueError):
        feed.on_item(None, item_of(pod("a"), lambda body: body))
    feed.on_item(None, item_of(pod("a"), lambda body: body))
    assert attempts == ["a", "a"]


def test_a_relist_builds_no_view_of_a_pod_held_at_its_version() -> None:
    """Protobuf pods are read into views only when the feed takes them: a resync of
    100,000 unchanged pods built 100,000 views to throw away (10 us of CPU each)."""
    from kitex_etcd_operator.feeds import Feed
    from kitex_etcd_operator.kube.wire import Item

    built: list[str] = []

    def view(uid: str) -> str:
        built.append(uid)
        return uid

    feed = Feed("Pod", upsert=lambda value: None, remove=lambda uid: None,
                held=lambda: [], changed=lambda: None, resync_period=300)
    for uid in ("a", "b"):
        feed.on_item(None, Item(uid, 1, uid, view))
    assert built == ["a", "b"]
    feed.on_item(None, Item("a", 1, "a", view))  # the resync's copies
    feed.on_item(None, Item("b", 2, "b", view))
    assert built == ["a", "b", "b"]


# --- an object the parsers choke on: its own error, never the end of a list or a watch ---

async def test_objects_the_parsers_choke_on_are_their_own_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but a ``SpecError`` escaping here stopped the cluster-wide watch (the
    relist met the object again), or the KitexService list at start for good."""
    from kitex_etcd_operator import controller as controller_module

    c = controller()
    deep = '{"a":' + "[" * 100000 + "]" * 100000 + "}"  # 200 KB: an annotation may hold it
    c.on_pod(None, pod("deep", annotations={**ANNOTATED, A + "tags": deep}))
    c.on_pod(None, pod("huge", "10.0.0.2", annotations={**ANNOTATED, A + "weight": "9" * 5000}))
    c.on_pod(None, pod("good", "10.0.0.3", annotations=ANNOTATED))
    assert c.state.pod_errors["deep"][1].field == f"metadata.annotations[{A}tags]"
    assert c.state.pod_errors["huge"][1].field == f"metadata.annotations[{A}weight]"
    assert list(c.state.values(ECHO)) == ["kitex/registry-etcd/echo/10.0.0.3:8888"]

    huge = kitexservice("huge", serviceRef={"name": "api", "port": "9" * 5000})
    del huge["spec"]["selector"]
    c.on_kitexservice(None, huge)
    ready = c.status.objects[("default", "huge")].conditions["Ready"]
    assert ready["status"] == "False" and "spec.serviceRef.port" in ready["message"]

    def parse(body: Any) -> Any:
        raise RecursionError("a bug")

    monkeypatch.setattr(controller_module, "parse_kitexservice", parse)
    c.on_kitexservice(None, kitexservice("buggy", port=8888))
    ready = c.status.objects[("default", "buggy")].conditions["Ready"]
    assert ready["status"] == "False" and "RecursionError" in ready["message"]
    assert ("default", "buggy") not in c.state.specs
