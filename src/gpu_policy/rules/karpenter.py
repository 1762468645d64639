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
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gpu_policy.findings import Severity
from gpu_policy.graph.nodes.budgets import (
    BUDGETS,
    DISRUPTION,
    REASONS,
    Interval,
    declared_budgets,
    fails_closed,
)
from gpu_policy.graph.nodes.catalogue import instance_facts
from gpu_policy.graph.nodes.labels import GPU_RESOURCE, INSTANCE_TYPE
from gpu_policy.graph.nodes.model import capacity_of, gpu_nodepools, node_overlays, nodepools, shapes_of
from gpu_policy.graph.nodes.pools import (
    AUTO_MODE_GROUP,
    GPU_CATEGORIES,
    LIMITS,
    NODECLASS_REF,
    REQUIREMENTS,
    TAINTS,
    TEMPLATE_SPEC,
    NodePool,
    category,
    is_ec2nodeclass,
)
from gpu_policy.graph.nodes.resources import format_resource, max_nodes
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

DISRUPTION_REASONS = REASONS
KARPENTER_SOURCES = "kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go"


AUTO_MODE_DEFAULT_NODECLASS = "default"
"""EKS Auto Mode's built-in NodeClass, present whenever the built-in node pools are enabled
(docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html, "Cluster without built-in node pools")."""


def _switch(ctx: CheckContext, policy_file: str, section: str, key: str) -> bool:
    """A best-practice switch of the policy in force (absent = off)."""
    data = getattr(ctx.policy, policy_file.replace("-", "_"))
    values = data.get(section) or {}
    return bool(values.get(key)) if isinstance(values, Mapping) else False


def policy_source(ctx: CheckContext, policy_file: str) -> str:
    """Where the values of one policy file came from, as messages show it: relative to the working directory
    when the file lies below it."""
    where = ctx.policy.source_of(policy_file)
    path = Path(where)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return where
    return where


def _source(ctx: CheckContext, policy_file: str, key: str) -> str:
    return f"{key} of {policy_source(ctx, policy_file)}"


# -- rules
# ------------------------------------------------------------------------------------------------------
@rule(
    "gpu-nodepool-taints-gpu",
    title="GPU pools taint nvidia.com/gpu",
    area="karpenter",
    rule_class=RuleClass.POLICY,
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
    if not _switch(ctx, "instance-types", "nodePools", "requireGpuTaint"):
        return  # a best practice, judged only when the policy in force switches it on
    for pool in gpu_nodepools(ctx):
        effects = {t.get("effect") for _, t in pool.gpu_taints()}
        if effects & {"NoSchedule", "NoExecute"}:
            continue
        found = f" (it has effect {sorted(str(e) for e in effects)})" if effects else ""
        required = _source(ctx, "instance-types", "nodePools.requireGpuTaint")
        yield Violation(pool.doc, f"GPU NodePool {pool.name} ({required}) does not taint its nodes nvidia.com/gpu with "
                                  f"NoSchedule{found}; any pod may schedule onto its GPU nodes",
                        path=TAINTS if pool.doc.get(TAINTS) is not None else TEMPLATE_SPEC)


@rule(
    "gpu-nodepool-instance-types-allowed",
    title="GPU pools launch only allowed GPU instance types",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    rationale="""Karpenter launches any instance type its NodePool requirements admit (the cheapest that fits
    the pending pods): the admissible types are derived as Karpenter derives them, from every requirement
    (instance-type, family, category, generation, size, cpu, memory, gpu-name/-count/-memory/-manufacturer, arch;
    In/NotIn/Exists/DoesNotExist/Gt/Lt/Gte/Lte, kubernetes-sigs/karpenter pkg/scheduling/requirement.go) against
    the labels of every GPU type of the bundled AWS GPU instance catalogue. An organisation that reviews each GPU
    type it runs (GPU model, memory, price) lists them in instance-types.yaml `allowedInstanceTypes`; a GPU pool
    that admits a type outside that list fails. Without an allow-list in the policy in force nothing is
    judged.""",
    fix="Bound the pool to the allowed types (a `node.kubernetes.io/instance-type` In requirement, or family/"
        "size requirements that admit only them), or add the type to allowedInstanceTypes after review.",
    sources=("https://karpenter.sh/docs/concepts/nodepools/#spectemplatespecrequirements",
             "kubernetes-sigs/karpenter pkg/scheduling/requirement.go"),
)
def gpu_nodepool_instance_types_allowed(ctx: CheckContext) -> Iterator[Violation]:
    allowed = ctx.policy.instance_types.get("allowedInstanceTypes") or []
    if not allowed:
        return
    source = _source(ctx, "instance-types", "allowedInstanceTypes")
    for pool in gpu_nodepools(ctx):
        req = next((r for r in pool.requirements if r.key == INSTANCE_TYPE and r.operator == "In"), None)
        if pool.instance_types is not None:
            # instance types without GPUs (not in the catalogue, not a p/g type) are not the allow-list's business
            outside = [t for t in pool.instance_types if t not in allowed
                       and (instance_facts(ctx.policy, t) is not None or category(t) in GPU_CATEGORIES)]
            how = "lists"
        else:
            outside = [s.instance_type for s in shapes_of(ctx, pool).shapes
                       if s.instance_type is not None and s.instance_type not in allowed]
            how = "admits"
        if not outside:
            continue
        shown = ", ".join(outside[:8]) + (f" and {len(outside) - 8} more" if len(outside) > 8 else "")
        yield Violation(pool.doc, f"GPU NodePool {pool.name} {how} GPU instance types outside the allow-list "
                                  f"({source}: {', '.join(sorted(allowed))}): {shown}",
                        path=(*req.path, "values") if req is not None else REQUIREMENTS)


@rule(
    "nodepool-nodeclass-resolves",
    title="every NodePool's nodeClassRef names a node class that exists",
    area="karpenter",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A NodePool whose `nodeClassRef` names no node class never becomes Ready and launches nothing:
    Karpenter marks it `NodeClassReady=False` and its pods stay Pending (kubernetes-sigs/karpenter
    pkg/controllers/nodepool/readiness). The reference is by group, kind and name, and the node class is
    cluster-scoped. Self-managed Karpenter on AWS uses `karpenter.k8s.aws` `EC2NodeClass`; EKS Auto Mode uses
    `eks.amazonaws.com` `NodeClass`, whose built-in `default` exists without any object in the manifests
    (docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html). A node class that is not in the set may come
    from a chart, Terraform or another repository: it is listed as not checked unless the set is declared
    complete. Only karpenter.sh/v1 NodePools are judged (older API versions go to the removed-API rule).""",
    fix="Point spec.template.spec.nodeClassRef at a node class of the set ({group: karpenter.k8s.aws, kind: "
        "EC2NodeClass, name: <name>}, or {group: eks.amazonaws.com, kind: NodeClass, name: default} on EKS Auto "
        "Mode) or add that node class.",
    sources=("kubernetes-sigs/karpenter pkg/controllers/nodepool/readiness/controller.go",
             "https://karpenter.sh/docs/concepts/nodeclasses/",
             "https://docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html"),
)
def nodepool_nodeclass_resolves(ctx: CheckContext) -> Iterator[Violation]:
    for pool in nodepools(ctx):
        ref = pool.nodeclass_ref
        if ref is None:
            yield Violation(pool.doc, f"NodePool {pool.name} has no spec.template.spec.nodeClassRef",
                            path=TEMPLATE_SPEC)
            continue
        group, kind, name = ref.get("group"), ref.get("kind"), ref.get("name")
        if group == "karpenter.k8s.aws" and kind != "EC2NodeClass":
            yield Violation(pool.doc, f"NodePool {pool.name} nodeClassRef is {group}/{kind}: the only node "
                                      f"class of group karpenter.k8s.aws is EC2NodeClass", path=NODECLASS_REF)
            continue
        if group == AUTO_MODE_GROUP and kind != "NodeClass":
            yield Violation(pool.doc, f"NodePool {pool.name} nodeClassRef is {group}/{kind}: the EKS Auto Mode "
                                      f"node class is kind NodeClass", path=NODECLASS_REF)
            continue
        if group == AUTO_MODE_GROUP and name == AUTO_MODE_DEFAULT_NODECLASS:
            continue
        found = [d for d in ctx.graph.of_kind(str(kind)) if d.group == group and d.name == name]
        if group == "karpenter.k8s.aws":
            found = [d for d in found if is_ec2nodeclass(d)]
        if found:
            continue
        others = sorted(d.name for d in ctx.graph.of_kind(str(kind)) if d.group == group)
        known = f" (in the set: {', '.join(others)})" if others else ""
        yield from ctx.missing(pool.doc, (*NODECLASS_REF, "name"),
                               f"NodePool {pool.name} references {kind} {name!r}, which is not in the set "
                               f"(group {group}{'; ' + known[2:-1] if known else ''})")


@rule(
    "nodepool-limits-reachable",
    title="NodePool limits are mutually reachable",
    area="karpenter",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Karpenter launches a node only while the node's capacity fits what remains of EVERY limit
    (kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go: instance types whose
    capacity exceeds the remaining resources are filtered out; pkg/apis/v1/nodepool.go `Limits.ExceededBy`).
    So a GPU limit that the cpu or memory limits stop short of is a promise the pool never keeps: with the
    seed's `memory: 4000Gi`, p5.48xlarge nodes (2048 GiB; Karpenter counts 1894.4 GiB after its 7.5% VM-memory
    overhead, aws/karpenter-provider-aws pkg/providers/instancetype/types.go) stop at 2 nodes = 16 of the 64
    GPUs. Capacity is estimated as Karpenter does before launch: vCPUs, memory less `vmMemoryOverheadPercent`
    (policies/cluster.yaml karpenter, default 0.075). The pool's instance types are those its requirements admit
    (its instance-type list, or every GPU type of the catalogue its family/size/... requirements admit); the rule
    fires only when NO fleet of them fits the GPU limit inside the cpu and memory limits (the limit times the
    best GPUs-per-vCPU / per-GiB ratio of any admissible type stays below it). A NodeOverlay (karpenter.sh/v1alpha1)
    of the set that sets `capacity: nvidia.com/gpu` (GPU time-slicing) is counted as Karpenter counts it
    (kubernetes-sigs/karpenter pkg/controllers/nodeoverlay/store.go); in a partial set without overlays one may
    live elsewhere, so the finding is then listed as not checked unless the set is declared complete.""",
    fix="Raise (or drop) the cpu/memory limits so that the GPU limit fits inside them — or lower the GPU limit "
        "to what the other limits allow.",
    sources=("kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/scheduler.go",
             KARPENTER_SOURCES, "aws/karpenter-provider-aws pkg/providers/instancetype/types.go"),
)
def nodepool_limits_reachable(ctx: CheckContext) -> Iterator[Violation]:
    for pool in gpu_nodepools(ctx):
        gpu_limit = pool.limits.get(GPU_RESOURCE)
        if gpu_limit is None:
            continue
        others = {k: v for k, v in pool.limits.items() if k in ("cpu", "memory")}
        found = shapes_of(ctx, pool)
        if not others or any(not s.modelled for s in found.shapes):
            continue  # nothing to compare, or a listed type has no facts: no certain finding
        capacities = [(s.instance_type or "", capacity_of(ctx, s)) for s in found.shapes if s.facts is not None]
        capacities = [(name, c) for name, c in capacities if c[GPU_RESOURCE] > 0]
        if not capacities:
            continue
        # The most GPUs ANY fleet within the cpu/memory limits can hold: for each limited resource, the limit
        # times the best GPUs-per-unit ratio of an admissible type. Below the GPU limit, no fleet reaches it.
        ceiling: Decimal | None = None
        for resource, limit in others.items():
            ratio = max(c[GPU_RESOURCE] / c[resource] for _, c in capacities if c[resource] > 0)
            bound = limit * ratio
            ceiling = bound if ceiling is None else min(ceiling, bound)
        if ceiling is None or ceiling >= gpu_limit:
            continue
        short: list[str] = []
        for name, capacity in capacities:
            wanted, _ = max_nodes({GPU_RESOURCE: gpu_limit}, capacity)
            allowed, binding = max_nodes(others, capacity)
            if wanted is None or allowed is None or binding is None or allowed >= wanted:
                continue
            short.append(
                f"{name}: {binding} limit {format_resource(binding, others[binding])} admits {allowed} "
                f"node(s) of {format_resource(binding, capacity[binding])} each = "
                f"{allowed * int(capacity[GPU_RESOURCE])} of the {format_resource(GPU_RESOURCE, gpu_limit)} GPUs")
        shown = short[:6] + ([f"and {len(short) - 6} more types"] if len(short) > 6 else [])
        message = (f"NodePool {pool.name}: the nvidia.com/gpu limit {format_resource(GPU_RESOURCE, gpu_limit)} is "
                   f"unreachable — no fleet of its instance types within its cpu/memory limits holds more than "
                   f"{int(ceiling)} GPUs; " + "; ".join(shown))
        if node_overlays(ctx):
            yield Violation(pool.doc, message + " (NodeOverlays of the set counted)", path=LIMITS,
                            details=tuple(short))
            continue
        # GPU sharing told to Karpenter by a NodeOverlay (time-slicing: several nvidia.com/gpu per GPU) may live
        # outside a partial set: then the finding is not certain.
        yield from ctx.missing(pool.doc, LIMITS, message + " — unless a NodeOverlay outside the set raises "
                               "nvidia.com/gpu per node (GPU time-slicing)")


@rule(
    "spot-pool-weight-below-on-demand",
    title="spot pool weight is below on-demand",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    rationale="""Karpenter tries NodePools in descending `weight` order (a pool without weight counts as 0;
    kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `Weight`; karpenter.sh/docs/concepts/scheduling/#weighted-
    nodepools). When the policy in force sets spot.yaml `spotPoolsWeighBelowOnDemand`, a spot-only GPU pool must
    weigh less than every GPU pool that offers on-demand capacity so that
    those pools are tried first and the spot-only pool is overflow. Weight alone does not keep a workload on
    on-demand: in a pool that allows both capacity types Karpenter prefers spot unless the pod itself requires
    on-demand (karpenter.sh/docs/concepts/scheduling/#capacity-type: "Karpenter prioritizes Spot offerings if the
    NodePool allows Spot and on-demand instances"; aws/karpenter-provider-aws
    website/content/en/docs/concepts/scheduling.md). Workloads that must not run on spot therefore set
    `nodeSelector: {karpenter.sh/capacity-type: on-demand}` (or the equivalent required node affinity); this rule
    only orders the pools.""",
    fix="Give the spot-only pool a lower spec.weight than every GPU pool offering on-demand (or raise theirs); "
        "pods that must not run on spot require `karpenter.sh/capacity-type: on-demand` in their nodeSelector.",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/scheduling/#weighted-nodepools",
             "https://karpenter.sh/docs/concepts/scheduling/#capacity-type"),
)
def spot_pool_weight_below_on_demand(ctx: CheckContext) -> Iterator[Violation]:
    if not ctx.policy.spot.get("spotPoolsWeighBelowOnDemand"):
        return  # an organisation's ordering choice (spot.yaml spotPoolsWeighBelowOnDemand)
    pools = gpu_nodepools(ctx)
    on_demand = [p for p in pools if p.offers_on_demand]
    for spot in (p for p in pools if p.spot_only):
        heavier = [p for p in on_demand if p.weight <= spot.weight]
        if heavier:
            names = ", ".join(f"{p.name} (weight {p.weight})" for p in heavier)
            yield Violation(spot.doc, f"spot-only NodePool {spot.name} has weight {spot.weight}, not below the "
                                      f"GPU pool(s) offering on-demand {names}, so Karpenter does not try it "
                                      f"after them",
                            path=("spec", "weight") if spot.doc.get(("spec", "weight")) is not None
                            else ("spec",))


@rule(
    "ec2nodeclass-ami-pinned",
    title="EC2NodeClasses pin their AMI version",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    severity=Severity.WARNING,
    rationale="""An `alias: <family>@latest` AMI selector resolves to each new AMI as AWS publishes it; Karpenter
    then marks every node of the class as drifted and replaces it, so an untested AMI rolls through all GPU nodes
    by itself. Karpenter "heavily recommends against" @latest outside pre-production and recommends pinning a
    version and rolling newer ones out in stages (karpenter.sh/docs/tasks/managing-amis). A best practice: judged
    when instance-types.yaml `nodeClasses.requirePinnedAmi` is on.""",
    fix="Pin the alias to a version (e.g. `al2023@v20250915`) and roll new versions out deliberately.",
    sources=("https://karpenter.sh/docs/tasks/managing-amis/",),
)
def ec2nodeclass_ami_pinned(ctx: CheckContext) -> Iterator[Violation]:
    if not _switch(ctx, "instance-types", "nodeClasses", "requirePinnedAmi"):
        return
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        if not is_ec2nodeclass(doc):
            continue
        for i, term in enumerate(doc.spec.get("amiSelectorTerms") or []):
            alias = term.get("alias") if isinstance(term, dict) else None
            if isinstance(alias, str) and alias.endswith("@latest"):
                yield Violation(doc, f"amiSelectorTerms[{i}] alias {alias} follows every new AMI",
                                details=(f"required by "
                                         f"{_source(ctx, 'instance-types', 'nodeClasses.requirePinnedAmi')}",),
                                path=("spec", "amiSelectorTerms", i, "alias"))


@rule(
    "ec2nodeclass-requires-imdsv2",
    title="EC2NodeClasses require IMDSv2",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    rationale="""With `httpTokens: optional` a pod that reaches the instance metadata service reads the node
    role's credentials with a plain GET (IMDSv1). The EC2NodeClass CRD defaults metadataOptions to
    `httpTokens: required` with hop limit 1 (aws/karpenter-provider-aws pkg/apis/crds
    karpenter.k8s.aws_ec2nodeclasses.yaml), so an absent metadataOptions is fine; only an explicit `optional`
    fails. A security best practice: judged when instance-types.yaml `nodeClasses.requireImdsv2` is on.""",
    fix="Set spec.metadataOptions.httpTokens: required (or remove the override).",
    sources=("aws/karpenter-provider-aws pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml",
             "https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html"),
)
def ec2nodeclass_requires_imdsv2(ctx: CheckContext) -> Iterator[Violation]:
    if not _switch(ctx, "instance-types", "nodeClasses", "requireImdsv2"):
        return
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        if not is_ec2nodeclass(doc):
            continue
        tokens = doc.get(("spec", "metadataOptions", "httpTokens"))
        if tokens is not None and tokens != "required":
            yield Violation(doc, f"EC2NodeClass {doc.name} sets metadataOptions.httpTokens: {tokens}; IMDSv1 "
                                 f"hands the node role's credentials to any pod that can reach "
                                 f"169.254.169.254 ({_source(ctx, 'instance-types', 'nodeClasses.requireImdsv2')})",
                            path=("spec", "metadataOptions", "httpTokens"))


# aws/karpenter-provider-aws pkg/apis/v1/ec2nodeclass.go `amiFamilyFromAlias`: the part before "@" must equal a
# family name in lower case exactly (the CRD lists these six alias families).
ALIAS_FAMILIES = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket", "windows2019": "Windows2019",
                  "windows2022": "Windows2022", "windows2025": "Windows2025"}
CUSTOM_FAMILY = "Custom"


@dataclass(frozen=True)
class ResolvedFamily:
    family: str | None
    """None when an alias names a family Karpenter does not know (the controller cannot resolve it)."""
    source: str
    path: FieldPath


def resolve_ami_family(doc: Document) -> ResolvedFamily:
    """The AMI family Karpenter uses for an EC2NodeClass, in upstream's order of precedence
    (aws/karpenter-provider-aws pkg/apis/v1/ec2nodeclass.go `AMIFamily()`): spec.amiFamily, then the family of
    the first amiSelectorTerms alias, else Custom (unreachable: the CRD requires one of the two)."""
    family = doc.get(("spec", "amiFamily"))
    if family is not None:
        return ResolvedFamily(str(family), f"amiFamily {family}", ("spec", "amiFamily"))
    terms = doc.get(("spec", "amiSelectorTerms"))
    for i, term in enumerate(terms if isinstance(terms, list) else []):
        alias = term.get("alias") if isinstance(term, Mapping) else None
        if alias:
            prefix = str(alias).split("@", 1)[0]
            return ResolvedFamily(ALIAS_FAMILIES.get(prefix), f"alias {alias}",
                                  ("spec", "amiSelectorTerms", i, "alias"))
    return ResolvedFamily(CUSTOM_FAMILY, "neither amiFamily nor an alias", ("spec",))


@rule(
    "ec2nodeclass-encrypts-volumes",
    title="EC2NodeClasses encrypt their EBS volumes",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    rationale="""GPU nodes hold model weights and request data on their volumes. When blockDeviceMappings is
    omitted, Karpenter applies the AMI family's default mappings (aws/karpenter-provider-aws
    pkg/providers/amifamily/resolver.go: `if len(resolved.BlockDeviceMappings) == 0 { resolved.BlockDeviceMappings
    = amiFamily.DefaultBlockDeviceMappings() }`). The family is resolved as upstream does
    (pkg/apis/v1/ec2nodeclass.go `AMIFamily()`: spec.amiFamily first, then the alias's family): AL2, AL2023,
    Bottlerocket and Windows default to `DefaultEBS{Encrypted: true}` volumes — also with an `id`/`tags` AMI
    selector when amiFamily names one of them — while `Custom` returns no mappings
    (pkg/providers/amifamily/custom.go), so the AMI's own, unknown, block devices apply — even with an alias,
    since an explicit `amiFamily: Custom` wins over it. An explicit mapping replaces the default: without
    `encrypted: true` the volume's encryption depends on the account's EBS-encryption-by-default setting, which
    the manifests do not show. A security best practice: judged when instance-types.yaml
    `nodeClasses.requireEncryptedVolumes` is on.""",
    fix="Set `ebs.encrypted: true` on every spec.blockDeviceMappings entry (and `rootVolume: true` on the "
        "root one); with amiFamily Custom, list the root volume explicitly.",
    sources=("aws/karpenter-provider-aws pkg/providers/amifamily/resolver.go",
             "aws/karpenter-provider-aws pkg/apis/v1/ec2nodeclass.go",
             "aws/karpenter-provider-aws pkg/providers/amifamily/custom.go",
             "aws/karpenter-provider-aws pkg/providers/amifamily/al2023.go"),
)
def ec2nodeclass_encrypts_volumes(ctx: CheckContext) -> Iterator[Violation]:
    if not _switch(ctx, "instance-types", "nodeClasses", "requireEncryptedVolumes"):
        return
    for doc in ctx.graph.of_kind("EC2NodeClass"):
        if not is_ec2nodeclass(doc):
            continue
        mappings = doc.get(("spec", "blockDeviceMappings"))
        if not mappings:
            resolved = resolve_ami_family(doc)
            if resolved.family == CUSTOM_FAMILY:
                yield Violation(doc, f"EC2NodeClass {doc.name} has no blockDeviceMappings and its AMI family "
                                     f"resolves to Custom ({resolved.source}): Karpenter sets no default "
                                     f"volumes, so the AMI's own block devices (encryption unknown) apply ("
                                     f"{_source(ctx, 'instance-types', 'nodeClasses.requireEncryptedVolumes')})",
                                path=resolved.path)
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
            yield Violation(doc, f"EC2NodeClass {doc.name} volume {device}: ebs.encrypted {said} ("
                                 f"{_source(ctx, 'instance-types', 'nodeClasses.requireEncryptedVolumes')})",
                            path=("spec", "blockDeviceMappings", i, "ebs", "encrypted")
                            if isinstance(ebs, Mapping) else ("spec", "blockDeviceMappings", i))


# -- disruption budgets
# -------------------------------------------------------------------------------------------
# The budget model (parsing, Karpenter's robfig/cron dialect, activity in UTC, allowed disruptions, fail-closed
# handling of an unparseable schedule) is gpu_policy.graph.nodes.budgets, shared with the week simulation.
CRON_FIX = ("Write the schedule as the 5-field UTC cron Karpenter parses (robfig/cron ParseStandard): minute "
            "hour day-of-month month day-of-week, day of week 0-6 or SUN-SAT (Sunday is 0, not 7), no seconds "
            "field, no L, W, # or TZ=.")


@rule(
    "disruption-budget-schedule-parses",
    title="disruption budget schedules are cron Karpenter accepts",
    area="karpenter",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A budget's `schedule` must be cron Karpenter can parse: it reads it with robfig/cron v3
    `ParseStandard("TZ=UTC " + schedule)` (kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `IsActive`), which
    rejects what the CRD pattern and many cron tools accept — `7` for Sunday, `L`, `W`, `#`, a seconds field —
    and on such a budget `GetAllowedDisruptions` fails closed: `MustGetAllowedDisruptions` allows 0 disruptions
    for every reason, so the pool is never consolidated and drifted nodes (new AMIs) are never replaced.""",
    fix=CRON_FIX,
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#nodepool-disruption-budgets",
             "robfig/cron v3 parser.go"),
)
def disruption_budget_schedule_parses(ctx: CheckContext) -> Iterator[Violation]:
    for pool in nodepools(ctx):
        for budget in fails_closed(declared_budgets(pool.doc)):
            yield Violation(pool.doc, f"NodePool {pool.name} budget schedule {budget.schedule!r} is not a cron "
                                      f"Karpenter accepts: {budget.schedule_error}. Karpenter fails closed on "
                                      f"it and voluntarily disrupts none of the pool's nodes (no "
                                      f"consolidation, no drift replacement) until it is fixed",
                            path=(*budget.path, "schedule"), fix=CRON_FIX)


@rule(
    "disruption-budgets-within-max-percent",
    title="disruption budgets stay within the policy's maximum percentage",
    area="karpenter",
    rule_class=RuleClass.POLICY,
    rationale="""A budget's `nodes` caps how many of the pool's nodes Karpenter disrupts at once (a percentage
    is rounded UP against the node count; kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go
    `GetAllowedDisruptions`). An organisation that sets budgets.yaml `maxDisruptionPercent` keeps every
    percentage budget of its GPU pools at or below it, so that draining does not drop serving capacity below what
    the models need while replacements boot. Scheduled budgets limit only while active and a budget with
    `reasons` limits only those reasons: when no always-active budget covers a reason, nothing limits that reason
    outside the windows (Karpenter's default 10% applies only when `budgets` is omitted). Absolute counts are
    accepted. Not judged without maxDisruptionPercent in the policy in force, nor on a pool whose schedule
    Karpenter cannot parse (it then disrupts nothing; disruption-budget-schedule-parses reports it).""",
    fix="Keep every percentage budget at or below the policy's maxDisruptionPercent and keep one always-active "
        "budget without `reasons` (e.g. `- nodes: \"20%\"`).",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#nodepool-disruption-budgets"),
)
def disruption_budgets_within_max_percent(ctx: CheckContext) -> Iterator[Violation]:
    configured = ctx.policy.budgets.get("maxDisruptionPercent")
    if configured is None:
        return
    ceiling = Decimal(str(configured))
    source = f"maxDisruptionPercent {ceiling}% of {policy_source(ctx, 'budgets')}"
    for pool in gpu_nodepools(ctx):
        found = declared_budgets(pool.doc)
        if fails_closed(found):
            continue  # Karpenter disrupts nothing at all; disruption-budget-schedule-parses reports it
        if found is None:
            if Decimal(10) > ceiling:
                yield Violation(pool.doc, f"NodePool {pool.name} has no budgets: Karpenter's default 10% "
                                          f"exceeds the {source}", path=DISRUPTION)
            continue
        for budget in found:
            if budget.nodes.endswith("%"):
                try:
                    percent = Decimal(budget.nodes[:-1])
                except ArithmeticError:
                    continue
                if percent > ceiling:
                    yield Violation(pool.doc, f"NodePool {pool.name} budget nodes {budget.nodes} lets "
                                              f"Karpenter disrupt more of its nodes at once than the {source}",
                                    path=(*budget.path, "nodes"))
        unlimited = [r for r in DISRUPTION_REASONS
                     if not any(b.always_active and b.applies_to(r) for b in found)]
        if unlimited:
            yield Violation(pool.doc, f"NodePool {pool.name} has no always-active budget for "
                                      f"{', '.join(unlimited)}: outside its scheduled windows Karpenter may "
                                      f"disrupt every node at once for those reasons ({source})", path=BUDGETS)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


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
    rule_class=RuleClass.POLICY,
    rationale="""When budgets.yaml sets `businessHoursFreeze: required`, a `nodes: "0"` budget must block
    voluntary disruption during the business hours of cluster.yaml (an organisation's choice: nothing is judged
    without both). Karpenter evaluates a budget's `schedule` as cron in UTC —
    time zones are not supported (kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `IsActive` parses `TZ=UTC
    <schedule>`) — and keeps it active for `duration` after each hit. The seed's `0 9 * * 1-5` + 8h is
    09:00-17:00 UTC = 18:00-02:00 in Seoul: the freeze protects the night and leaves the working day open. The
    check converts the business hours with the real time zone (zoneinfo) for two sample weeks, mid-January and
    mid-July of the current year, so both sides of a DST change count, and requires every minute frozen for
    EVERY disruption reason (Underutilized, Empty, Drifted): a freeze with `reasons` still lets the other
    reasons disrupt. A finding describes the sample week in which the gap occurs (for a DST zone, the July
    conversion when only summer is open). A pool with a schedule Karpenter cannot parse is not judged here:
    Karpenter then allows no voluntary disruption at all (`MustGetAllowedDisruptions` fails closed), and
    disruption-budgets-within-max-percent reports the schedule.""",
    fix="Write the freeze in UTC: convert the local business hours to UTC (and for DST zones widen the "
        "window to "
        "cover both offsets); drop `reasons` from the freeze or add freezes for the missing reasons.",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#schedule"),
)
def business_hours_freeze_in_utc(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.policy.budgets.get("businessHoursFreeze") != "required":
        return
    hours = ctx.policy.cluster.get("businessHours")
    if not isinstance(hours, Mapping) or not hours.get("days"):
        return  # a freeze is required but no business hours are configured: nothing to compare against
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
    local = (f"{'/'.join(hours['days'])} {hours['start']}-{hours['end']} {zone.key}, businessHours of "
             f"{policy_source(ctx, 'cluster')}")
    for pool in gpu_nodepools(ctx):
        yield from _check_freeze(pool, targets, horizon_start, horizon_end, zone, local, cron, duration)


def _check_freeze(pool: NodePool, targets: list[tuple[Interval, dt.datetime]], horizon_start: dt.datetime,
                  horizon_end: dt.datetime, zone: ZoneInfo, local: str, cron: str,
                  duration: str) -> Iterator[Violation]:
    fix = (f"Use a budget {{nodes: \"0\", schedule: \"{cron}\", duration: {duration}}} (cron is UTC) "
           f"without reasons.")
    found = declared_budgets(pool.doc)
    if fails_closed(found):
        # Karpenter allows no voluntary disruption at all while a schedule is unparseable, business hours
        # included; disruption-budgets-within-max-percent reports the broken schedule.
        return
    freezes = [b for b in found or [] if b.freezes]
    if not freezes:
        yield Violation(pool.doc, f"NodePool {pool.name} has no nodes: \"0\" budget: Karpenter may disrupt "
                                  f"GPU nodes during business hours ({local})",
                        path=BUDGETS if pool.doc.get(BUDGETS) is not None else DISRUPTION, fix=fix)
        return
    windows = {b.index: b.active_windows(horizon_start, horizon_end) for b in freezes}
    # reason -> (unfrozen part, the business-hours interval it belongs to)
    gaps: dict[str, tuple[Interval, Interval]] = {}
    for reason in DISRUPTION_REASONS:
        applicable = [w for b in freezes if b.applies_to(reason) for w in windows[b.index]]
        for target, _ in targets:
            gap = uncovered(target, applicable)
            if gap is not None:
                gaps[reason] = (gap, target)
                break
    if not gaps:
        return
    reasons = sorted(gaps)
    gap, target = min((gaps[r] for r in reasons), key=lambda item: item[0][0])
    # Describe the week in which the gap occurs: for a DST zone the UTC business hours differ between the
    # sample weeks, and the January conversion says nothing about a July gap.
    week = ""
    if len({t[0].astimezone(zone).utcoffset() for t, _ in targets}) > 1:
        local_day = target[0].astimezone(zone).date()
        week = f" in the week of {local_day - dt.timedelta(days=local_day.weekday())}"
    first = freezes[0]
    described = "; ".join(
        f"schedule {b.schedule!r} for {_duration_text(b.duration_seconds)}"
        + (f" (reasons {sorted(b.reasons)})" if b.reasons is not None else "")
        + f" is active {_describe(_window_near(windows[b.index], target), zone)}"
        for b in freezes if b.schedule is not None and windows[b.index]
    ) or "the freeze is never active"
    reason_text = "" if len(reasons) == len(DISRUPTION_REASONS) else f" for {', '.join(reasons)}"
    message = (f"NodePool {pool.name}: business hours {local} are "
               f"{_describe(target, zone).split(' = ')[0]}{week}; {described}; so Karpenter may disrupt "
               f"nodes{reason_text} during business hours (first unfrozen: "
               f"{gap[0].astimezone(zone):%a %Y-%m-%d %H:%M} "
               f"{zone.key}). Correct UTC freeze: schedule \"{cron}\", duration {duration}")
    yield Violation(pool.doc, message, path=(*first.path, "schedule") if first.schedule else first.path,
                    fix=fix)


def _window_near(windows: list[Interval], target: Interval) -> Interval:
    """The window that matters for `target`: the first overlapping it, else the last before it, else the first."""
    overlapping = [w for w in windows if w[0] < target[1] and w[1] > target[0]]
    if overlapping:
        return min(overlapping)
    before = [w for w in windows if w[0] <= target[0]]
    return max(before) if before else min(windows)


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    h, m = divmod(minutes, 60)
    return f"{h}h" + (f"{m}m" if m else "")
