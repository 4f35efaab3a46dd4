"""Tenancy without a cluster: policy rules, ownership, ranges, endpoints, per-namespace values.

The real-cluster proofs (each attack against the running operator) are in
tests/tenancy/; these pin the pure rules they rest on.
"""

from __future__ import annotations

import pytest

from kitex_etcd_operator.desired import DesiredState, PolicyError, Source
from kitex_etcd_operator.endpoints import InvalidEndpoint, check_endpoint, identity
from kitex_etcd_operator.kube import SpecError, parse_kitexservice, pod_view
from kitex_etcd_operator.kube.tenancy import parse_policy, parse_registry
from kitex_etcd_operator.model import MAX_VALUE_BYTES
from kitex_etcd_operator.plan import Binding, batches
from kitex_etcd_operator.policy import (
    Admitted,
    Claim,
    PolicySet,
    RangeClaim,
    Refused,
    Request,
    decide_owner,
    nesting_winner,
    ranges_nest,
)
from kitex_etcd_operator.writes import Delete, Put
from tests.support.factories import ANNOTATED, kitexservice, pod

PAYMENT = Binding("default", "kitex/registry-etcd", "payment")
ANNOTATED_PAYMENT = {"kitex.cloudwego.io/service": "payment", "kitex.cloudwego.io/port": "8888"}


def policy(name: str, **spec: object) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"namespaceSelector": {}, **spec}}


def request(**kw: object) -> Request:
    base: dict[str, object] = dict(namespace="team-a", source="KitexService", service="payment",
                                   registry="default", prefix="kitex/registry-etcd", weight=10)
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


# --- rules ------------------------------------------------------------------------------

def test_single_team_default_allows_all_but_custom_endpoints() -> None:
    policies = PolicySet()
    assert isinstance(policies.admit(request(weight=2**31 - 1, fixed_host=True), {}), Admitted)
    refused = policies.admit(request(registry=None), {})
    assert isinstance(refused, Refused) and refused.field == "etcd.endpoints"


def test_policy_patterns_substitute_the_namespace_and_refuse_the_rest() -> None:
    rule = parse_policy(policy("teams", serviceNames=["{namespace}.*"], maxWeight=100))
    policies = PolicySet([rule])
    assert isinstance(policies.admit(request(service="team-a.payment"), {}), Admitted)
    refused = policies.admit(request(service="payment"), {})
    assert isinstance(refused, Refused) and refused.field == "serviceName"
    assert "KitexRegistrationPolicy teams" in refused.message
    refused = policies.admit(request(service="team-a.x", weight=101), {})
    assert isinstance(refused, Refused) and refused.field == "weight"
    # `[` and `?` are not glob syntax in a service name
    literal = PolicySet([parse_policy(policy("p", serviceNames=["a[b]?"]))])
    assert isinstance(literal.admit(request(service="a[b]?"), {}), Admitted)
    assert isinstance(literal.admit(request(service="ab"), {}), Refused)


def test_policies_select_namespaces_and_add_up() -> None:
    a = parse_policy(policy("a", namespaceSelector={"matchLabels": {"team": "a"}},
                            serviceNames=["payment"]))
    b = parse_policy(policy("b", namespaceSelector={"matchLabels": {"team": "a"}},
                            serviceNames=["orders"], allowFixedHost=True))
    policies = PolicySet([a, b])
    assert isinstance(policies.admit(request(), {"team": "a"}), Admitted)
    assert isinstance(policies.admit(request(service="orders", fixed_host=True),
                                     {"team": "a"}), Admitted)
    refused = policies.admit(request(fixed_host=True), {"team": "a"})
    assert isinstance(refused, Refused) and refused.field == "address.host"
    nobody = policies.admit(request(namespace="team-b"), {"team": "b"})
    assert isinstance(nobody, Refused) and "no KitexRegistrationPolicy selects" in nobody.message
    assert isinstance(policies.admit(request(), None), Refused)  # unknown namespace


def test_secure_defaults_of_a_policy() -> None:
    policies = PolicySet([parse_policy(policy("p"))])
    for kw, field in (({"registry": None}, "etcd.endpoints"), ({"host_ip": True}, "address.source"),
                      ({"fixed_host": True}, "address.host"), ({"registry": "other"},
                                                                "etcd.registry")):
        refused = policies.admit(request(**kw), {})
        assert isinstance(refused, Refused) and refused.field == field


def test_shared_names_make_one_owner_group() -> None:
    rule = parse_policy(policy("blue-green", sharedServiceNames=["payment"]))
    policies = PolicySet([rule])
    blue = policies.admit(request(namespace="blue"), {})
    green = policies.admit(request(namespace="green"), {})
    assert isinstance(blue, Admitted) and isinstance(green, Admitted)
    assert blue.group == green.group == "policy/blue-green"
    other = policies.admit(request(service="orders"), {})
    assert isinstance(other, Admitted) and other.group == "namespace/team-a"


def test_policy_and_registry_parsers_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"spec\.namespaceSelector"):
        parse_policy({"metadata": {"name": "p"}, "spec": {}})
    with pytest.raises(SpecError, match=r"spec.sources\[0\]"):
        parse_policy(policy("p", sources=["pods"]))
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_registry({"metadata": {"name": "default"}, "spec": {"endpoints": ["a:1"]}})
    with pytest.raises(SpecError, match=r"spec.endpoints\[0\]"):
        parse_registry({"metadata": {"name": "r"}, "spec": {"endpoints": ["unix:///x"]}})
    with pytest.raises(SpecError, match=r"spec\.dialTimeout"):
        parse_registry({"metadata": {"name": "r"},
                        "spec": {"endpoints": ["a:1"], "dialTimeout": "100000h"}})


# --- ownership and ranges ---------------------------------------------------------------

def test_first_claimer_owns_and_the_record_outlives_a_rolling_update() -> None:
    a = Claim("2026-01-01T00:00:00Z", "namespace/team-a")
    b = Claim("2026-01-02T00:00:00Z", "namespace/team-b")
    assert decide_owner([b, a], None) == "namespace/team-a"
    # team-a's pods were all replaced: younger than team-b's, yet team-a keeps the name
    a_new = Claim("2026-01-03T00:00:00Z", "namespace/team-a")
    assert decide_owner([b, a_new], "namespace/team-a") == "namespace/team-a"
    # team-a gone: within the grace it keeps the name, then the next claimer gets it
    assert decide_owner([b], "namespace/team-a", recorded_absent_for=10, grace=300) \
        == "namespace/team-a"
    assert decide_owner([b], "namespace/team-a", recorded_absent_for=301, grace=300) \
        == "namespace/team-b"
    assert decide_owner([], None) is None


def test_ranges_that_nest_and_the_one_that_stays() -> None:
    outer, inner = "kitex/registry-etcd/payment/", "kitex/registry-etcd/payment/x/"
    assert ranges_nest(outer, inner) and ranges_nest(inner, outer)
    assert not ranges_nest("kitex/registry-etcd/echo/", "kitex/registry-etcd/echo2/")
    recorded = RangeClaim(True, "2026-02-01T00:00:00Z", outer)
    newcomer = RangeClaim(False, "2026-01-01T00:00:00Z", inner)  # older object, not recorded
    assert nesting_winner(newcomer, [recorded]) == recorded
    assert nesting_winner(recorded, [newcomer]) is None


def test_one_range_claimed_by_two_bindings_is_refused_to_the_second() -> None:
    """team-b's Hertz ``kitex`` + ``registry-etcd/payment`` is team-a's Kitex ``payment``
    range: ownership, decided per binding, gave each an owner of its own."""
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", "10.0.0.1", ns="team-a", annotations=ANNOTATED_PAYMENT,
                                  created="2026-01-01T00:00:00Z")))
    body = kitexservice("evil", ns="team-b", created="2026-02-01T00:00:00Z", framework="hertz",
                        serviceName="registry-etcd/payment", port=8888, weight=2147483647,
                        etcd={"prefix": "kitex"}, selector={"matchLabels": {"app": "evil"}})
    state.upsert_spec(("team-b", "evil"), parse_kitexservice(body), body["spec"]["selector"],
                      "2026-02-01T00:00:00Z")
    state.upsert_pod(pod_view(pod("b", "10.9.9.9", ns="team-b", labels={"app": "evil"},
                                  created="2026-02-01T00:00:00Z")))
    evil = Binding("default", "kitex", "registry-etcd/payment")
    assert evil.range == PAYMENT.range and state.bindings() == {PAYMENT, evil}
    assert ranges_nest(evil.range, PAYMENT.range)
    assert state.nesting(PAYMENT) == [evil] and state.nesting(evil) == [PAYMENT]
    first = RangeClaim(False, "2026-01-01T00:00:00Z", PAYMENT.range)
    second = RangeClaim(False, "2026-02-01T00:00:00Z", evil.range)
    assert nesting_winner(second, [first]) == first
    assert nesting_winner(first, [second]) is None
    recorded = RangeClaim(True, "2026-03-01T00:00:00Z", PAYMENT.range)
    assert nesting_winner(second, [recorded]) == recorded
    # Claimed in the same second, neither recorded: no order is fair, neither writes.
    twin = RangeClaim(False, "2026-01-01T00:00:00Z", evil.range)
    assert nesting_winner(first, [twin]) == twin and nesting_winner(twin, [first]) == first


def test_endpoints_are_checked_and_reduced_to_one_identity() -> None:
    for bad in ("unix:///x", "https://", "dns:///etcd:2379", "a b:1", "etcd", "etcd:99999",
                "user@etcd:2379", "etcd:2379/path", "[zz::1]:2379"):
        with pytest.raises(InvalidEndpoint):
            check_endpoint(bad)
    for good in ("etcd:2379", "http://etcd.infra:2379", "https://10.0.0.1:2379/",
                 "[fd00::1]:2379"):
        assert check_endpoint(good) == good
    assert identity(["b:2379", "http://A:2379"]) == identity(["a:2379", "https://b:2379/"])
    assert identity(["[fd00:0::1]:2379"]) == "[fd00::1]:2379"


# --- desired state: per namespace, refused, status of one's own -------------------------

def test_pods_of_two_namespaces_are_kept_apart() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", "10.0.0.1", ns="team-a", annotations=ANNOTATED_PAYMENT,
                                  created="2026-01-01T00:00:00Z")))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", ns="team-b", annotations=ANNOTATED_PAYMENT,
                                  created="2026-01-02T00:00:00Z")))
    assert sorted(c.group for c in state.claims(PAYMENT)) == ["namespace/team-a",
                                                               "namespace/team-b"]
    assert list(state.view(PAYMENT, state.namespaces_of(PAYMENT, "namespace/team-a"))) == [
        "kitex/registry-etcd/payment/10.0.0.1:8888"]
    state.remove_pod("a")
    assert [c.group for c in state.claims(PAYMENT)] == ["namespace/team-b"]


def test_settings_come_from_the_owners_oldest_kitexservice_only() -> None:
    state = DesiredState()
    mine = kitexservice("payment", ns="team-a", port=8888, leaseTTL=30,
                        created="2026-01-01T00:00:00Z")
    theirs = kitexservice("payment", ns="team-b", port=8888, leaseTTL=3600,
                          created="2026-01-02T00:00:00Z")
    for body in (mine, theirs):
        meta = body["metadata"]
        state.upsert_spec((meta["namespace"], meta["name"]), parse_kitexservice(body),
                          body["spec"]["selector"], meta["creationTimestamp"])
    config = state.config_for(PAYMENT, "namespace/team-a")
    assert config is not None and config.ttl == 30
    state.remove_spec(("team-a", "payment"))
    assert state.config_for(PAYMENT, "namespace/team-a") is None


def test_a_refused_kitexservice_contributes_nothing_and_says_why() -> None:
    state = DesiredState(policies=PolicySet([parse_policy(policy(
        "teams", serviceNames=["{namespace}.*"]))]))
    state.set_namespaces({"team-b": {}})
    body = kitexservice("payment", ns="team-b", port=8888)
    state.upsert_spec(("team-b", "payment"), parse_kitexservice(body), body["spec"]["selector"])
    state.upsert_pod(pod_view(pod("b", ns="team-b", labels={"app": "echo"})))
    error = state.spec_errors[("team-b", "payment")]
    assert isinstance(error, PolicyError) and error.field == "spec.serviceName"
    assert state.bindings() == set()
    # the admin renames nothing, but grants it: admitted at once
    state.set_tenancy(PolicySet([parse_policy(policy("teams", serviceNames=["*"]))]))
    assert ("team-b", "payment") not in state.spec_errors
    assert state.instance_count(PAYMENT) == 1


def test_a_refused_annotation_is_a_pod_error_naming_the_annotation() -> None:
    state = DesiredState(policies=PolicySet([parse_policy(policy("p", maxWeight=100))]))
    state.set_namespaces({"default": {}})
    state.upsert_pod(pod_view(pod("a", annotations={**ANNOTATED,
                                                    "kitex.cloudwego.io/weight": "1000"})))
    source, error = state.pod_errors["a"]
    assert source == Source("annotations", "default")
    assert isinstance(error, PolicyError)
    assert error.field == "metadata.annotations[kitex.cloudwego.io/weight]"


def test_endpoints_that_alias_the_default_etcd_are_refused() -> None:
    state = DesiredState()
    body = kitexservice("svc", port=1, etcd={"endpoints": ["http://127.0.0.1:2379/"]})
    with pytest.raises(SpecError, match="reach registry default"):
        state.binding_of(parse_kitexservice(body), "default")


def test_status_counts_only_the_objects_own_instances() -> None:
    state = DesiredState()
    for ns, created in (("team-a", "2026-01-01T00:00:00Z"), ("team-b", "2026-01-02T00:00:00Z")):
        body = kitexservice("payment", ns=ns, port=8888, created=created)
        state.upsert_spec((ns, "payment"), parse_kitexservice(body), body["spec"]["selector"],
                          created)
    state.upsert_pod(pod_view(pod("a", "10.0.0.1", ns="team-a", labels={"app": "echo"})))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", ns="team-b", labels={"app": "echo"})))
    assert state.source_keys(Source("KitexService", "team-a", "payment")) == [
        (PAYMENT, "kitex/registry-etcd/payment/10.0.0.1:8888")]


def test_huge_tags_are_an_error_of_that_object_only() -> None:
    state = DesiredState()
    big = kitexservice("svc", port=8888, tags={f"k{i}": "v" * 1000 for i in range(8)})
    spec = parse_kitexservice(big)
    state.upsert_spec(("default", "svc"), spec, big["spec"]["selector"])
    state.upsert_pod(pod_view(pod("a", labels={"app": "echo"}, annotations=ANNOTATED)))
    _, error = state.pod_errors["a"]
    assert error.field == "spec.tags" and str(MAX_VALUE_BYTES) in error.message
    assert state.instance_count(Binding("default", "kitex/registry-etcd", "echo")) == 1


def test_transactions_are_bounded_by_bytes_as_well_as_ops() -> None:
    value = b"x" * 100_000
    ops: list[Put | Delete] = [Put(f"k/{i}", value, 1) for i in range(30)]
    sizes = [len(batch) for batch in batches(ops)]
    assert sum(sizes) == 30 and max(sizes) <= 10
    small: list[Put | Delete] = [Delete(f"k/{i}", 1) for i in range(300)]
    assert [len(b) for b in batches(small)] == [128, 128, 44]


def test_an_invalid_policy_never_opens_the_single_team_default() -> None:
    policies = PolicySet([], enforcing=True)
    assert isinstance(policies.admit(request(), {}), Refused)


def test_a_shared_grant_wins_over_a_namespace_grant() -> None:
    alone = parse_policy(policy("a-alone", serviceNames=["payment"]))
    shared = parse_policy(policy("z-shared", sharedServiceNames=["payment"]))
    verdict = PolicySet([alone, shared]).admit(request(), {})
    assert isinstance(verdict, Admitted) and verdict.group == "policy/z-shared"
