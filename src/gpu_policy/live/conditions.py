"""Reading `status.conditions` of live objects (metav1.Condition and the older KEDA/HPA shapes alike)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpu_policy.graph.quantities import parse_quantity


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`type` -> condition, from `status.conditions` (entries without a type are ignored)."""
    status = obj.get("status")
    items = status.get("conditions") if isinstance(status, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            out[item["type"]] = item
    return out


def status_of(obj: dict[str, Any], kind: str) -> str:
    """`True`, `False`, `Unknown`, or `absent` when the object has no such condition."""
    found = conditions(obj).get(kind)
    return str(found.get("status", "Unknown")) if found is not None else "absent"


def explain(condition: dict[str, Any] | None) -> str:
    """`reason: message` of a condition, or what its absence means."""
    if condition is None:
        return "the condition is not set"
    parts = [str(condition.get(k)) for k in ("reason", "message") if condition.get(k)]
    return ": ".join(parts) if parts else f"status {condition.get('status', 'Unknown')}"


def age(timestamp: Any, now: dt.datetime) -> dt.timedelta | None:
    """How long ago an RFC 3339 timestamp (`2026-01-01T00:00:00Z`) was; None when unreadable."""
    if not isinstance(timestamp, str):
        return None
    try:
        when = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return now - when


def deleting(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))


def gpu_capacity(node: dict[str, Any], resource: str = "nvidia.com/gpu") -> float:
    status = node.get("status")
    capacity = status.get("capacity") if isinstance(status, dict) else None
    value = capacity.get(resource) if isinstance(capacity, dict) else None
    parsed = parse_quantity(value) if value is not None else None
    return float(parsed) if parsed is not None else 0.0
