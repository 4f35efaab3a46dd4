"""``metav1.LabelSelector`` semantics, as ``kubectl get -l`` and Services apply them.

An empty selector matches every pod, as in Kubernetes (``matchLabels: {}``
selects all); the KitexService parser refuses an empty one, so that a
forgotten selector never publishes every pod of a namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import SpecError

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# A label key as the API server validates it on pods: [DNS-subdomain/]name (fullmatch).
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether labels satisfy every term of the selector.

    ``NotIn`` and ``DoesNotExist`` match a pod without the label, as in
    Kubernetes. A term this function cannot read (an unknown operator, a
    non-list ``values``) matches nothing: a selector that ``validate_selector``
    would refuse must never widen what is published.
    """
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return False
    for term in expressions:
        if not isinstance(term, Mapping):
            return False
        key, operator = term.get("key"), term.get("operator")
        values = term.get("values") or []
        if not isinstance(key, str) or not isinstance(values, list):
            return False
        if operator == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif operator == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif operator == "Exists":
            if key not in labels:
                return False
        elif operator == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False
    return True


def validate_selector(selector: Any, field: str = "spec.selector", *,
                      allow_empty: bool = False) -> None:
    """Refuse what the API server would refuse for a Deployment's selector.

    ``In``/``NotIn`` need at least one value, ``Exists``/``DoesNotExist``
    none; the CRD schema says the same, but the parser must not depend on the
    CRD being installed at the right version.
    """
    if not isinstance(selector, Mapping):
        raise SpecError(field, "must be an object with matchLabels and/or matchExpressions")
    match_labels = selector.get("matchLabels")
    if match_labels is None:
        match_labels = {}
    if not isinstance(match_labels, Mapping):
        raise SpecError(f"{field}.matchLabels", "must be a map of label keys to values")
    for key, value in match_labels.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise SpecError(f"{field}.matchLabels", f"{key!r} is not a label key: no pod can "
                                                    "carry it")
        if not isinstance(value, str):
            raise SpecError(f"{field}.matchLabels[{key}]", "label value must be a string")
    expressions = selector.get("matchExpressions")
    if expressions is None:
        expressions = []
    if not isinstance(expressions, list):
        raise SpecError(f"{field}.matchExpressions", "must be a list")
    for index, term in enumerate(expressions):
        at = f"{field}.matchExpressions[{index}]"
        if not isinstance(term, Mapping):
            raise SpecError(at, "must be an object with key, operator and values")
        key, operator, values = term.get("key"), term.get("operator"), term.get("values")
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise SpecError(f"{at}.key", f"{key!r} is not a label key")
        if operator not in OPERATORS:
            raise SpecError(f"{at}.operator",
                            f"{operator!r} is not one of {', '.join(OPERATORS)}")
        if values is None:
            values = []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SpecError(f"{at}.values", "must be a list of strings")
        if operator in ("In", "NotIn") and not values:
            raise SpecError(f"{at}.values", f"operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise SpecError(f"{at}.values", f"operator {operator} takes no values")
    if not allow_empty and not match_labels and not expressions:
        raise SpecError(field, "must not be empty: an empty selector would publish every pod "
                               "of the namespace")
