"""The run's node model, built once per run through `ctx.memo` and shared by every rule.

Cost: parsing is linear in the NodePools; shapes are pools x admissible GPU instance types (at most the catalogue's
~75); a pod's reachability is computed once per pod template: pools are grouped by their taints, each group judged
once per pod, and a pool whose taints the pod does not tolerate is dismissed at once; the pool's shapes are walked
only otherwise — never per rule. Placement as a whole is pools x pod templates, bounded by
`Limits.max_placement_pairs` (budget.py): `reachable`, `selects` and any rule that walks pools per pod template
(`guard_placement`) raise `PlacementOverLimit` past it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.budget import PlacementWork, check_placement_work, limits_of
from gpu_policy.graph.nodes.labels import GPU_RESOURCE
from gpu_policy.graph.nodes.overlays import NodeOverlay, is_nodeoverlay, overlaid_capacity, parse_overlay
from gpu_policy.graph.nodes.placement import FIT_RESOURCES, Placement, can_select, placement, shape_rejects, taint_text
from gpu_policy.graph.nodes.pools import NodePool, is_nodepool, parse_nodepool
from gpu_policy.graph.nodes.resources import karpenter_capacity, vm_memory_overhead
from gpu_policy.graph.nodes.shapes import NodeShape, PoolShapes, pool_shapes
from gpu_policy.graph.scheduling import untolerated
from gpu_policy.graph.workloads import PodTemplate
from gpu_policy.policy.loader import PolicySet

T = TypeVar("T")
MAX_REASONS = 6
"""Per pool, how many instance types a "cannot land" message names before it summarizes the rest."""


class RunContext(Protocol):
    """What the model needs of a rule's CheckContext."""

    graph: ResourceGraph
    policy: PolicySet

    def memo(self, key: str, compute: Callable[[], T]) -> T: ...


def nodepools(ctx: RunContext) -> list[NodePool]:
    """Every Karpenter NodePool of the set, modelled once per run."""
    return ctx.memo("nodes.pools", lambda: [parse_nodepool(d, ctx.policy)
                                            for d in ctx.graph.of_kind("NodePool") if is_nodepool(d)])


def gpu_nodepools(ctx: RunContext) -> list[NodePool]:
    return ctx.memo("nodes.gpu_pools", lambda: [p for p in nodepools(ctx) if p.gpu])


def shapes_of(ctx: RunContext, pool: NodePool) -> PoolShapes:
    index = ctx.memo("nodes.shapes", lambda: {id(p): pool_shapes(p, ctx.policy) for p in nodepools(ctx)})
    return index[id(pool)]


def all_shapes(ctx: RunContext) -> list[PoolShapes]:
    return [shapes_of(ctx, p) for p in nodepools(ctx)]


def node_overlays(ctx: RunContext) -> list[NodeOverlay]:
    """Every karpenter.sh/v1alpha1 NodeOverlay of the set."""
    return ctx.memo("nodes.overlays", lambda: [parse_overlay(d) for d in ctx.graph.of_kind("NodeOverlay")
                                               if is_nodeoverlay(d)])


def capacity_of(ctx: RunContext, shape: NodeShape) -> dict[str, Decimal]:
    """What Karpenter counts against the pool's limits for one node of `shape` (karpenter_capacity), with the
    nvidia.com/gpu a NodeOverlay of the set tells Karpenter to assume (GPU time-slicing)."""
    assert shape.facts is not None
    capacity = karpenter_capacity(shape.facts, vm_memory_overhead(ctx.policy))
    found = overlaid_capacity(node_overlays(ctx), shape, GPU_RESOURCE)
    if found is not None:
        capacity[GPU_RESOURCE] = found[0]
    return capacity


def extended_resource_toleration(ctx: RunContext) -> bool:
    """policies/cluster.yaml eks.extendedResourceToleration (see placement.py)."""
    return bool((ctx.policy.cluster.get("eks") or {}).get("extendedResourceToleration"))


def placement_work(ctx: RunContext) -> PlacementWork:
    return ctx.memo("nodes.work", lambda: PlacementWork(len(nodepools(ctx)), len(ctx.graph.pod_templates())))


def guard_placement(ctx: RunContext) -> None:
    """Raise PlacementOverLimit when the set's pools × pod templates are past the run's limit."""
    check_placement_work(placement_work(ctx), limits_of(getattr(ctx, "options", {})))


def placements(ctx: RunContext) -> list[Placement]:
    """Every pod template of the set, as node placement sees it (linear: not guarded)."""
    return ctx.memo("nodes.placements", lambda: [placement(t) for t in ctx.graph.pod_templates()])


def placement_of(ctx: RunContext, template: PodTemplate) -> Placement:
    index = ctx.memo("nodes.placement_index",
                     lambda: {(id(p.template.owner), p.template.path): p for p in placements(ctx)})
    found = index.get((id(template.owner), template.path))
    return found if found is not None else placement(template)


@dataclass
class Reachability:
    """Where a pod can land: the modelled shapes that accept it, and per pool that accepts none, why."""

    shapes: list[NodeShape] = field(default_factory=list)
    why_not: list[str] = field(default_factory=list)


def _taint_key(taints: list[dict[str, Any]]) -> tuple[tuple[str, str, str], ...]:
    return tuple(sorted((str(t.get("key")), str(t.get("value")), str(t.get("effect"))) for t in taints))


def reachable(ctx: RunContext, pod: Placement) -> Reachability:
    guard_placement(ctx)
    key = f"nodes.reachable.{id(pod.template.owner)}.{pod.template.path}"

    def compute() -> Reachability:
        ert = extended_resource_toleration(ctx)
        tolerations = pod.effective_tolerations(ert)
        # The verdict reads nothing of the pod but its node selection, tolerations and requests (shape_rejects,
        # untolerated): pod templates that agree on those (every replica of one model in a monorepo) share it.
        signature = (tuple(pod.node_selector.items()),
                     None if pod.terms is None else tuple(tuple((k, o, tuple(v)) for k, o, v in t) for t in pod.terms),
                     pod.matchfield_terms, repr(tolerations),
                     tuple(str(pod.requests.get(name)) for name in FIT_RESOURCES))
        shared: dict[Any, Reachability] = ctx.memo("nodes.reachable.by_signature", dict)
        found = shared.get(signature)
        if found is None:
            found = shared[signature] = _reachability(tolerations)
        return Reachability(list(found.shapes), list(found.why_not))

    def _reachability(tolerations: list[dict[str, Any]]) -> Reachability:
        out = Reachability()
        ert = extended_resource_toleration(ctx)
        # Taints are the pool's, the same for every shape: judged once per distinct set of taints (an exact index:
        # pools with the same taints keep or lose the pod together).
        blocked_by: dict[tuple[tuple[str, str, str], ...], list[Mapping[str, Any]]] = {}
        for pool in all_shapes(ctx):
            taints = _taint_key(pool.pool.taints)
            if taints not in blocked_by:
                blocked_by[taints] = untolerated(tolerations, pool.pool.taints)
            blocking = blocked_by[taints]
            if blocking:
                out.why_not.append(f"NodePool {pool.pool.name}: untolerated taint {taint_text(blocking[0])}")
                continue
            reasons: list[str] = []
            accepted = False
            for shape in pool.shapes:
                reason = shape_rejects(pod, shape, ert, taints_checked=True)
                if reason is None:
                    out.shapes.append(shape)
                    accepted = True
                elif shape.modelled:
                    reasons.append(f"{shape.instance_type}: {reason}")
            if not accepted:
                listed = reasons + (pool.excluded if pool.pool.instance_types is not None else [])
                if len(listed) > MAX_REASONS:
                    listed = [*listed[:MAX_REASONS], f"and {len(listed) - MAX_REASONS} more instance types"]
                detail = "; ".join(listed) or "; ".join(pool.excluded) or "no instance types"
                out.why_not.append(f"NodePool {pool.pool.name}: {detail}")
        return out

    return ctx.memo(key, compute)


def selects(ctx: RunContext, pool: NodePool, pod: Placement) -> bool:
    """The pod's nodeSelector and required node affinity admit some node the pool can launch (taints and
    requests aside)."""
    guard_placement(ctx)
    index: dict[tuple[int, int], bool] = ctx.memo("nodes.selects", dict)
    key = (id(pool), id(pod))
    if key not in index:
        found = shapes_of(ctx, pool)
        index[key] = any(can_select(pod, s) for s in found.shapes) or (
            found.others is not None and can_select(pod, found.others))
    return index[key]
