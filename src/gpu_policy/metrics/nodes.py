"""What the nodes of a Karpenter NodePool look like: their taints and the labels they are sure to carry.

Karpenter labels a node with the NodePool's `template.metadata.labels`, the single value it picked for every
requirement, `karpenter.sh/nodepool`, and the well-known labels of the instance type it launched
(kubernetes-sigs/karpenter pkg/apis/v1/labels.go; aws/karpenter-provider-aws pkg/apis/v1/labels.go and
pkg/providers/instancetype/types.go `computeRequirements`: instance-family, instance-size,
instance-gpu-name (lower
case, e.g. "t4"), instance-gpu-manufacturer ("nvidia"), instance-gpu-count, instance-gpu-memory (MiB);
asserted in
test/suites/scheduling/suite_test.go "should support well-known labels for a gpu (nvidia)").
Karpenter does NOT set `nvidia.com/gpu.present`: NVIDIA GPU Feature Discovery does (policy flag
`gpuFeatureDiscovery.installed` in policies/cluster.yaml).

A node "shape" is one allowed instance type of a pool: per label key either the set of values the node
may carry
(Karpenter picks one), or "present, value unknown". A selector holds for the pool only if it holds for
every value
of every shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpu_policy.loading.document import Document
from gpu_policy.policy.loader import PolicySet

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
GPU_COUNT = "karpenter.k8s.aws/instance-gpu-count"
GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
GPU_MANUFACTURER = "karpenter.k8s.aws/instance-gpu-manufacturer"
GPU_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
GFD_LABEL = "nvidia.com/gpu.present"
GPU_RESOURCE = "nvidia.com/gpu"
# Labels every Karpenter node carries whatever the requirements say (kubelet / Karpenter well-known labels).
ALWAYS_PRESENT = (
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "kubernetes.io/hostname",
    "karpenter.sh/capacity-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    INSTANCE_TYPE,
    "karpenter.k8s.aws/instance-family",
    "karpenter.k8s.aws/instance-size",
    "karpenter.k8s.aws/instance-category",
    "karpenter.k8s.aws/instance-generation",
    "karpenter.k8s.aws/instance-cpu",
    "karpenter.k8s.aws/instance-memory",
)
GPU_LABELS = (GPU_COUNT, GPU_NAME, GPU_MANUFACTURER, GPU_MEMORY)
# GPU models sold by NVIDIA among EC2 instance types (AWS accelerated-computing specs); anything else:
# unknown.
NVIDIA_MODELS = frozenset(
    {"a100", "h100", "h200", "b200", "a10g", "l4", "l40s", "t4", "t4g", "v100", "k80", "m60"}
)


@dataclass
class NodeShape:
    pool: Document
    instance_type: str | None
    values: dict[str, frozenset[str]] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)

    def describe(self) -> str:
        return f"NodePool {self.pool.name}" + (f" ({self.instance_type})" if self.instance_type else "")


def _requirements(pool: Document) -> list[Mapping[str, Any]]:
    reqs = pool.get(("spec", "template", "spec", "requirements")) or []
    return [r for r in reqs if isinstance(r, Mapping)]


def taints(pool: Document) -> list[Mapping[str, Any]]:
    return [t for t in pool.get(("spec", "template", "spec", "taints")) or [] if isinstance(t, Mapping)]


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def is_gpu_pool(pool: Document, policy: PolicySet) -> bool:
    if any(t.get("key") == GPU_RESOURCE for t in taints(pool)):
        return True
    for req in _requirements(pool):
        key, op, values = req.get("key"), req.get("operator"), [str(v) for v in req.get("values") or []]
        if key == GPU_COUNT and (
            op == "Exists"
            or (op == "Gt" and values and (_int(values[0]) or 0) >= 0)
            or (op == "In" and any((_int(v) or 0) > 0 for v in values))
        ):
            return True
        if key in (GPU_NAME, GPU_MANUFACTURER) and op in ("In", "Exists"):
            return True
        if key == INSTANCE_TYPE and op == "In" and any(
            (policy.instance(v) or {}).get("gpuCount", 0) > 0 for v in values
        ):
            return True
    return False


def _derived(instance_type: str, policy: PolicySet) -> dict[str, str]:
    labels = {INSTANCE_TYPE: instance_type}
    family, _, size = instance_type.partition(".")
    if size:
        labels["karpenter.k8s.aws/instance-family"] = family
        labels["karpenter.k8s.aws/instance-size"] = size
    facts = policy.instance(instance_type) or {}
    if facts.get("gpuCount"):
        labels[GPU_COUNT] = str(facts["gpuCount"])
        model = str(facts.get("gpuModel", "")).lower()
        if model:
            labels[GPU_NAME] = model.replace(" ", "-")
            if model in NVIDIA_MODELS:
                labels[GPU_MANUFACTURER] = "nvidia"
        if facts.get("gpuMemoryGiB"):
            labels[GPU_MEMORY] = str(int(facts["gpuMemoryGiB"]) * 1024)
    return labels


def _numeric_ok(op: str, have: str, want: list[str]) -> bool:
    h, w = _int(have), _int(want[0]) if want else None
    if h is None or w is None:
        return False
    return h > w if op == "Gt" else h < w


def shapes(pool: Document, policy: PolicySet) -> list[NodeShape]:
    """One shape per allowed instance type (a single shape of unknown type when the pool does not list
    types)."""
    reqs = _requirements(pool)
    allowed: dict[str, frozenset[str]] = {}
    excluded: dict[str, set[str]] = {}
    for req in reqs:
        key, op = str(req.get("key", "")), req.get("operator")
        values = frozenset(str(v) for v in req.get("values") or [])
        if op == "In":
            allowed[key] = allowed[key] & values if key in allowed else values
        elif op == "NotIn":
            excluded.setdefault(key, set()).update(values)
    types: list[str | None] = [None]
    if INSTANCE_TYPE in allowed:
        types = [*sorted(allowed[INSTANCE_TYPE] - excluded.get(INSTANCE_TYPE, set()))]
    gpu_pool = is_gpu_pool(pool, policy)
    gfd = bool((policy.cluster.get("gpuFeatureDiscovery") or {}).get("installed", False))
    out: list[NodeShape] = []
    for instance_type in types:
        shape = NodeShape(pool, instance_type)
        shape.present.update(ALWAYS_PRESENT)
        if gpu_pool:
            shape.present.update(GPU_LABELS)
            if gfd:
                shape.values[GFD_LABEL] = frozenset({"true"})
        derived = _derived(instance_type, policy) if instance_type else {}
        launchable = True
        for key, value in derived.items():
            if (key in allowed and value not in allowed[key]) or value in excluded.get(key, set()):
                launchable = False
            shape.values[key] = frozenset({value})
        for req in reqs:
            key, op = str(req.get("key", "")), req.get("operator")
            if (
                op in ("Gt", "Lt")
                and key in derived
                and not _numeric_ok(str(op), derived[key], [str(v) for v in req.get("values") or []])
            ):
                launchable = False
        if not launchable:
            continue  # Karpenter never launches this type for this pool
        for key, values in allowed.items():
            if key not in shape.values:
                shape.values[key] = frozenset(values - excluded.get(key, set()))
        for req in reqs:
            if req.get("operator") in ("Exists", "Gt", "Lt"):
                shape.present.add(str(req.get("key", "")))
        shape.values["karpenter.sh/nodepool"] = frozenset({pool.name})
        for key, value in (pool.get(("spec", "template", "metadata", "labels")) or {}).items():
            shape.values[str(key)] = frozenset({str(value)})
        out.append(shape)
    return out


def requirement_failure(shape: NodeShape, key: str, op: str, values: list[str]) -> str | None:
    """Why `key op values` may not hold on a node of this shape; None when it holds on every such node."""
    known = shape.values.get(key)
    present = known is not None or key in shape.present
    shown = ", ".join(sorted(known)) if known else ""
    if op == "In":
        if known is not None:
            outside = sorted(known - set(values))
            return None if not outside else f"{key} may be {', '.join(outside)} (not in {values})"
        if present:
            return (
                f"{key} is set on these nodes but its value is not fixed by the NodePool "
                f"(wanted one of {values})"
            )
        return f"these nodes do not carry the label {key}"
    if op == "NotIn":
        if known is not None:
            inside = sorted(known & set(values))
            return None if not inside else f"{key} may be {', '.join(inside)} (NotIn {values})"
        if present:
            return f"{key} is set on these nodes but its value is not fixed by the NodePool (NotIn {values})"
        return None
    if op == "Exists":
        return None if present else f"these nodes do not carry the label {key}"
    if op == "DoesNotExist":
        return f"these nodes carry the label {key}" + (f" ({shown})" if shown else "") if present else None
    if op in ("Gt", "Lt"):
        if known is None:
            return f"{key} is not a fixed number on these nodes ({op} {values})"
        bad = sorted(v for v in known if not _numeric_ok(op, v, values))
        return None if not bad else f"{key} may be {', '.join(bad)} (not {op} {values})"
    return f"unknown operator {op!r} for {key}"
