"""The range index finds exactly the nesting bindings that a scan of all of them finds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.kube import pod_view
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.policy import ranges_nest
from kitex_etcd_operator.ranges import RangeIndex
from kitex_etcd_operator.registry import LeaseRecord, LeaseRecords
from tests.support.factories import pod

_part = st.sampled_from(["a", "b", "a/b", "ab", "a/", "/b", "kitex"])
_bindings = st.builds(Binding, st.sampled_from(["etcd-1", "etcd-2"]), _part, _part)


@given(st.lists(_bindings, max_size=12))
def test_index_matches_a_scan(bindings: list[Binding]) -> None:
    index = RangeIndex()
    for b in bindings:
        index.add(b)
    for b in bindings:
        assert index.nesting(b) == {o for o in bindings if o != b and o.etcd == b.etcd
                                    and ranges_nest(o.range, b.range)}


def test_desired_state_nesting_counts_present_bindings_only() -> None:
    state = DesiredState()
    ann = {"kitex.cloudwego.io/port": "8888"}
    for uid, service in (("a", "echo"), ("b", "echo2")):
        state.upsert_pod(pod_view(pod(uid, f"10.0.0.{len(uid)}", annotations={
            **ann, "kitex.cloudwego.io/service": service})))
    echo, echo2 = sorted(state.bindings(), key=lambda b: b.service)
    assert state.nesting(echo) == [] and state.nesting(echo2) == []  # siblings: no nesting
    outer = Binding(echo.etcd, "kitex", "registry-etcd")  # its range holds echo's
    state._ranges.add(outer)
    assert state.nesting(echo) == []  # known to the index, but nothing claims it


_records = st.lists(st.tuples(st.integers(1, 8), _part, _part, st.booleans()), max_size=16)


@given(_records, _bindings)
def test_lease_records_find_the_nesting_services_on_record(steps: list[tuple[int, str, str, bool]],
                                                           probe: Binding) -> None:
    """Records come and go (revoked, expired, adopted); only those still held count."""
    records = LeaseRecords()
    for lease, prefix, service, keep in steps:
        records[lease] = LeaseRecord(lease, prefix, service, 60)
        if not keep:
            records.pop(lease)
    held = {(r.prefix, r.service) for r in records.values()}
    assert sorted(records.nesting(probe)) == sorted(
        (prefix, service) for prefix, service in held
        if (prefix, service) != (probe.prefix, probe.service)
        and ranges_nest(Binding(probe.etcd, prefix, service).range, probe.range))
