"""``metav1.LabelSelector`` matching, as ``kubectl get -l`` and Services apply it.

Pure and free of any error type: pods, namespaces and admin policies are all
matched with it, from layers that must not import one another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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
