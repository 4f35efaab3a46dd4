"""Validating a ``metav1.LabelSelector`` as the API server does (matching: ``labels``).

An empty selector matches every pod, as in Kubernetes (``matchLabels: {}``
selects all); the KitexService parser refuses an empty one, so that a
forgotten selector never publishes every pod of a namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..labels import LABEL_KEY, OPERATORS
from .errors import SpecError


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
