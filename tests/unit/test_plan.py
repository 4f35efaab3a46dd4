"""Planning rules: minimal writes, guarded by ownership, within etcd's txn limit."""

from __future__ import annotations

from kitex_etcd_operator.plan import MAX_TXN_OPS, Observed, Policy, batches, make_plan
from kitex_etcd_operator.writes import Delete, Put

OURS, OLD, FOREIGN = 0x10, 0x11, 0x99


def test_new_key_is_put_guarded_by_absence() -> None:
    plan = make_plan({"k": b"v"}, {}, lease=OURS, owned_leases={OURS})
    assert plan.puts == [Put("k", b"v", OURS, expect_lease=0)]


def test_equal_value_on_current_lease_is_skipped() -> None:
    plan = make_plan({"k": b"v"}, {"k": Observed(b"v", OURS)}, lease=OURS, owned_leases={OURS})
    assert not plan and plan.unchanged == 1


def test_adopted_key_moves_to_current_lease_without_delete() -> None:
    plan = make_plan({"k": b"v"}, {"k": Observed(b"v", OLD)}, lease=OURS,
                     owned_leases={OURS, OLD})
    assert plan.puts == [Put("k", b"v", OURS, expect_lease=OLD)]
    assert plan.deletes == []


def test_foreign_key_is_a_conflict_and_untouched() -> None:
    plan = make_plan({"k": b"v"}, {"k": Observed(b"other", FOREIGN), "f": Observed(b"x", FOREIGN)},
                     lease=OURS, owned_leases={OURS})
    assert not plan
    assert plan.conflicts == ["k"]


def test_only_our_stale_keys_are_deleted() -> None:
    observed = {"a": Observed(b"1", OURS), "b": Observed(b"2", FOREIGN), "c": Observed(b"3", 0)}
    plan = make_plan({}, observed, lease=OURS, owned_leases={OURS})
    assert plan.deletes == [Delete("a", expect_lease=OURS)]


def test_upsert_only_withholds_deletes() -> None:
    plan = make_plan({}, {"a": Observed(b"1", OURS)}, lease=OURS, owned_leases={OURS},
                     policy=Policy.UPSERT_ONLY)
    assert plan.deletes == [] and plan.withheld_deletes == 1


def test_delete_cap() -> None:
    observed = {f"k{i}": Observed(b"v", OURS) for i in range(10)}
    plan = make_plan({}, observed, lease=OURS, owned_leases={OURS}, max_deletes=3)
    assert len(plan.deletes) == 3 and plan.withheld_deletes == 7


def test_keys_narrow_the_diff() -> None:
    observed = {"a": Observed(b"1", OURS), "b": Observed(b"2", OURS)}
    plan = make_plan({"b": b"2"}, observed, lease=OURS, owned_leases={OURS}, keys=["b"])
    assert not plan  # "a" is stale but was not asked about


def test_batches_respect_the_limit() -> None:
    ops = [Put(f"k{i}", b"v", OURS) for i in range(1000)]
    sizes = [len(b) for b in batches(ops)]
    assert sum(sizes) == 1000 and max(sizes) == MAX_TXN_OPS and len(sizes) == 8
