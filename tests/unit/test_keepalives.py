"""When leases are refreshed: never late, and the leases of one sync spread out."""

from __future__ import annotations

import random

from kitex_etcd_operator.keepalives import GATHER, KeepaliveSchedule


def simulate(schedule: KeepaliveSchedule, until: float, last: dict[int, float],
             step: float = 0.01) -> list[int]:
    """Runs the rounds as the registry's loop does, each answered at once; the
    size of every round, and asserts no lease waits past a third of its TTL."""
    sizes = []
    now = 0.0
    while now < until:
        due = schedule.next_due()
        assert due is not None
        now = max(now + step, due)
        leases = schedule.round(now)
        if not leases:
            continue
        sizes.append(len(leases))
        for lease in leases:
            assert now - last[lease] <= 20.0 + step, f"lease {lease} refreshed late"
            last[lease] = now
            schedule.refreshed(lease, now)
    return sizes


def test_the_leases_of_one_sync_are_refreshed_apart_and_never_late() -> None:
    schedule = KeepaliveSchedule(rng=random.Random(7))
    last = {}
    for lease in range(1000):  # granted within two seconds, TTL 60 s
        granted = lease * 0.002
        schedule.granted(lease, 60, granted)
        last[lease] = granted
    sizes = simulate(schedule, 300.0, last)
    # In one round they would be 1,000; spread over a 20 s period with rounds that
    # gather half a second, about 25.
    assert max(sizes) <= 60, max(sizes)
    per_period = sum(sizes) / (300 / 20)
    assert 1000 <= per_period <= 1000 / (1 - 0.1), per_period  # a few early, none twice


def test_adopted_leases_are_refreshed_at_once_then_spread() -> None:
    schedule = KeepaliveSchedule(rng=random.Random(3))
    for lease in range(500):
        schedule.adopted(lease, 60)
    assert sorted(schedule.round(5.0)) == list(range(500))
    for lease in range(500):
        schedule.refreshed(lease, 5.0)
    dues = sorted(schedule.due.values())
    assert dues[0] >= 5.0 and dues[-1] <= 25.0
    assert dues[-1] - dues[0] > 15.0  # spread over the period, not in step again


def test_a_round_takes_only_what_is_due_soon() -> None:
    schedule = KeepaliveSchedule(rng=random.Random(1))
    schedule.adopted(1, 60)
    schedule.adopted(2, 60)
    schedule.refreshed(1, 0.0)
    schedule.refreshed(2, 0.0)
    first, second = sorted(schedule.due.items(), key=lambda item: item[1])
    assert schedule.round(first[1] - 0.01) == []  # nothing due yet: no round
    taken = schedule.round(first[1])
    assert first[0] in taken
    assert (second[0] in taken) == (second[1] <= first[1] + GATHER)


def test_a_short_ttl_gathers_less_than_a_twelfth_of_it() -> None:
    schedule = KeepaliveSchedule(rng=random.Random(1))
    schedule.granted(1, 3, 0.0)
    schedule.granted(2, 3, 0.0)
    schedule.due.update({1: 1.0, 2: 1.3})  # 0.3 s apart: more than 3 / 12
    assert schedule.round(1.0) == [1]


def test_a_failed_round_is_tried_again_soon_and_forgotten_leases_leave() -> None:
    schedule = KeepaliveSchedule(rng=random.Random(1))
    schedule.granted(1, 60, 0.0)
    schedule.granted(2, 6, 0.0)
    schedule.failed([1, 2, 3], 10.0)
    assert schedule.due == {1: 15.0, 2: 11.0}
    schedule.forget(1)
    schedule.refreshed(1, 12.0)  # its round was out when it was revoked
    assert 1 not in schedule and len(schedule) == 1
    schedule.refreshed(2, 11.0)
    assert 11.0 <= schedule.due[2] <= 13.0  # spread over a whole period after a failure
