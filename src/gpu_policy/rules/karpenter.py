"""Karpenter NodePools and EC2NodeClasses: GPU pools are tainted, bounded, reachable, resolvable and safely
disrupted.

The NodePool model (which pools give GPUs, which instance types and capacity types they may launch, what
Karpenter counts as a node's capacity) lives in `gpu_policy.graph.nodes`, shared with every other area.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

from gpu_policy.findings import Severity
from gpu_policy.graph.nodes.labels import GPU_RESOURCE, INSTANCE_TYPE
from gpu_policy.graph.nodes.model import gpu_nodepools, nodepools
from gpu_policy.graph.nodes.pools import LIMITS, NODECLASS_REF, REQUIREMENTS, TAINTS, TEMPLATE_SPEC, NodePool
from gpu_policy.graph.nodes.resources import format_resource, karpenter_capacity, max_nodes, vm_memory_overhead
from gpu_policy.graph.quantities import parse_duration
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import Violation, rule

DISRUPTION_REASONS = ("Underutilized", "Empty", "Drifted")
DISRUPTION: FieldPath = ("spec", "disruption")
BUDGETS: FieldPath = (*DISRUPTION, "budgets")
KARPENTER_SOURCES = "kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go"


def is_ec2nodeclass(doc: Document) -> bool:
    return doc.kind == "EC2NodeClass" and doc.group == "karpenter.k8s.aws"


# -- rules
# ------------------------------------------------------------------------------------------------------
@rule(
    "gpu-nodepool-taints-gpu",
    title="GPU pools taint nvidia.com/gpu",
    area="karpenter",
    rationale="""Without an `nvidia.com/gpu` NoSchedule taint any pod — a log shipper, a web server — may land
    on a GPU node and keep it (and its $20-55/h) alive, or take the CPU and memory a model server needs.
    Karpenter copies `spec.template.spec.taints` onto every node it launches (kubernetes-sigs/karpenter
    pkg/apis/v1/nodepool.go NodeClaimTemplateSpec.Taints); `startupTaints` are removed after start-up and do
    not count. GPU workloads then tolerate the taint (on EKS, ExtendedResourceToleration adds the toleration
    to pods that request GPUs).""",
    fix="Add `{key: nvidia.com/gpu, value: \"true\", effect: NoSchedule}` to spec.template.spec.taints.",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/nodepools/#spectemplatespectaints"),
)
def gpu_nodepool_taints_gpu(ctx: CheckContext) -> Iterator[Violation]:
    for pool in gpu_nodepools(ctx):
        effects = {t.get("effect") for _, t in pool.gpu_taints()}
        if effects & {"NoSchedule", "NoExecute"}:
            continue
        found = f" (it has effect {sorted(str(e) for e in effects)})" if effects else ""
        yield Violation(pool.doc, f"GPU NodePool {pool.name} does not taint its nodes nvidia.com/gpu with "
                                  f"NoSchedule{found}; any pod may schedule onto its GPU nodes",
                        path=TAINTS if pool.doc.get(TAINTS) is not None else TEMPLATE_SPEC)


@rule(
    "gpu-nodepool-instance-types-allowed",
    title="GPU pools launch only allowed GPU instance types",
    area="karpenter",
    rationale="""Karpenter launches any instance type its NodePool requirements admit (the cheapest that fits
    the pending pods). The organisation reviews each GPU type it runs — GPU model, memory, price — in
    policies/instance-types.yaml; a type missing there has no reviewed facts, and a GPU pool with no
    `node.kubernetes.io/instance-type In` requirement is unbounded: every type matching its other requirements
    (e.g. `instance-gpu-count Gt 0`: dozens of GPU types up to p5en.48xlarge) can be launched.""",
    fix="List only instance types of policies/instance-types.yaml under a `node.kubernetes.io/instance-type` "
        "`In` requirement (or add the type's facts to policies/instance-types.yaml after review).",
    sources=("https://karpenter.sh/docs/concepts/nodepools/#spectemplatespecrequirements",),
)
def gpu_nodepool_instance_types_allowed(ctx: CheckContext) -> Iterator[Violation]:
    allowed = sorted(ctx.policy.instance_types["instanceTypes"])
    for pool in gpu_nodepools(ctx):
        req = next((r for r in pool.requirements if r.key == INSTANCE_TYPE and r.operator == "In"), None)
        if req is None:
            other = pool.requirement(INSTANCE_TYPE)
            how = f"its {INSTANCE_TYPE} requirement uses {other.operator}" if other else \
                f"it has no {INSTANCE_TYPE} In requirement"
            yield Violation(pool.doc, f"GPU NodePool {pool.name} is unbounded: {how}, so Karpenter may "
                                      f"launch any "
                                      f"GPU instance type its other requirements admit (allowed: "
                                      f"{', '.join(allowed)})",
                            path=other.path if other else REQUIREMENTS)
            continue
        unknown = [t for t in req.values if ctx.policy.instance(t) is None]
        if unknown:
            yield Violation(pool.doc, f"GPU NodePool {pool.name} allows instance types without reviewed "
                                      f"facts in "
                                      f"policies/instance-types.yaml: {', '.join(unknown)} (allowed: "
                                      f"{', '.join(allowed)})",
                            path=(*req.path, "values"))


@rule(
    "nodepool-nodeclass-resolves",
    title="every NodePool's nodeClassRef names an EC2NodeClass of the set",
    area="karpenter",
    rationale="""A NodePool whose `nodeClassRef` names no EC2NodeClass never becomes Ready and launches
    nothing: Karpenter marks it `NodeClassReady=False` and its pods stay Pending (kubernetes-sigs/karpenter
    pkg/controllers/nodepool/readiness). The reference is by group, kind and name; the EC2NodeClass is
    cluster-scoped.""",
    fix="Point spec.template.spec.nodeClassRef at an EC2NodeClass of the set ({group: karpenter.k8s.aws, "
        "kind: "
        "EC2NodeClass, name: <name>}) or add that EC2NodeClass.",
    sources=("kubernetes-sigs/karpenter pkg/controllers/nodepool/readiness/controller.go",
             "https://karpenter.sh/docs/concepts/nodeclasses/"),
)
def nodepool_nodeclass_resolves(ctx: CheckContext) -> Iterator[Violation]:
    classes = {d.name for d in ctx.graph.of_kind("EC2NodeClass") if is_ec2nodeclass(d)}
    for pool in nodepools(ctx):
        ref = pool.nodeclass_ref
        if ref is None:
            yield Violation(pool.doc, f"NodePool {pool.name} has no spec.template.spec.nodeClassRef",
                            path=TEMPLATE_SPEC)
            continue
        group, kind, name = ref.get("group"), ref.get("kind"), ref.get("name")
        if (group, kind) != ("karpenter.k8s.aws", "EC2NodeClass"):
            yield Violation(pool.doc, f"NodePool {pool.name} nodeClassRef is {group}/{kind}, not "
                                      f"karpenter.k8s.aws/EC2NodeClass", path=NODECLASS_REF)
        elif name not in classes:
            known = ", ".join(sorted(classes)) or "none"
            yield Violation(pool.doc, f"NodePool {pool.name} references EC2NodeClass {name!r}, which is not "
                                      f"in the "
                                      f"set (EC2NodeClasses: {known})", path=(*NODECLASS_REF, "name"))


@rule(
    "nodepool-limits-reachable",
    title="NodePool limits are mutually reachable",
    area="karpenter",
    rationale="""Karpenter launches a node only while the node's capacity fits what remains of EVERY limit
    (kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go: instance types whose
    capacity exceeds the remaining resources are filtered out; pkg/apis/v1/nodepool.go `Limits.ExceededBy`).
    So a GPU limit that the cpu or memory limits stop short of is a promise the pool never keeps: with the
    seed's `memory: 4000Gi`, p5.48xlarge nodes (2048 GiB; Karpenter counts 1894.4 GiB after its 7.5% VM-memory
    overhead, aws/karpenter-provider-aws pkg/providers/instancetype/types.go) stop at 2 nodes = 16 of the 64
    GPUs. Capacity is estimated as Karpenter does before launch: vCPUs, memory less `vmMemoryOverheadPercent`
    (policies/cluster.yaml karpenter, default 0.075) — the most nodes Karpenter can launch, so a finding is
    certain.""",
    fix="Raise (or drop) the cpu/memory limits so that limit / per-node capacity >= the GPU limit / GPUs "
        "per node "
        "for every allowed type — or lower the GPU limit to what the other limits allow.",
    sources=("kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go",
             KARPENTER_SOURCES, "aws/karpenter-provider-aws pkg/providers/instancetype/types.go"),
)
def nodepool_limits_reachable(ctx: CheckContext) -> Iterator[Violation]:
    overhead = vm_memory_overhead(ctx.policy)
    for pool in gpu_nodepools(ctx):
        gpu_limit = pool.limits.get(GPU_RESOURCE)
        if gpu_limit is None or pool.instance_types is None:
            continue
        others = {k: v for k, v in pool.limits.items() if k != GPU_RESOURCE}
        short: list[str] = []
        for name in pool.instance_types:
            facts = ctx.policy.instance(name)
            if facts is None or int(facts.get("gpuCount", 0)) <= 0:
                continue
            capacity = karpenter_capacity(facts, overhead)
            wanted, _ = max_nodes({GPU_RESOURCE: gpu_limit}, capacity)
            allowed, binding = max_nodes(others, capacity)
            if wanted is None or allowed is None or binding is None or allowed >= wanted:
                continue
            short.append(
                f"{name}: {binding} limit {format_resource(binding, others[binding])} admits {allowed} "
                f"node(s) of "
                f"{format_resource(binding, capacity[binding])} each = {allowed * int(facts['gpuCount'])} "
                f"of the "
                f"{format_resource(GPU_RESOURCE, gpu_limit)} GPUs")
        if short:
            yield Violation(pool.doc, f"NodePool {pool.name}: the nvidia.com/gpu limit "
                                      f"{format_resource(GPU_RESOURCE, gpu_limit)} is unreachable — "
                                      + "; ".join(short),
                            path=LIMITS, details=tuple(short))


@rule(
    "spot-pool-weight-below-on-demand",
    title="spot pool weight is below on-demand",
    area="karpenter",
    rationale="""Karpenter tries NodePools in descending `weight` order (a pool without weight counts as 0;
    kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `Weight`). The organisation keeps GPU model servers on
    on-demand capacity first and uses the spot pool as overflow, so a spot-only GPU pool must weigh less than
    every GPU pool that offers on-demand capacity; otherwise Karpenter fills spot first and a spot reclaim
    takes the serving capacity with it.""",
    fix="Give the spot pool a lower spec.weight than the on-demand GPU pools (or raise theirs).",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/scheduling/#weighted-nodepools"),
)
def spot_pool_weight_below_on_demand(ctx: CheckContext) -> Iterator[Violation]:
    pools = gpu_nodepools(ctx)
    on_demand = [p for p in pools if p.offers_on_demand]
    for spot in (p for p in pools if p.spot_only):
        heavier = [p for p in on_demand if p.weight <= spot.weight]
        if heavier:
            names = ", ".join(f"{p.name} (weight {p.weight})" for p in heavier)
            yield Violation(spot.doc, f"spot NodePool {spot.name} has weight {spot.weight}, not below the "
                                      f"on-demand "
                                      f"GPU pool(s) {names}",
                            path=("spec", "weight") if spot.doc.get(("spec", "weight")) is not None
                            else ("spec",))


@rule(
    "ec2nodeclass-ami-pinned",
    title="EC2NodeClasses pin their AMI version",
    area="karpenter",
    severity=Severity.WARNING,
    rationale="""An `alias: <family>@latest` AMI selector resolves to each new AMI as AWS publishes it; Karpenter
    then marks every node of the class as drifted and replaces it, so an untested AMI rolls through all GPU nodes
    by itself. Karpenter "heavily recommends against" @latest outside pre-production and recommends pinning a
    version and rolling newer ones out in stages (karpenter.sh/docs/tasks/managing-amis).""",
    fix="Pin the alias to a version (e.g. `al2023@v20250915`) and roll new versions out deliberately.",
    sources=("https://karpenter.sh/docs/tasks/managing-amis/",),
)
def ec2nodeclass_ami_pinned(ctx: CheckContext) -> Iterator[Violation]:
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        for i, term in enumerate(doc.spec.get("amiSelectorTerms") or []):
            alias = term.get("alias") if isinstance(term, dict) else None
            if isinstance(alias, str) and alias.endswith("@latest"):
                yield Violation(doc, f"amiSelectorTerms[{i}] alias {alias} follows every new AMI",
                                path=("spec", "amiSelectorTerms", i, "alias"))


@rule(
    "ec2nodeclass-requires-imdsv2",
    title="EC2NodeClasses require IMDSv2",
    area="karpenter",
    rationale="""With `httpTokens: optional` a pod that reaches the instance metadata service reads the node
    role's credentials with a plain GET (IMDSv1). The EC2NodeClass CRD defaults metadataOptions to
    `httpTokens: required` with hop limit 1 (aws/karpenter-provider-aws pkg/apis/crds
    karpenter.k8s.aws_ec2nodeclasses.yaml), so an absent metadataOptions is fine; only an explicit `optional`
    fails.""",
    fix="Set spec.metadataOptions.httpTokens: required (or remove the override).",
    sources=("aws/karpenter-provider-aws pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml",
             "https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html"),
)
def ec2nodeclass_requires_imdsv2(ctx: CheckContext) -> Iterator[Violation]:
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        if not is_ec2nodeclass(doc):
            continue
        tokens = doc.get(("spec", "metadataOptions", "httpTokens"))
        if tokens is not None and tokens != "required":
            yield Violation(doc, f"EC2NodeClass {doc.name} sets metadataOptions.httpTokens: {tokens}; IMDSv1 "
                                 f"hands the node role's credentials to any pod that can reach "
                                 f"169.254.169.254",
                            path=("spec", "metadataOptions", "httpTokens"))


_ALIAS_FAMILIES = ("al2023@", "al2@", "bottlerocket@", "windows2019@", "windows2022@", "windows2025@")


@rule(
    "ec2nodeclass-encrypts-volumes",
    title="EC2NodeClasses encrypt their EBS volumes",
    area="karpenter",
    rationale="""GPU nodes hold model weights and request data on their volumes. When blockDeviceMappings is
    omitted and the AMI comes from an `alias` (AL2023, AL2, Bottlerocket, Windows), Karpenter applies the
    family's default root volume, which is encrypted (aws/karpenter-provider-aws
    pkg/providers/amifamily/resolver.go `DefaultEBS{Encrypted: true}`). An explicit mapping replaces that
    default: without `encrypted: true` the volume's encryption depends on the account's
    EBS-encryption-by-default setting, which the manifests do not show. A custom AMI without mappings uses the
    AMI's own (unknown) mappings.""",
    fix="Set `ebs.encrypted: true` on every spec.blockDeviceMappings entry (and `rootVolume: true` on the "
        "root "
        "one).",
    sources=("aws/karpenter-provider-aws pkg/providers/amifamily/resolver.go",
             "aws/karpenter-provider-aws pkg/providers/amifamily/al2023.go"),
)
def ec2nodeclass_encrypts_volumes(ctx: CheckContext) -> Iterator[Violation]:
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        if not is_ec2nodeclass(doc):
            continue
        mappings = doc.get(("spec", "blockDeviceMappings"))
        if not mappings:
            terms = doc.get(("spec", "amiSelectorTerms")) or []
            aliased = any(isinstance(t, Mapping) and str(t.get("alias", "")).startswith(_ALIAS_FAMILIES)
                          for t in terms)
            if not aliased:
                yield Violation(doc, f"EC2NodeClass {doc.name} has no blockDeviceMappings and no AMI alias: "
                                     f"the "
                                     f"custom AMI's own volume mappings (encryption unknown) apply",
                                path=("spec",))
            continue
        for i, mapping in enumerate(mappings):
            if not isinstance(mapping, Mapping):
                continue
            ebs = mapping.get("ebs")
            if isinstance(ebs, Mapping) and ebs.get("encrypted") is True:
                continue
            device = mapping.get("deviceName", f"#{i}")
            value = ebs.get("encrypted") if isinstance(ebs, Mapping) else None
            said = "is not set" if value is None else f"is {value}"
            yield Violation(doc, f"EC2NodeClass {doc.name} volume {device}: ebs.encrypted {said}",
                            path=("spec", "blockDeviceMappings", i, "ebs", "encrypted")
                            if isinstance(ebs, Mapping) else ("spec", "blockDeviceMappings", i))


# -- disruption budgets
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    index: int
    nodes: str
    schedule: str | None
    duration_seconds: float | None
    reasons: frozenset[str] | None

    @property
    def path(self) -> FieldPath:
        return (*BUDGETS, self.index)

    @property
    def always_active(self) -> bool:
        return self.schedule is None and self.duration_seconds is None

    @property
    def freezes(self) -> bool:
        return self.nodes in ("0", "0%")

    def applies_to(self, reason: str) -> bool:
        return self.reasons is None or reason in self.reasons


def budgets(pool: NodePool) -> list[Budget] | None:
    """The pool's budgets; None when the field is absent (Karpenter then defaults to one `nodes: 10%` "
    "budget)."""
    raw = pool.doc.get(BUDGETS)
    if raw is None:
        return None
    out: list[Budget] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, Mapping):
            continue
        reasons = item.get("reasons")
        duration = item.get("duration")
        out.append(Budget(
            index=i, nodes=str(item.get("nodes", "10%")),
            schedule=str(item["schedule"]) if item.get("schedule") is not None else None,
            duration_seconds=parse_duration(str(duration)) if duration is not None else None,
            reasons=frozenset(str(r) for r in reasons) if isinstance(reasons, list) else None,
        ))
    return out


@rule(
    "disruption-budgets-within-max-percent",
    title="disruption budgets disrupt at most 20% of a pool's nodes",
    area="karpenter",
    rationale="""A budget's `nodes` caps how many of the pool's nodes Karpenter disrupts at once (a percentage
    is rounded UP against the node count; kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go
    `GetAllowedDisruptions`). Draining more than policies/budgets.yaml maxDisruptionPercent (20%) of GPU nodes
    at once drops serving capacity below what the models need while replacements boot. Scheduled budgets limit
    only while active and a budget with `reasons` limits only those reasons: when no always-active budget
    covers a reason, nothing limits that reason outside the windows (Karpenter's default 10% applies only when
    `budgets` is omitted). Absolute counts are accepted.""",
    fix="Keep every percentage budget at or below 20% and keep one always-active budget without `reasons` "
        "(e.g. `- nodes: \"20%\"`).",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#nodepool-disruption-budgets"),
)
def disruption_budgets_within_max_percent(ctx: CheckContext) -> Iterator[Violation]:
    ceiling = Decimal(str(ctx.policy.budgets["maxDisruptionPercent"]))
    for pool in gpu_nodepools(ctx):
        found = budgets(pool)
        if found is None:
            if Decimal(10) > ceiling:
                yield Violation(pool.doc, f"NodePool {pool.name} has no budgets: Karpenter's default 10% "
                                          f"exceeds "
                                          f"{ceiling}%", path=DISRUPTION)
            continue
        for budget in found:
            if budget.nodes.endswith("%"):
                try:
                    percent = Decimal(budget.nodes[:-1])
                except ArithmeticError:
                    continue
                if percent > ceiling:
                    yield Violation(pool.doc, f"NodePool {pool.name} budget nodes {budget.nodes} lets "
                                              f"Karpenter "
                                              f"disrupt more than the policy's {ceiling}% of its nodes at "
                                              f"once",
                                    path=(*budget.path, "nodes"))
        unlimited = [r for r in DISRUPTION_REASONS
                     if not any(b.always_active and b.applies_to(r) for b in found)]
        if unlimited:
            yield Violation(pool.doc, f"NodePool {pool.name} has no always-active budget for "
                                      f"{', '.join(unlimited)}: outside its scheduled windows Karpenter may "
                                      f"disrupt "
                                      f"every node at once for those reasons", path=BUDGETS)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Interval = tuple[dt.datetime, dt.datetime]


def _sample_weeks(today: dt.date) -> list[dt.date]:
    """Mondays of two sample weeks of `today`'s year, mid-January and mid-July: both sides of every DST "
    "change."""
    out = []
    for month in (1, 7):
        mid = dt.date(today.year, month, 15)
        out.append(mid - dt.timedelta(days=mid.weekday()))
    return out


def business_intervals(hours: Mapping[str, Any], monday: dt.date) -> list[tuple[Interval, dt.datetime]]:
    """[(UTC interval, local start)] of the business hours in the week starting `monday` (real dates, "
    "zoneinfo)."""
    zone = ZoneInfo(str(hours["timeZone"]))
    start_h, start_m = (int(x) for x in str(hours["start"]).split(":"))
    end_h, end_m = (int(x) for x in str(hours["end"]).split(":"))
    out = []
    for offset in range(7):
        day = monday + dt.timedelta(days=offset)
        if _DAYS[day.weekday()] not in hours["days"]:
            continue
        local_start = dt.datetime.combine(day, dt.time(start_h, start_m), tzinfo=zone)
        local_end = dt.datetime.combine(day, dt.time(end_h % 24, end_m), tzinfo=zone)
        if local_end <= local_start:
            local_end += dt.timedelta(days=1)
        out.append(((local_start.astimezone(dt.UTC), local_end.astimezone(dt.UTC)), local_start))
    return out


def active_windows(
    schedule: str, duration_seconds: float, start: dt.datetime, end: dt.datetime
) -> list[Interval]:
    """UTC intervals in which a scheduled budget is active: [hit, hit + duration) for every cron hit.

    kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `IsActive` parses `TZ=UTC <schedule>` and is active at
    t when
    the next hit after t - duration is not after t."""
    span = dt.timedelta(seconds=duration_seconds)
    it = croniter(schedule, start - span - dt.timedelta(seconds=1))
    out: list[Interval] = []
    while True:
        hit = it.get_next(dt.datetime)
        if hit.tzinfo is None:
            hit = hit.replace(tzinfo=dt.UTC)
        if hit >= end:
            return out
        out.append((hit, hit + span))


def uncovered(target: Interval, windows: list[Interval]) -> Interval | None:
    """The first part of `target` that no window covers, or None."""
    cursor, stop = target
    for begin, finish in sorted(windows):
        if begin > cursor:
            break
        cursor = max(cursor, finish)
        if cursor >= stop:
            return None
    return (cursor, stop) if cursor < stop else None


def _cron_days(days: Iterable[int]) -> str:
    ordered = sorted(set(days))
    if ordered and ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(str(d) for d in ordered)


def suggested_freeze(hours: Mapping[str, Any], mondays: list[dt.date]) -> tuple[str, str]:
    """A UTC cron and duration whose windows cover the business hours in every sample week (DST included)."""
    starts: list[int] = []
    ends: list[int] = []
    cron_days: set[int] = set()
    for monday in mondays:
        for (begin, finish), _ in business_intervals(hours, monday):
            starts.append(begin.hour * 60 + begin.minute)
            ends.append(begin.hour * 60 + begin.minute + int((finish - begin).total_seconds() // 60))
            cron_days.add((begin.weekday() + 1) % 7)  # cron: Sunday = 0
    first = min(starts)
    minutes = max(ends) - first
    hours_part, minutes_part = divmod(minutes, 60)
    duration = f"{hours_part}h" + (f"{minutes_part}m" if minutes_part else "")
    return f"{first % 60} {first // 60} * * {_cron_days(cron_days)}", duration


def _describe(interval: Interval, zone: ZoneInfo) -> str:
    begin, finish = interval
    local_begin, local_end = begin.astimezone(zone), finish.astimezone(zone)

    def end(moment: dt.datetime, start: dt.datetime) -> str:
        return f"{moment:%H:%M}" if moment.date() == start.date() else f"{moment:%a %H:%M}"

    return (f"{begin:%a %H:%M}-{end(finish, begin)} UTC = "
            f"{local_begin:%a %H:%M}-{end(local_end, local_begin)} "
            f"{zone.key}")


@rule(
    "business-hours-freeze-in-utc",
    title="the business-hours freeze is correct in UTC",
    area="karpenter",
    rationale="""policies/budgets.yaml requires a `nodes: "0"` budget that blocks voluntary disruption during
    the business hours of policies/cluster.yaml. Karpenter evaluates a budget's `schedule` as cron in UTC —
    time zones are not supported (kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `IsActive` parses `TZ=UTC
    <schedule>`) — and keeps it active for `duration` after each hit. The seed's `0 9 * * 1-5` + 8h is
    09:00-17:00 UTC = 18:00-02:00 in Seoul: the freeze protects the night and leaves the working day open. The
    check converts the business hours with the real time zone (zoneinfo) for two sample weeks, mid-January and
    mid-July of the current year, so both sides of a DST change count, and requires every minute frozen for
    EVERY disruption reason (Underutilized, Empty, Drifted): a freeze with `reasons` still lets the other
    reasons disrupt.""",
    fix="Write the freeze in UTC: convert the local business hours to UTC (and for DST zones widen the "
        "window to "
        "cover both offsets); drop `reasons` from the freeze or add freezes for the missing reasons.",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#schedule"),
)
def business_hours_freeze_in_utc(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.policy.budgets.get("businessHoursFreeze") != "required":
        return
    hours = ctx.policy.cluster["businessHours"]
    try:
        zone = ZoneInfo(str(hours["timeZone"]))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        yield Violation(None, f"policies/cluster.yaml businessHours.timeZone {hours['timeZone']!r} is not a "
                              f"known time zone: {exc}",
                        resource="policies/cluster.yaml", file=str(ctx.policy.directory / "cluster.yaml"),
                        line=1)
        return
    today = ctx.options.get("today") or dt.date.today()
    mondays = _sample_weeks(today)
    targets = [item for monday in mondays for item in business_intervals(hours, monday)]
    if not targets:
        return
    horizon_start = min(t[0][0] for t in targets)
    horizon_end = max(t[0][1] for t in targets)
    cron, duration = suggested_freeze(hours, mondays)
    local = f"{'/'.join(hours['days'])} {hours['start']}-{hours['end']} {zone.key}"
    for pool in gpu_nodepools(ctx):
        yield from _check_freeze(pool, targets, horizon_start, horizon_end, zone, local, cron, duration)


def _check_freeze(pool: NodePool, targets: list[tuple[Interval, dt.datetime]], horizon_start: dt.datetime,
                  horizon_end: dt.datetime, zone: ZoneInfo, local: str, cron: str,
                  duration: str) -> Iterator[Violation]:
    fix = (f"Use a budget {{nodes: \"0\", schedule: \"{cron}\", duration: {duration}}} (cron is UTC) "
           f"without reasons.")
    freezes = [b for b in budgets(pool) or [] if b.freezes]
    if not freezes:
        yield Violation(pool.doc, f"NodePool {pool.name} has no nodes: \"0\" budget: Karpenter may disrupt "
                                  f"GPU nodes during business hours ({local})",
                        path=BUDGETS if pool.doc.get(BUDGETS) is not None else DISRUPTION, fix=fix)
        return
    windows: dict[int, list[Interval]] = {}
    for budget in freezes:
        if budget.always_active:
            windows[budget.index] = [(horizon_start, horizon_end)]
        elif budget.schedule is None or budget.duration_seconds is None:
            windows[budget.index] = []
        else:
            try:
                windows[budget.index] = active_windows(
                    budget.schedule, budget.duration_seconds, horizon_start, horizon_end)
            except (ValueError, KeyError) as exc:
                yield Violation(pool.doc, f"NodePool {pool.name} freeze schedule {budget.schedule!r} is not "
                                          f"a cron Karpenter accepts: {exc}",
                                path=(*budget.path, "schedule"), fix=fix)
                return
    gaps: dict[str, tuple[Interval, dt.datetime]] = {}
    for reason in DISRUPTION_REASONS:
        applicable = [w for b in freezes if b.applies_to(reason) for w in windows[b.index]]
        for target, local_start in targets:
            gap = uncovered(target, applicable)
            if gap is not None:
                gaps[reason] = (gap, local_start)
                break
    if not gaps:
        return
    first = freezes[0]
    shown = [b for b in freezes if windows[b.index]]
    described = "; ".join(
        f"schedule {b.schedule!r} for {_duration_text(b.duration_seconds)}"
        + (f" (reasons {sorted(b.reasons)})" if b.reasons is not None else "")
        + f" is active {_describe(windows[b.index][0], zone)}"
        for b in shown if b.schedule is not None
    ) or "the freeze is never active"
    reasons = sorted(gaps)
    (gap, local_start) = gaps[reasons[0]]
    reason_text = "" if len(reasons) == len(DISRUPTION_REASONS) else f" for {', '.join(reasons)}"
    message = (f"NodePool {pool.name}: business hours {local} are "
               f"{_describe(targets[0][0], zone).split(' = ')[0]}; {described}; so Karpenter may disrupt "
               f"nodes{reason_text} during business hours (first unfrozen: "
               f"{gap[0].astimezone(zone):%a %Y-%m-%d %H:%M} "
               f"{zone.key}). Correct UTC freeze: schedule \"{cron}\", duration {duration}")
    yield Violation(pool.doc, message, path=(*first.path, "schedule") if first.schedule else first.path,
                    fix=fix)


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    h, m = divmod(minutes, 60)
    return f"{h}h" + (f"{m}m" if m else "")
