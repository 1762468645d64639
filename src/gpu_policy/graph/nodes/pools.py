"""A Karpenter NodePool as the scheduler sees it: requirements, labels, taints, capacity types, weight, limits.

Field meanings follow kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go and nodeclaim.go: `spec.template.spec
.requirements` (NodeSelectorRequirementWithMinValues), `spec.template.metadata.labels`, `taints` (copied to
every node) and `startupTaints` (removed once the node is initialised, so they never keep pods off),
`spec.weight` (absent = 0), `spec.limits`, `spec.template.spec.nodeClassRef`.

Only `karpenter.sh/v1` NodePools are modelled: v1beta1 / v1alpha5 objects mean other things (a v1beta1
nodeClassRef has no `group`, budgets and consolidation fields differ) and are judged by the removed-API rule alone.
A NodePool whose nodeClassRef has `group: eks.amazonaws.com` (`kind: NodeClass`) runs on EKS Auto Mode
(docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html) and is labelled with Auto Mode's keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gpu_policy.graph.nodes.catalogue import catalogue, instance_facts
from gpu_policy.graph.nodes.labels import (
    CAPACITY_TYPE,
    EKS,
    GPU_COUNT,
    GPU_LABELS,
    GPU_RESOURCE,
    INSTANCE_CATEGORY,
    INSTANCE_FAMILY,
    INSTANCE_TYPE,
    canonical_key,
)
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.policy.loader import PolicySet

TEMPLATE_SPEC: FieldPath = ("spec", "template", "spec")
REQUIREMENTS: FieldPath = (*TEMPLATE_SPEC, "requirements")
TAINTS: FieldPath = (*TEMPLATE_SPEC, "taints")
STARTUP_TAINTS: FieldPath = (*TEMPLATE_SPEC, "startupTaints")
NODECLASS_REF: FieldPath = (*TEMPLATE_SPEC, "nodeClassRef")
TEMPLATE_LABELS: FieldPath = ("spec", "template", "metadata", "labels")
LIMITS: FieldPath = ("spec", "limits")
NODEPOOL_API = "karpenter.sh/v1"
EC2NODECLASS_API = "karpenter.k8s.aws/v1"
AUTO_MODE_GROUP = EKS.rstrip("/")
ALL_CAPACITY_TYPES = frozenset({"on-demand", "spot", "reserved"})
# EC2 categories whose instances carry NVIDIA GPUs (p: accelerated computing, g: graphics/inference).
GPU_CATEGORIES = frozenset({"p", "g"})
_CATEGORY = re.compile(r"^([a-z]+)")


@dataclass(frozen=True)
class Requirement:
    index: int
    key: str
    operator: str
    values: tuple[str, ...]
    min_values: int | None = None
    written_key: str = ""
    """The key as the manifest writes it (`key` is canonical: see labels.canonical_key)."""

    @property
    def path(self) -> FieldPath:
        return (*REQUIREMENTS, self.index)

    def text(self) -> str:
        return f"{self.written_key or self.key} {self.operator} [{','.join(self.values)}]"


@dataclass
class NodePool:
    doc: Document
    requirements: list[Requirement]
    labels: dict[str, str]
    taints: list[dict[str, Any]]
    startup_taints: list[dict[str, Any]]
    capacity_types: frozenset[str]
    instance_types: tuple[str, ...] | None
    """The instance types the `node.kubernetes.io/instance-type` In requirement(s) allow (NotIn removed); None
    when the pool does not bound its types that way."""
    gpu: bool
    weight: int
    limits: dict[str, Decimal] = field(default_factory=dict)
    nodeclass_ref: dict[str, Any] | None = None
    auto_mode: bool = False
    """The pool's nodeClassRef names an EKS Auto Mode NodeClass (group eks.amazonaws.com)."""

    @property
    def name(self) -> str:
        return self.doc.name

    def requirement(self, key: str, operator: str | None = None) -> Requirement | None:
        return next((r for r in self.requirements
                     if r.key == key and (operator is None or r.operator == operator)), None)

    @property
    def spot_capable(self) -> bool:
        return "spot" in self.capacity_types

    @property
    def spot_only(self) -> bool:
        return self.capacity_types == frozenset({"spot"})

    @property
    def offers_on_demand(self) -> bool:
        return "on-demand" in self.capacity_types

    def gpu_taints(self) -> list[tuple[int, dict[str, Any]]]:
        return [(i, t) for i, t in enumerate(self.taints) if t.get("key") == GPU_RESOURCE]


def is_nodepool(doc: Document) -> bool:
    """A karpenter.sh/v1 NodePool (older API versions are left to the removed-API rule)."""
    return doc.kind == "NodePool" and doc.api_version == NODEPOOL_API


def is_ec2nodeclass(doc: Document) -> bool:
    """A karpenter.k8s.aws/v1 EC2NodeClass (older API versions are left to the removed-API rule)."""
    return doc.kind == "EC2NodeClass" and doc.api_version == EC2NODECLASS_API


def is_auto_mode_ref(ref: Any) -> bool:
    return isinstance(ref, Mapping) and ref.get("group") == AUTO_MODE_GROUP


def _requirements(doc: Document, auto_mode: bool = False) -> list[Requirement]:
    out: list[Requirement] = []
    requirements = doc.get(REQUIREMENTS)
    for i, raw in enumerate(requirements if isinstance(requirements, list) else []):
        if isinstance(raw, Mapping) and isinstance(raw.get("key"), str):
            values = raw.get("values")
            values = tuple(str(v) for v in values if v is not None) if isinstance(values, list) else ()
            min_values = raw.get("minValues")
            out.append(Requirement(i, canonical_key(raw["key"], auto_mode), str(raw.get("operator") or ""), values,
                                   min_values if isinstance(min_values, int) else None, written_key=raw["key"]))
    return out


def capacity_types(requirements: list[Requirement]) -> frozenset[str]:
    """Karpenter launches on-demand when a NodePool does not constrain the capacity type
    (https://karpenter.sh/docs/concepts/nodepools/: karpenter.sh/capacity-type "defaults to on-demand";
    aws/karpenter-provider-aws tests 'CapacityType should default to on-demand'); with both allowed it
    prefers spot."""
    found = frozenset(ALL_CAPACITY_TYPES)
    constrained = False
    for req in requirements:
        if req.key != CAPACITY_TYPE:
            continue
        constrained = True
        if req.operator == "In":
            found &= frozenset(req.values)
        elif req.operator == "NotIn":
            found -= frozenset(req.values)
        elif req.operator == "DoesNotExist":
            found = frozenset()
    return found if constrained else frozenset({"on-demand"})


def allowed_instance_types(requirements: list[Requirement]) -> tuple[str, ...] | None:
    allowed: list[str] | None = None
    excluded: set[str] = set()
    for req in requirements:
        if req.key != INSTANCE_TYPE:
            continue
        if req.operator == "In":
            allowed = list(req.values) if allowed is None else [t for t in allowed if t in req.values]
        elif req.operator == "NotIn":
            excluded.update(req.values)
    if allowed is None:
        return None
    return tuple(dict.fromkeys(t for t in allowed if t not in excluded))


def category(instance_type_or_family: str) -> str:
    match = _CATEGORY.match(instance_type_or_family)
    return match.group(1) if match else ""


def _requires_gpus(req: Requirement) -> bool:
    if req.key not in GPU_LABELS:
        return False
    if req.operator == "Exists":
        return True
    if req.key == GPU_COUNT:
        if req.operator in ("Gt", "Gte", "Lt", "Lte"):
            return True  # a bound excludes types without GPUs (they have no gpu-count label; withinBounds)
        if req.operator == "In":
            return any(v.isdigit() and int(v) > 0 for v in req.values)
        return False
    return req.operator == "In"


def is_gpu_pool(limits: Mapping[str, Any], taints: list[dict[str, Any]], requirements: list[Requirement],
                instance_types: tuple[str, ...] | None, policy: PolicySet) -> bool:
    """A pool gives GPUs when its limits, taints or requirements say so, or a type it may launch has GPUs.

    Not a Karpenter concept: the organisation's reading of the pool's intent. Any one signal is enough."""
    if GPU_RESOURCE in limits or any(t.get("key") == GPU_RESOURCE for t in taints):
        return True
    for req in requirements:
        if _requires_gpus(req):
            return True
        if req.operator == "In" and req.key in (INSTANCE_FAMILY, INSTANCE_CATEGORY) and any(
            category(v) in GPU_CATEGORIES or v in catalogue().families() for v in req.values
        ):
            return True
    for name in instance_types or ():
        facts = instance_facts(policy, name)
        if (facts is not None and int(facts.get("gpuCount", 0)) > 0) or category(name) in GPU_CATEGORIES:
            return True
    return False


def _mappings(value: Any) -> list[dict[str, Any]]:
    return [dict(t) for t in value or [] if isinstance(t, Mapping)] if isinstance(value, list) else []


def parse_nodepool(doc: Document, policy: PolicySet) -> NodePool:
    ref = doc.get(NODECLASS_REF)
    auto_mode = is_auto_mode_ref(ref)
    requirements = _requirements(doc, auto_mode)
    instance_types = allowed_instance_types(requirements)
    taints = _mappings(doc.get(TAINTS))
    labels = doc.get(TEMPLATE_LABELS)
    weight = doc.get(("spec", "weight"))
    raw_limits = doc.get(LIMITS)
    raw_limits = raw_limits if isinstance(raw_limits, Mapping) else {}
    limits: dict[str, Decimal] = {}
    for key, value in raw_limits.items():
        quantity = parse_quantity(value)
        if quantity is not None:
            limits[str(key)] = quantity
    return NodePool(
        doc=doc, requirements=requirements,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        taints=taints, startup_taints=_mappings(doc.get(STARTUP_TAINTS)),
        capacity_types=capacity_types(requirements), instance_types=instance_types,
        gpu=is_gpu_pool(raw_limits, taints, requirements, instance_types, policy),
        weight=weight if isinstance(weight, int) and not isinstance(weight, bool) else 0, limits=limits,
        nodeclass_ref=dict(ref) if isinstance(ref, Mapping) else None, auto_mode=auto_mode,
    )
