"""Kubernetes label selectors (metav1.LabelSelector and plain maps), evaluated as the API machinery does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def match_expression(labels: Mapping[str, Any], expr: Mapping[str, Any]) -> bool:
    key = str(expr.get("key") or "")
    operator = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    value = str(labels[key]) if present else None
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    return False  # unknown operators select nothing (the API server rejects them)


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A LabelSelector: matchLabels AND every matchExpression. An empty selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if str(labels.get(key)) != str(value) or key not in labels:
            return False
    return all(match_expression(labels, e) for e in selector.get("matchExpressions") or [])


def matches_map(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A plain `map[string]string` selector (Service.spec.selector, nodeSelector)."""
    return all(key in labels and str(labels[key]) == str(value) for key, value in (selector or {}).items())
