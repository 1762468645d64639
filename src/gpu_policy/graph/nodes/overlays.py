"""Karpenter NodeOverlays (karpenter.sh/v1alpha1): extended-resource capacity Karpenter assumes for an instance
type before it launches one.

kubernetes-sigs/karpenter pkg/apis/v1alpha1/nodeoverlay.go and pkg/controllers/nodeoverlay/store.go: an overlay
applies to the instance types whose requirements are compatible with its `requirements`; overlays are applied in
descending `weight` (absent = 0) and the first one that sets a resource wins (`updateInstanceTypeCapacity`);
`ApplyCapacityOverlay` merges its `capacity` over the type's, replacing e.g. `nvidia.com/gpu` — which is how GPU
time-slicing (4 pods per GPU) is told to Karpenter. cpu, memory, ephemeral-storage and pods cannot be overlaid (CRD
validation). An overlay that may apply (its requirements can hold on the shape) is taken to apply: the rules that
use this only grow what a node offers, so a finding stays certain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from gpu_policy.graph.nodes.labels import canonical_key, narrow
from gpu_policy.graph.nodes.shapes import NodeShape
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.loading.document import Document

NODEOVERLAY_API = "karpenter.sh/v1alpha1"


@dataclass(frozen=True)
class NodeOverlay:
    doc: Document
    weight: int
    requirements: tuple[tuple[str, str, tuple[str, ...]], ...]
    capacity: dict[str, Decimal]

    def may_apply(self, shape: NodeShape) -> bool:
        for key, operator, values in self.requirements:
            state = shape.state(canonical_key(key))
            if narrow(state, operator, list(values)) is None:
                return False
        return True


def parse_overlay(doc: Document) -> NodeOverlay:
    raw_weight = doc.spec.get("weight")
    weight = raw_weight if isinstance(raw_weight, int) and not isinstance(raw_weight, bool) else 0
    requirements = []
    for raw in doc.spec.get("requirements") or []:
        if isinstance(raw, Mapping) and isinstance(raw.get("key"), str):
            values = raw.get("values")
            requirements.append((str(raw["key"]), str(raw.get("operator") or ""),
                                 tuple(str(v) for v in values) if isinstance(values, list) else ()))
    capacity: dict[str, Decimal] = {}
    raw_capacity = doc.spec.get("capacity")
    for name, value in (raw_capacity.items() if isinstance(raw_capacity, Mapping) else ()):
        quantity = parse_quantity(value)
        if quantity is not None:
            capacity[str(name)] = quantity
    return NodeOverlay(doc, weight, tuple(requirements), capacity)


def is_nodeoverlay(doc: Document) -> bool:
    return doc.kind == "NodeOverlay" and doc.api_version == NODEOVERLAY_API


def overlaid_capacity(overlays: list[NodeOverlay], shape: NodeShape, resource: str) -> tuple[Decimal, str] | None:
    """The capacity of `resource` the highest-weight overlay that may apply to `shape` sets, and its name."""
    for overlay in sorted(overlays, key=lambda o: (-o.weight, o.doc.name)):
        if resource in overlay.capacity and overlay.may_apply(shape):
            return overlay.capacity[resource], overlay.doc.name
    return None
