"""Cost: the GPU fleet's worst case at its NodePool limits fits the budget, every admissible type has a price,
prices are current, and workloads that tolerate spot can use it.

Prices come from the profile's cost.yaml `onDemandHourlyUSD`, else from the bundled AWS GPU instance catalogue
(us-east-1, dated; gpu_policy.graph.nodes.catalogue). Every rule here is an organisation's choice and judges
nothing unless the policy in force sets its value (maxHourlyCostUSD, pricesMaxAgeDays, spotTolerantLabel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gpu_policy.findings import Severity
from gpu_policy.graph.nodes.catalogue import catalogue, on_demand_price
from gpu_policy.graph.nodes.labels import INSTANCE_TYPE
from gpu_policy.graph.nodes.model import capacity_of, gpu_nodepools, placements, shapes_of
from gpu_policy.graph.nodes.placement import allowed_capacity_types
from gpu_policy.graph.nodes.pools import LIMITS, REQUIREMENTS, NodePool
from gpu_policy.graph.nodes.resources import format_resource, max_nodes
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.karpenter import policy_source
from gpu_policy.rules.registry import RuleClass, Violation, rule
from gpu_policy.rules.spot import spot_pools_running

SEARCH_STEP_LIMIT = 20_000
"""Branch-and-bound steps per pool before the search settles for the most expensive fleet found so far (a fleet
the limits admit, so a lower bound of the worst case: a finding made from it is still certain)."""


def price_of(ctx: CheckContext, instance_type: str) -> Decimal | None:
    price = on_demand_price(ctx.policy, instance_type)
    return price.usd if price is not None else None


def _budget(ctx: CheckContext) -> Decimal | None:
    value = ctx.policy.cost.get("maxHourlyCostUSD")
    return Decimal(str(value)) if value is not None else None


@dataclass
class FleetOption:
    name: str
    capacity: dict[str, Decimal]
    price: Decimal


@dataclass
class WorstCase:
    pool: NodePool
    cost: Decimal | None
    """None when nothing bounds the pool's fleet."""
    counts: dict[str, int] = field(default_factory=dict)
    exact: bool = True
    notes: list[str] = field(default_factory=list)


def _upper_bound(options: list[FleetOption], start: int, remaining: Mapping[str, Decimal]) -> Decimal:
    """No fleet of options[start:] within `remaining` costs more than this."""
    per_type = Decimal(0)
    for option in options[start:]:
        count, _ = max_nodes(remaining, option.capacity)
        per_type += option.price * (count or 0)
    bound = per_type
    for resource, left in remaining.items():
        ratios = [o.price / o.capacity[resource] for o in options[start:] if o.capacity.get(resource, 0) > 0]
        if len(ratios) == len(options[start:]) and ratios:
            bound = min(bound, max(left, Decimal(0)) * max(ratios))
    return bound


def undominated(options: list[FleetOption], limits: Mapping[str, Decimal]) -> list[FleetOption]:
    """Drop every option another option dominates: at least as expensive while using no more of any limited
    resource. Swapping a dominated node for its dominator keeps a fleet within the limits and costs no less, so
    the most expensive fleet needs only undominated options (exact, not a heuristic)."""
    keys = list(limits)

    def dominates(a: FleetOption, b: FleetOption) -> bool:
        return a.price >= b.price and all(a.capacity.get(k, Decimal(0)) <= b.capacity.get(k, Decimal(0))
                                          for k in keys)

    kept: list[FleetOption] = []
    for i, option in enumerate(options):
        if any(dominates(other, option) and (not dominates(option, other) or j < i)
               for j, other in enumerate(options) if j != i):
            continue
        kept.append(option)
    return kept


def _greedy(options: list[FleetOption], limits: Mapping[str, Decimal]) -> tuple[Decimal, dict[str, int]]:
    """Fill the limits with as many nodes of each option as still fit, in the given order."""
    remaining = dict(limits)
    counts = {o.name: 0 for o in options}
    cost = Decimal(0)
    for option in options:
        count, _ = max_nodes(remaining, option.capacity)
        if not count:
            continue
        counts[option.name] = count
        cost += option.price * count
        remaining = {k: v - option.capacity.get(k, Decimal(0)) * count for k, v in remaining.items()}
    return cost, counts


def most_expensive_fleet(
    options: list[FleetOption], limits: Mapping[str, Decimal]
) -> tuple[Decimal, dict[str, int], bool]:
    """The most expensive set of nodes whose summed capacity fits every limit (bounded knapsack, branch and
    bound).

    Karpenter launches a node while its capacity fits the remaining limits, so any fleet within the limits is
    reachable and none beyond them is. Returns (cost, counts, exact); not exact when the step budget ran out, in
    which case the cost is that of the most expensive fleet found — reachable, so the true worst case is at least
    that much."""
    ordered = sorted(undominated(options, limits), key=lambda o: o.price, reverse=True)
    best: list[Any] = [Decimal(0), {o.name: 0 for o in ordered}]
    # Seed the search with greedy fleets (by price, and by price per unit of each limited resource) so that a
    # search cut short by its step budget still reports a good, reachable fleet.
    def per_unit(resource: str) -> Callable[[FleetOption], Decimal]:
        def key(option: FleetOption) -> Decimal:
            used = option.capacity.get(resource, Decimal(0))
            return option.price / used if used > 0 else Decimal(0)
        return key

    orders = [ordered] + [sorted(ordered, key=per_unit(r), reverse=True) for r in limits]
    for order in orders:
        cost, counts = _greedy(order, limits)
        if cost > best[0]:
            best[0], best[1] = cost, counts
    steps = 0
    exhausted = False

    def search(index: int, remaining: dict[str, Decimal], cost: Decimal, counts: dict[str, int]) -> None:
        nonlocal steps, exhausted
        steps += 1
        if steps > SEARCH_STEP_LIMIT:
            exhausted = True
            return
        if cost > best[0]:
            best[0], best[1] = cost, dict(counts)
        if index == len(ordered) or cost + _upper_bound(ordered, index, remaining) <= best[0]:
            return
        option = ordered[index]
        most, _ = max_nodes(remaining, option.capacity)
        for count in range(most or 0, -1, -1):
            left = {k: v - option.capacity.get(k, Decimal(0)) * count for k, v in remaining.items()}
            counts[option.name] = count
            search(index + 1, left, cost + option.price * count, counts)
            counts[option.name] = 0
            if exhausted:
                return

    search(0, dict(limits), Decimal(0), {o.name: 0 for o in ordered})
    return best[0], best[1], not exhausted


def worst_case(ctx: CheckContext, pool: NodePool) -> WorstCase:
    """The most expensive fleet of the GPU instance types the pool admits (its instance-type list, or every type
    of the catalogue its requirements admit), within its limits."""
    def compute() -> WorstCase:
        options: list[FleetOption] = []
        notes: list[str] = []
        found = shapes_of(ctx, pool)
        for shape in found.shapes:
            name = shape.instance_type or "?"
            price = price_of(ctx, name)
            if shape.facts is None or price is None:
                notes.append(f"{name}: left out ({'no facts' if shape.facts is None else 'no price'})")
                continue
            capacity = capacity_of(ctx, shape)
            count, _ = max_nodes(pool.limits, capacity)
            if count is None:
                limited = ", ".join(sorted(pool.limits)) or "none"
                return WorstCase(pool, None, notes=[f"{name}: no limit bounds it (limits: {limited})"])
            options.append(FleetOption(name, capacity, price))
        if found.others is not None:
            notes.append("it also admits instance types without GPUs, which are not priced")
        cost, counts, exact = most_expensive_fleet(options, pool.limits)
        return WorstCase(pool, cost, {k: v for k, v in counts.items() if v}, exact, notes)

    return ctx.memo(f"cost.worst_case.{pool.doc.ref}", compute)


def _fleet_text(case: WorstCase, ctx: CheckContext) -> str:
    if case.cost is None:
        return f"{case.pool.name}: unbounded ({'; '.join(case.notes)})"
    parts = []
    for name, count in sorted(case.counts.items()):
        price = price_of(ctx, name) or Decimal(0)
        parts.append(f"{count} x {name} @ ${price}/h")
    limits = ", ".join(f"{k} {format_resource(k, v)}" for k, v in sorted(case.pool.limits.items()))
    bound = "" if case.exact else " at least (search budget exhausted)"
    return (f"{case.pool.name}: ${case.cost.quantize(Decimal('0.01'))}/h{bound} = "
            f"{' + '.join(parts) or 'no nodes'} (limits: {limits or 'none'})"
            + (f"; {'; '.join(case.notes)}" if case.notes else ""))


@rule(
    "gpu-fleet-cost-within-budget",
    title="the GPU fleet at its NodePool limits costs at most the hourly budget",
    area="cost",
    rule_class=RuleClass.POLICY,
    rationale="""NodePool `limits` are the only ceiling on what Karpenter launches, so they are the ceiling on
    spend. The worst case is the most expensive fleet the limits admit — a bounded search over the allowed
    types with Karpenter's own capacity accounting (vCPUs, memory less the VM overhead, GPUs:
    kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go; aws/karpenter-provider-aws
    pkg/providers/instancetype/types.go) over the GPU types the pool admits — its instance-type list, or every
    type of the bundled AWS GPU instance catalogue its family/size/category/GPU requirements admit — priced at
    the profile's cost.yaml prices, else the catalogue's dated us-east-1 on-demand prices (spot is priced as
    on-demand for a ceiling). Summed over the GPU pools it must stay within cost.yaml maxHourlyCostUSD; nothing is
    judged when the policy in force sets no ceiling. A GPU pool admitting a type that no limit bounds is
    unbounded. Limits are eventually consistent, so a burst can briefly overshoot.""",
    fix="Lower the NodePools' limits (nvidia.com/gpu, cpu, memory) or the set of expensive instance types until the "
        "worst case fits maxHourlyCostUSD (or raise the budget in cost.yaml after review).",
    sources=("kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go",
             "kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go", "https://aws.amazon.com/ec2/pricing/on-demand/"),
)
def gpu_fleet_cost_within_budget(ctx: CheckContext) -> Iterator[Violation]:
    pools = gpu_nodepools(ctx)
    budget = _budget(ctx)
    if not pools or budget is None:
        return
    source = f"maxHourlyCostUSD of {policy_source(ctx, 'cost')}"
    cases = [worst_case(ctx, p) for p in pools]
    details = tuple(_fleet_text(c, ctx) for c in cases)
    unbounded = [c for c in cases if c.cost is None]
    if unbounded:
        for case in unbounded:
            yield Violation(case.pool.doc, f"GPU NodePool {case.pool.name} has no worst-case cost under the "
                                           f"${budget}/h {source}: {'; '.join(case.notes)}", path=LIMITS,
                            details=details)
        return
    total = sum((c.cost for c in cases if c.cost is not None), Decimal(0))
    if total <= budget:
        return
    largest = max(cases, key=lambda c: c.cost or Decimal(0))
    yield Violation(largest.pool.doc, f"the GPU NodePools can cost ${total.quantize(Decimal('0.01'))}/h at their "
                                      f"limits, over the ${budget}/h {source}; "
                                      f"{largest.pool.name} alone "
                                      f"${(largest.cost or Decimal(0)).quantize(Decimal('0.01'))}/h",
                    path=LIMITS, details=details,
                    exemptible_by=tuple(c.pool.doc for c in cases))


@rule(
    "gpu-instance-types-priced",
    title="every admissible GPU instance type has a price",
    area="cost",
    rule_class=RuleClass.POLICY,
    rationale="""The worst-case cost of a GPU pool is priced from the profile's cost.yaml onDemandHourlyUSD, else
    from the bundled catalogue's us-east-1 prices (when the profile's region is us-east-1 or unset); an instance
    type the pool may launch without a price is spend nobody reviewed, and the ceiling computed without it is
    wrong. Judged only when the policy in force sets a cost ceiling (maxHourlyCostUSD).""",
    fix="Add the type's on-demand hourly price (in the profile's region) to cost.yaml onDemandHourlyUSD, or bound "
        "the NodePool so that it cannot launch the type.",
    sources=("https://aws.amazon.com/ec2/pricing/on-demand/",),
)
def gpu_instance_types_priced(ctx: CheckContext) -> Iterator[Violation]:
    if _budget(ctx) is None:
        return
    region = ctx.policy.cost.get("region") or catalogue().price_region
    for pool in gpu_nodepools(ctx):
        req = next((r for r in pool.requirements if r.key == INSTANCE_TYPE and r.operator == "In"), None)
        missing = [s.instance_type for s in shapes_of(ctx, pool).shapes
                   if s.instance_type is not None and price_of(ctx, s.instance_type) is None]
        if missing:
            yield Violation(pool.doc, f"GPU NodePool {pool.name} may launch instance types without a {region} "
                                      f"price in {policy_source(ctx, 'cost')} or the catalogue: "
                                      f"{', '.join(missing)}",
                            path=(*req.path, "values") if req is not None else REQUIREMENTS)


def _label_true(value: Any) -> bool:
    return str(value).lower() == "true"


@rule(
    "spot-tolerant-workloads-use-spot",
    title="fault-tolerant GPU workloads can run on spot",
    area="cost",
    rule_class=RuleClass.POLICY,
    rationale="""A GPU workload that declares it tolerates spot interruptions (spot.yaml
    spotTolerantLabel, value "true") but that no spot-capable NodePool admits pays on-demand prices for
    nothing: GPU spot capacity costs 60-90% less (the seed's cost checklist). Placement is judged as Karpenter
    judges it: the pool's taints must be tolerated (ExtendedResourceToleration counted) and the pod's
    selectors must allow spot.""",
    fix="Let the workload reach the spot pool: tolerate its taints (karpenter.sh/capacity-type=spot, "
        "nvidia.com/gpu) and do not pin karpenter.sh/capacity-type to on-demand — or drop the label.",
    sources=("https://karpenter.sh/docs/concepts/scheduling/#taints-and-tolerations",
             "https://aws.amazon.com/ec2/spot/pricing/"),
    severity=Severity.WARNING,
)
def spot_tolerant_workloads_use_spot(ctx: CheckContext) -> Iterator[Violation]:
    label = ctx.policy.spot.get("spotTolerantLabel")
    if not label:
        return
    for pod in placements(ctx):
        owner = pod.template.owner
        declared = owner.labels.get(label, pod.template.labels.get(label))
        if declared is None or not _label_true(declared) or not pod.requests_gpu:
            continue
        if spot_pools_running(ctx, pod):
            continue
        why = ("its node selection excludes spot" if "spot" not in allowed_capacity_types(pod)
               else "no spot-capable NodePool admits it (taints or selectors)")
        yield Violation(owner, f"{owner.ref} is labelled {label}=true (spotTolerantLabel of "
                               f"{policy_source(ctx, 'spot')}) but cannot run on spot: {why}",
                        path=pod.path())


def _policy_line(path: str, key: str) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith(f"{key}:"):
                    return number
    except OSError:
        pass
    return 1


@rule(
    "instance-prices-are-current",
    title="instance prices are re-dated within their maximum age",
    area="cost",
    rule_class=RuleClass.POLICY,
    rationale="""EC2 prices change (p5 on-demand prices fell by about 45% in June 2025); a cost ceiling
    computed from stale prices is wrong in either direction. When the policy in force sets pricesMaxAgeDays, the
    prices in use — the profile's cost.yaml pricesAsOf when it lists its own prices, else the catalogue's date —
    must be within that many days of today. A warning: it asks for a review, not a manifest change.""",
    fix="Re-check the prices in use (the profile's cost.yaml, or the catalogue) against "
        "https://aws.amazon.com/ec2/pricing/on-demand/ and update pricesAsOf.",
    sources=("https://aws.amazon.com/ec2/pricing/on-demand/",),
    severity=Severity.WARNING,
)
def instance_prices_are_current(ctx: CheckContext) -> Iterator[Violation]:
    max_age = ctx.policy.cost.get("pricesMaxAgeDays")
    if not max_age or not gpu_nodepools(ctx):
        return
    today = ctx.options.get("today") or dt.date.today()
    own = ctx.policy.cost.get("onDemandHourlyUSD") and ctx.policy.cost.get("pricesAsOf")
    as_of = dt.date.fromisoformat(str(own or catalogue().prices_as_of))
    age = (today - as_of).days
    if age <= int(max_age):
        return
    where = policy_source(ctx, "cost") if own else "the bundled GPU instance catalogue"
    path = ctx.policy.origins.get("cost") or str(ctx.policy.directory / "cost.yaml")
    yield Violation(None, f"the prices of {where} are as of {as_of} ({age} days old, more than pricesMaxAgeDays "
                          f"{max_age} of {policy_source(ctx, 'cost')}); the GPU cost ceiling is priced on them",
                    resource="cost.yaml", file=path, line=_policy_line(path, "pricesAsOf") if own else 1)
