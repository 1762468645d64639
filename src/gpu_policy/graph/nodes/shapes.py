"""The kinds of node a NodePool can launch: one `NodeShape` per instance type its requirements admit.

A type is a candidate when the pool's `node.kubernetes.io/instance-type` In list names it, or — for a pool
without that bound — when the GPU instance catalogue (gpu_policy.graph.nodes.catalogue; a profile may add types)
describes it; the pool's other requirements then filter it by its labels (Karpenter only launches types whose
requirements are compatible with the pool's: kubernetes-sigs/karpenter
pkg/controllers/provisioning/scheduling/nodeclaim.go `filterInstanceTypesByRequirements`, which asks
`Requirements.Intersects` — pkg/scheduling/requirements.go). A pool without an instance-type list whose
requirements also admit types outside the catalogue (types without GPUs) gets one more, unmodelled shape,
`PoolShapes.others`, standing for them.
A type whose single node exceeds a pool limit can never launch (scheduler.go filterByRemainingResources, which
compares the capacity Karpenter counts — memory less the VM overhead — not the nominal memory).
`minValues` is honoured the same way: when fewer distinct values remain than a requirement's minValues,
Karpenter launches nothing from the pool (nodeclaim.go "minValues requirement is not met").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_policy.graph.nodes.catalogue import catalogue, instance_facts, known_types
from gpu_policy.graph.nodes.labels import (
    ABSENT,
    ANY,
    CAPACITY_TYPE,
    COMPUTE_TYPE,
    GFD_LABEL,
    GPU_LABELS,
    GPU_RESOURCE,
    HOSTNAME,
    INSTANCE_CATEGORY,
    INSTANCE_FAMILY,
    INSTANCE_TYPE,
    NODEPOOL,
    PRESENT_UNPREDICTABLE,
    UNKNOWN,
    UNMODELLED_PREFIX,
    LabelState,
    canonical_key,
    instance_labels,
    is_well_known,
    narrow,
    one_of,
)
from gpu_policy.graph.nodes.pools import GPU_CATEGORIES, NodePool
from gpu_policy.graph.nodes.resources import Allocatable, allocatable, karpenter_capacity, vm_memory_overhead
from gpu_policy.policy.loader import PolicySet


@dataclass
class NodeShape:
    """One kind of node a NodePool can launch: an instance type, its possible labels, taints and room."""

    pool: NodePool
    instance_type: str | None
    """None for the unmodelled shape of an unbounded pool."""
    labels: dict[str, LabelState]
    facts: dict[str, Any] | None
    room: Allocatable | None
    """What pods can request on a fresh node; None when the type has no facts."""
    gfd: bool | None = False
    """NVIDIA GPU Feature Discovery runs on these nodes (cluster.yaml gpuFeatureDiscovery.installed); None when the
    policy in force does not say (the defaults): the label it sets is then not modelled, neither present nor
    absent — the GPU Operator, which installs it, is common, but not universal."""

    @property
    def modelled(self) -> bool:
        return self.room is not None

    @property
    def family(self) -> str:
        return (self.instance_type or "").partition(".")[0]

    @property
    def taints(self) -> list[dict[str, Any]]:
        return self.pool.taints

    def describe(self) -> str:
        return f"NodePool {self.pool.name}" + (f" ({self.instance_type})" if self.instance_type else "")

    def state(self, key: str, running: bool = False) -> LabelState:
        """What `key` may be on a node of this shape. `running`: on the node once it runs (GPU Feature
        Discovery labels included) rather than as Karpenter sees it when deciding to launch."""
        key = canonical_key(key, self.pool.auto_mode)
        if key.startswith(UNMODELLED_PREFIX):
            return UNKNOWN
        if running and key == GFD_LABEL and self.gfd:
            return one_of(["true"])
        if running and key == GFD_LABEL and self.gfd is None and key not in self.labels:
            return UNKNOWN
        found = self.labels.get(key)
        if found is not None:
            return found
        return UNKNOWN if is_well_known(key) else ABSENT


@dataclass
class PoolShapes:
    pool: NodePool
    shapes: list[NodeShape] = field(default_factory=list)
    """One shape per GPU instance type the pool admits (or per type its instance-type list names)."""
    others: NodeShape | None = None
    """The instance types outside the catalogue (types without GPUs) the pool also admits; not modelled."""
    excluded: list[str] = field(default_factory=list)
    """Why instance types fell out (unknown to the GPU instance catalogue, excluded by a requirement, over
    the pool's limits, minValues)."""


def _pool_labels(pool: NodePool) -> tuple[dict[str, LabelState], dict[str, LabelState]]:
    """(labels every node of the pool has, whatever the type; requirement narrowing of other keys)."""
    fixed: dict[str, LabelState] = {key: ANY for key in PRESENT_UNPREDICTABLE}
    fixed[NODEPOOL] = one_of([pool.name])
    fixed[CAPACITY_TYPE] = LabelState("values", pool.capacity_types)
    if pool.auto_mode:
        fixed[COMPUTE_TYPE] = one_of(["auto"])
    for key, value in pool.labels.items():
        fixed[canonical_key(key, pool.auto_mode)] = one_of([value])
    return fixed, {}


def _apply(state: LabelState, operator: str, values: list[str], key: str) -> LabelState | None:
    """A pool requirement narrows what its nodes carry. For a key the pool does not otherwise define,
    Karpenter sets a value satisfying the requirement (Exists/Gt/Lt: some value; DoesNotExist: none)."""
    if state.kind == "absent" and not is_well_known(key) and operator in ("Exists", "Gt", "Lt", "In"):
        state = UNKNOWN
    return narrow(state, operator, values)


def _narrowed(pool: NodePool, labels: dict[str, LabelState]) -> tuple[dict[str, LabelState], str | None]:
    """The labels once the pool's requirements narrow them, or why no node of them satisfies the pool."""
    for req in pool.requirements:
        if req.key == CAPACITY_TYPE or req.key.startswith(UNMODELLED_PREFIX):
            continue  # capacity types are folded into pool.capacity_types; unmodelled keys judge nothing
        current = labels.get(req.key) or (UNKNOWN if is_well_known(req.key) else ABSENT)
        narrowed = _apply(current, req.operator, list(req.values), req.key)
        if narrowed is None:
            return labels, f"excluded by the pool's requirement {req.text()}"
        labels[req.key] = narrowed
    return labels, None


def _others_shape(pool: NodePool, fixed: dict[str, LabelState], gfd: bool | None) -> NodeShape | None:
    """The shape of the types outside the catalogue (no GPUs), or None when the pool's requirements exclude
    them: a GPU requirement, or a family/category bound met only by catalogue (GPU) families."""
    labels: dict[str, LabelState] = {INSTANCE_TYPE: ANY, **{key: ABSENT for key in GPU_LABELS}}
    labels.update({k: v for k, v in fixed.items() if k not in labels})
    labels, rejected = _narrowed(pool, labels)
    if rejected:
        return None
    family, group = labels.get(INSTANCE_FAMILY), labels.get(INSTANCE_CATEGORY)
    if family is not None and family.kind == "values" and family.values <= catalogue().families():
        return None
    if group is not None and group.kind == "values" and group.values <= GPU_CATEGORIES:
        return None  # every current p and g type has GPUs (the catalogue)
    labels.setdefault(HOSTNAME, ANY)
    return NodeShape(pool, None, labels, None, None, gfd)


def pool_shapes(pool: NodePool, policy: PolicySet) -> PoolShapes:
    out = PoolShapes(pool)
    overhead = vm_memory_overhead(policy)
    fixed, _ = _pool_labels(pool)
    discovery = policy.cluster.get("gpuFeatureDiscovery")
    installed = discovery.get("installed") if isinstance(discovery, dict) else None
    gfd: bool | None = None if installed is None else pool.gpu and bool(installed)
    if not pool.gpu:
        gfd = False
    candidates = list(pool.instance_types) if pool.instance_types is not None else known_types(policy)
    if pool.instance_types is None:
        out.others = _others_shape(pool, fixed, gfd)
    for instance_type in candidates:
        facts = instance_facts(policy, instance_type)
        derived = instance_labels(instance_type, facts)
        labels, rejected = _narrowed(pool, {**derived, **{k: v for k, v in fixed.items() if k not in derived}})
        if rejected:
            if pool.instance_types is not None:
                out.excluded.append(f"{instance_type}: {rejected}")
            continue
        if facts is None:
            out.excluded.append(f"{instance_type}: not in the GPU instance catalogue (not modelled)")
            out.shapes.append(NodeShape(pool, instance_type, labels, None, None, gfd))
            continue
        room = allocatable(facts, overhead)
        # Karpenter compares it.Capacity with the remaining limits (scheduler.go filterByRemainingResources),
        # and the AWS provider's memory capacity already has the VM overhead subtracted (instancetype/types.go
        # memory()): nominal memory would reject types Karpenter launches. `nodes` is a separate count, not
        # part of one instance's capacity, so it is left to nodepool-limits-reachable.
        capacity = karpenter_capacity(facts, overhead)
        over = [name for name in ("cpu", "memory", GPU_RESOURCE)
                if name in pool.limits and capacity[name] > pool.limits[name]]
        if over:
            out.excluded.append(f"{instance_type}: one node exceeds the pool's limits ({', '.join(over)})")
            continue
        out.shapes.append(NodeShape(pool, instance_type, labels, dict(facts), room, gfd))
    if pool.instance_types is None and not out.shapes:
        out.excluded.append("no GPU instance type of the catalogue satisfies the pool's requirements and limits")
    _enforce_min_values(out)
    return out


def _enforce_min_values(out: PoolShapes) -> None:
    if out.others is not None or any(not s.modelled for s in out.shapes):
        return  # the set of types is not fully known: minValues cannot be judged
    for req in out.pool.requirements:
        if not req.min_values:
            continue
        distinct: set[str] = set()
        for shape in out.shapes:
            state = shape.state(req.key)
            if state.kind == "values":
                distinct |= state.values
        if len(distinct) < req.min_values:
            out.excluded.append(f"minValues {req.min_values} of {req.key} needs that many distinct values; the "
                                f"pool admits {len(distinct)} ({', '.join(sorted(distinct)) or 'none'})")
            out.shapes = []
            return
