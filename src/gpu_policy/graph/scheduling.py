"""Taints, tolerations and node selection, as kube-scheduler evaluates them (k8s.io/api/core/v1 toleration.go)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpu_policy.graph.selectors import match_expression


def toleration_tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """core/v1 Toleration.ToleratesTaint: effect empty matches all effects; empty key with Exists matches all keys."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True  # an empty key with Exists tolerates every taint
    if operator == "Equal":
        return bool(key) and str(toleration.get("value") or "") == str(taint.get("value") or "")
    return False


def tolerates(tolerations: Iterable[Mapping[str, Any]] | None, taint: Mapping[str, Any]) -> bool:
    return any(toleration_tolerates(t, taint) for t in tolerations or [] if isinstance(t, Mapping))


def untolerated(tolerations: Iterable[Mapping[str, Any]] | None, taints: Iterable[Mapping[str, Any]]) -> list[
    Mapping[str, Any]
]:
    """Taints that keep a pod off a node: NoSchedule and NoExecute ones it does not tolerate (PreferNoSchedule
    only lowers the score)."""
    tolerations = list(tolerations or [])
    return [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t)]


def node_selector_term_matches(term: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """One NodeSelectorTerm: all matchExpressions hold (Gt/Lt compare integers)."""
    for expr in term.get("matchExpressions") or []:
        operator = expr.get("operator")
        key = expr.get("key")
        if operator in ("Gt", "Lt"):
            try:
                have = int(str(labels[key]))
                want = int(str((expr.get("values") or [None])[0]))
            except (KeyError, TypeError, ValueError):
                return False
            if (operator == "Gt" and not have > want) or (operator == "Lt" and not have < want):
                return False
        elif not match_expression(labels, expr):
            return False
    return True
