"""Events by namespace, taken in turn: one tenant's backlog costs another one place a round."""

from __future__ import annotations

from kitex_etcd_operator.fair_queue import FairQueue


def test_a_backlog_of_one_namespace_waits_its_turn() -> None:
    queue: FairQueue[str, str] = FairQueue()
    for i in range(1000):
        queue.put("team-b", f"b{i}")
    queue.put("team-a", "a0")
    queue.put("team-a", "a1")
    assert len(queue) == 1002
    assert queue.take(3) == ["b0", "a0", "b1"]  # team-a's first right after team-b's first
    assert queue.take(2) == ["a1", "b2"]
    assert len(queue) == 997


def test_each_namespace_keeps_its_own_order_and_the_queue_empties() -> None:
    queue: FairQueue[str, int] = FairQueue()
    for i in range(5):
        queue.put("x", i)
    queue.put("y", 100)
    taken = queue.take(100)
    assert [i for i in taken if i < 100] == [0, 1, 2, 3, 4] and 100 in taken
    assert len(queue) == 0 and not queue and queue.take(10) == []
