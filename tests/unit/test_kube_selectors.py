"""LabelSelector semantics, checked against what kubectl -l would select."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.kube.errors import SpecError
from kitex_etcd_operator.kube.selectors import validate_selector
from kitex_etcd_operator.labels import matches

LABELS = {"app": "echo", "tier": "backend"}


@pytest.mark.parametrize(("selector", "expected"), [
    ({}, True),
    ({"matchLabels": {}}, True),
    ({"matchLabels": {"app": "echo"}}, True),
    ({"matchLabels": {"app": "echo", "tier": "backend"}}, True),
    ({"matchLabels": {"app": "other"}}, False),
    ({"matchLabels": {"missing": ""}}, False),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["echo", "x"]}]}, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["echo"]}]}, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}, True),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"app": "echo"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]}, False),
    # Unreadable terms select nothing rather than everything.
    ({"matchExpressions": [{"key": "app", "operator": "Bogus", "values": ["echo"]}]}, False),
    ({"matchExpressions": "app"}, False),
    ({"matchLabels": ["app"]}, False),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": "echo"}]}, False),
    ({"matchExpressions": [42]}, False),
])
def test_matches(selector: dict[str, Any], expected: bool) -> None:
    assert matches(selector, LABELS) is expected


@pytest.mark.parametrize(("selector", "field"), [
    ("app=echo", "spec.selector"),
    ({}, "spec.selector"),
    ({"matchLabels": {}, "matchExpressions": []}, "spec.selector"),
    ({"matchLabels": ["app"]}, "spec.selector.matchLabels"),
    ({"matchLabels": {"app": 1}}, "spec.selector.matchLabels[app]"),
    ({"matchLabels": {"": "x"}}, "spec.selector.matchLabels"),
    ({"matchExpressions": {}}, "spec.selector.matchExpressions"),
    ({"matchExpressions": ["x"]}, "spec.selector.matchExpressions[0]"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "spec.selector.matchExpressions[0].key"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"},
                           {"key": "b", "operator": "Equals"}]},
     "spec.selector.matchExpressions[1].operator"),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     "spec.selector.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
     "spec.selector.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]},
     "spec.selector.matchExpressions[0].values"),
])
def test_invalid_selectors_name_their_field(selector: Any, field: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_selector(selector)
    assert info.value.field == field


def test_empty_selector_allowed_on_request() -> None:
    validate_selector({}, allow_empty=True)


_keys = st.sampled_from(["app", "tier", "zone"])
_values = st.sampled_from(["echo", "backend", "a", ""])
_terms = st.one_of(
    st.builds(lambda k, op, vs: {"key": k, "operator": op, "values": vs},
              _keys, st.sampled_from(["In", "NotIn"]), st.lists(_values, min_size=1, max_size=3)),
    st.builds(lambda k, op: {"key": k, "operator": op},
              _keys, st.sampled_from(["Exists", "DoesNotExist"])))


@given(st.dictionaries(_keys, _values, max_size=3), st.lists(_terms, max_size=3),
       st.dictionaries(_keys, _values, max_size=3))
def test_selector_is_the_conjunction_of_its_terms(match_labels: dict[str, str],
                                                 terms: list[dict[str, Any]],
                                                 labels: dict[str, str]) -> None:
    """A selector matches iff each of its single-term selectors does (the Kubernetes AND)."""
    selector = {"matchLabels": match_labels, "matchExpressions": terms}
    validate_selector(selector, allow_empty=True)
    parts: list[dict[str, Any]] = [{"matchLabels": {k: v}} for k, v in match_labels.items()]
    parts += [{"matchExpressions": [t]} for t in terms]
    assert matches(selector, labels) == all(matches(p, labels) for p in parts)
    for term in terms:  # NotIn/DoesNotExist are the complements of In/Exists
        flipped = {"In": "NotIn", "NotIn": "In", "Exists": "DoesNotExist",
                   "DoesNotExist": "Exists"}[term["operator"]]
        assert matches({"matchExpressions": [term]}, labels) != matches(
            {"matchExpressions": [{**term, "operator": flipped}]}, labels)
