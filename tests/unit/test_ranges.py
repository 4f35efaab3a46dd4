"""The range index finds exactly the nesting bindings that a scan of all of them finds,
and forgets the bindings that are gone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.kube import parse_kitexservice, pod_view
from kitex_etcd_operator.plan import Binding
from kitex_etcd_operator.policy import ranges_nest
from kitex_etcd_operator.ranges import MAX_PREFIX_LENGTH, MAX_RANGE_PARTS, RangeIndex
from kitex_etcd_operator.registry import LeaseRecord, LeaseRecords
from tests.support.factories import kitexservice, pod

_part = st.sampled_from(["a", "b", "a/b", "ab", "a/", "/b", "kitex"])
_bindings = st.builds(Binding, st.sampled_from(["etcd-1", "etcd-2"]), _part, _part)


@given(st.lists(_bindings, max_size=12), st.lists(_bindings, max_size=6))
def test_index_matches_a_scan(bindings: list[Binding], gone: list[Binding]) -> None:
    """Other bindings inside, around or at a range (``a`` + ``b/x`` and ``a/b`` + ``x``
    share one), and none of those discarded."""
    index = RangeIndex()
    for b in bindings + gone:
        index.add(b)
    for b in gone:
        index.discard(b)
    kept = set(bindings) - set(gone)
    for b in bindings + gone:
        assert index.nesting(b) == {o for o in kept if o != b and o.etcd == b.etcd
                                    and ranges_nest(o.range, b.range)}
    for b in kept:
        index.discard(b)
    assert len(index) == 0 and not index._at and not index._below


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
    for lease in list(records):
        records.pop(lease)
    assert len(records._ranges) == 0  # revoked and expired services leave nothing behind


def test_churned_names_and_prefixes_leave_nothing_indexed() -> None:
    """Each update of one KitexService to a new name or prefix made a binding that stayed
    in the index, an entry for each "/" of its range: 2,000 updates held ~450 MB."""
    state = DesiredState()
    prefix = "/".join(["ab"] * 20)
    for i in range(200):
        body = kitexservice("churn", ns="team-b", framework="hertz", port=8888,
                            serviceName="/".join(["x"] * 10) + f"/{i}",
                            etcd={"prefix": f"{i}/{prefix}"})
        state.upsert_spec(("team-b", "churn"), parse_kitexservice(body),
                          body["spec"]["selector"])
        assert len(state._ranges) == 1
    # Pods come, move to another name with their annotations, and go.
    for i in range(50):
        state.upsert_pod(pod_view(pod("p", annotations={
            "kitex.cloudwego.io/service": f"s{i}", "kitex.cloudwego.io/port": "8888"})))
    assert len(state._ranges) == 2 and len(state.bindings()) == 2
    state.remove_pod("p")
    state.remove_spec(("team-b", "churn"))
    assert state.bindings() == set() and len(state._ranges) == 0
    for held in (state._values, state._spec_claims, state._pod_claims, state._service_claims):
        assert not held


def test_a_binding_keeps_its_place_while_anything_holds_it() -> None:
    """An unselected pod's last value leaving does not forget a binding its spec claims."""
    state = DesiredState()
    body = kitexservice("echo", port=8888, serviceName="echo")
    state.upsert_spec(("default", "echo"), parse_kitexservice(body), body["spec"]["selector"])
    state.upsert_pod(pod_view(pod("a", labels={"app": "echo"})))
    echo = Binding("default", "kitex/registry-etcd", "echo")
    inner = Binding("default", "kitex/registry-etcd/echo", "x")
    state._ranges.add(inner)
    state.remove_pod("a")
    assert state.present(echo) and state.instance_count(echo) == 0
    assert state._ranges.nesting(inner) == {echo}


@pytest.mark.parametrize(("spec", "field"), [
    ({"etcd": {"prefix": "p" * (MAX_PREFIX_LENGTH + 1)}}, "spec.etcd.prefix"),
    ({"etcd": {"prefix": "/".join("p" * MAX_RANGE_PARTS)}}, "spec.etcd.prefix"),
    ({"framework": "hertz", "serviceName": "/".join("s" * MAX_RANGE_PARTS)},
     "spec.serviceName"),
    ({"framework": "hertz", "etcd": {"prefix": "a/b"},
      "serviceName": "/".join("s" * (MAX_RANGE_PARTS - 1))}, "spec.serviceName"),
])
def test_ranges_too_long_or_deep_to_index_are_refused(spec: dict[str, object],
                                                       field: str) -> None:
    body = kitexservice("deep", port=8888, **spec)
    state = DesiredState()
    state.upsert_spec(("default", "deep"), parse_kitexservice(body), body["spec"]["selector"])
    error = state.spec_errors[("default", "deep")]
    assert error.field == field and state.bindings() == set()
    assert len(state._ranges) == 0


def test_the_deepest_range_allowed_is_registered() -> None:
    body = kitexservice("deep", port=8888, framework="hertz", etcd={"prefix": "a/b"},
                        serviceName="/".join("s" * (MAX_RANGE_PARTS - 2)))
    binding, _ = DesiredState().binding_of(parse_kitexservice(body), "default")
    assert binding.range.count("/") == MAX_RANGE_PARTS


def test_an_annotated_hertz_name_too_deep_names_its_annotation() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations={
        "kitex.cloudwego.io/service": "/".join("s" * MAX_RANGE_PARTS),
        "kitex.cloudwego.io/framework": "hertz", "kitex.cloudwego.io/port": "8888"})))
    _, error = state.pod_errors["a"]
    assert error.field == "metadata.annotations[kitex.cloudwego.io/service]"
    assert state.bindings() == set()
