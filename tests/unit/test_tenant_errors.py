"""Pod errors by pod and by source, and a version that moves only on news.

Every write cycle asks whether a pod error is new; a pod whose churn
recomputes the same error must not make every cycle walk every error again.
"""

from __future__ import annotations

from kitex_etcd_operator.desired import ANNOTATIONS, KITEXSERVICE, DesiredState, Source
from kitex_etcd_operator.kube import parse_kitexservice, pod_view
from kitex_etcd_operator.tenant_errors import PodErrors, Versioned
from tests.support.factories import ANNOTATED, kitexservice, pod

HEAVY = {**ANNOTATED, "kitex.cloudwego.io/weight": "heavy"}


def test_the_version_moves_when_an_error_comes_changes_or_goes() -> None:
    errors: PodErrors[str, str] = PodErrors()
    errors.put("a", ("svc", "bad port"))
    assert errors.version == 1 and dict(errors.of("svc")) == {"a": "bad port"}
    errors.put("a", ("svc", "bad port"))  # the same again: no news
    assert errors.version == 1
    errors.put("a", ("svc", "bad weight"))
    assert errors.version == 2
    errors.put("a", ("other", "bad weight"))  # another source
    assert errors.version == 3 and not errors.of("svc") and "a" in errors.of("other")
    errors.put("a", None)
    errors.put("b", None)  # a pod with no error had none: no news
    assert errors.version == 4 and not errors and not errors.of("other")


def test_a_bad_pod_recomputed_keeps_its_error_and_the_version() -> None:
    state = DesiredState()
    state.upsert_pod(pod_view(pod("a", annotations=HEAVY)))
    version = state.pod_errors.version
    source, error = state.pod_errors["a"]
    assert source == Source(ANNOTATIONS, "default") and "weight" in error.field
    state.upsert_pod(pod_view(pod("a", annotations=HEAVY, ready=False)))  # churn
    assert state.pod_errors.version == version
    state.upsert_pod(pod_view(pod("a", annotations=ANNOTATED)))  # fixed
    assert "a" not in state.pod_errors and state.pod_errors.version == version + 1
    state.upsert_pod(pod_view(pod("a", annotations=HEAVY)))
    state.remove_pod("a")
    assert not state.pod_errors and state.pod_errors.version == version + 3


def test_errors_are_found_by_the_kitexservice_that_selected_the_pods() -> None:
    state = DesiredState()
    body = kitexservice("svc", port="nope")
    state.upsert_spec(("default", "svc"), parse_kitexservice(body), body["spec"]["selector"])
    state.upsert_pod(pod_view(pod("a", labels={"app": "echo"})))
    state.upsert_pod(pod_view(pod("b", "10.0.0.2", annotations=HEAVY)))
    mine = state.pod_errors.of(Source(KITEXSERVICE, "default", "svc"))
    assert list(mine) == ["a"] and "nope" in str(mine["a"])
    assert list(state.pod_errors.of(Source(ANNOTATIONS, "default"))) == ["b"]


def test_a_services_error_moves_the_version_only_when_it_changes() -> None:
    errors: Versioned[tuple[str, str], str] = Versioned()
    assert errors.put(("ns", "svc"), "no such port") is None and errors.version == 1
    assert errors.put(("ns", "svc"), "no such port") == "no such port"
    assert errors.version == 1
    errors.put(("ns", "svc"), None)
    errors.put(("ns", "other"), None)
    assert errors.version == 2 and not errors


def test_a_source_keeps_its_version_while_another_sources_errors_change() -> None:
    errors: PodErrors[str, str] = PodErrors()
    errors.put("a", ("team-a", "bad port"))
    mine = errors.version_of("team-a")
    for i in range(3):
        errors.put(f"b{i}", ("team-b", "bad weight"))
    theirs = errors.version_of("team-b")
    errors.put("b0", None)
    assert errors.version_of("team-a") == mine
    assert errors.version_of("team-b") not in (0, theirs)
    theirs = errors.version_of("team-b")
    errors.put("a", ("team-b", "bad port"))  # moved: both sources changed
    assert errors.version_of("team-a") != mine and errors.version_of("team-b") != theirs


def test_a_source_without_errors_is_not_remembered() -> None:
    """Sources come and go (KitexServices of a tenant's broken pods): one whose errors
    are all gone holds nothing, yet a reader that saw its errors still sees news."""
    errors: PodErrors[str, str] = PodErrors()
    for i in range(100):
        errors.put(f"p{i}", (f"service-{i}", "bad port"))
        seen = errors.version_of(f"service-{i}")
        errors.put(f"p{i}", None)
        assert errors.version_of(f"service-{i}") != seen
    assert not errors._source_versions and not errors
    errors.put("p0", ("service-0", "bad port"))
    assert errors.version_of("service-0") != 0


def test_what_changed_is_taken_once() -> None:
    """The status writer reads only what changed since it last looked."""
    errors: PodErrors[str, str] = PodErrors()
    errors.put("a", ("s", "bad port"))
    errors.put("b", ("s", "bad port"))
    errors.put("b", ("s", "bad port"))  # no news
    assert errors.take_changed() == {"a", "b"} and errors.take_changed() == set()
    errors.put("b", ("s", "bad port"))
    errors.put("a", None)
    assert errors.take_changed() == {"a"}
