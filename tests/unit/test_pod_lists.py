"""What a complete pod list may conclude: which pods were deleted unseen.

``Controller.pods_listed`` is the only place a pod leaves without a delete
event, so it must be narrow: only pods of the listed namespace, and only pods
no event mentioned since the list began (a watch event can be newer than the
list's snapshot).
"""

from __future__ import annotations

import time
from typing import Any

from kitex_etcd_operator.controller import Controller
from kitex_etcd_operator.settings import Settings
from tests.support.factories import pod


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
