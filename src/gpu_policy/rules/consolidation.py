"""Consolidation: each NodePool consolidates with the policy and delay the organisation chose, and GPU pools
never turn it off (an idle GPU node costs $16-55 an hour). Both are an organisation's choices: nothing is judged
unless budgets.yaml in the policy in force names the pool (or switches the GPU-pool rules on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpu_policy.graph.nodes.model import gpu_nodepools, nodepools
from gpu_policy.graph.quantities import parse_duration
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.karpenter import DISRUPTION, KARPENTER_SOURCES, policy_source
from gpu_policy.rules.registry import RuleClass, Violation, rule

DEFAULT_POLICY = "WhenEmptyOrUnderutilized"  # NodePool CRD default for spec.disruption.consolidationPolicy
NEVER = "Never"


def _same_delay(have: Any, want: str) -> bool:
    if have is None:
        return False
    if NEVER in (str(have), want):
        return str(have) == want
    return parse_duration(str(have)) == parse_duration(want)


@rule(
    "consolidation-matches-policy",
    title="each NodePool consolidates as the consolidation policy says",
    area="consolidation",
    rule_class=RuleClass.POLICY,
    rationale="""budgets.yaml `consolidation` maps each NodePool to its consolidationPolicy and
    consolidateAfter: WhenEmptyOrUnderutilized (the CRD default) lets Karpenter repack under-used GPU nodes,
    WhenEmpty only removes empty ones, and consolidateAfter is how long a node must stay consolidatable first
    (kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go Disruption). Delays are compared as durations (30s =
    0m30s). Only pools named in the map are judged; with `requireListedGpuPools: true` every GPU NodePool must
    appear in it (a GPU pool nobody reviewed for cost and disruption fails).""",
    fix="Set spec.disruption.consolidationPolicy and consolidateAfter to the values of budgets.yaml "
        "`consolidation` (or add the pool to the map after review).",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#consolidation"),
)
def consolidation_matches_policy(ctx: CheckContext) -> Iterator[Violation]:
    wanted: dict[str, dict[str, str]] = ctx.policy.budgets.get("consolidation") or {}
    listed_required = bool(ctx.policy.budgets.get("requireListedGpuPools"))
    source = f"consolidation of {policy_source(ctx, 'budgets')}"
    for pool in nodepools(ctx):
        want = wanted.get(pool.name)
        if want is None:
            if pool.gpu and listed_required:
                yield Violation(pool.doc, f"GPU NodePool {pool.name} is not in the {source} (pools there: "
                                          f"{', '.join(sorted(wanted)) or 'none'}; requireListedGpuPools is on)",
                                path=DISRUPTION)
            continue
        policy = pool.doc.get((*DISRUPTION, "consolidationPolicy"))
        have_policy = policy if isinstance(policy, str) else DEFAULT_POLICY
        if have_policy != want["policy"]:
            shown = have_policy if policy is not None else f"{DEFAULT_POLICY} (default)"
            yield Violation(pool.doc, f"NodePool {pool.name} consolidationPolicy is {shown}, the {source} "
                                      f"wants {want['policy']}",
                            path=(*DISRUPTION, "consolidationPolicy") if policy is not None else DISRUPTION)
        after = pool.doc.get((*DISRUPTION, "consolidateAfter"))
        if not _same_delay(after, want["consolidateAfter"]):
            shown = "not set" if after is None else str(after)
            yield Violation(pool.doc, f"NodePool {pool.name} consolidateAfter is {shown}, the {source} "
                                      f"wants {want['consolidateAfter']}",
                            path=(*DISRUPTION, "consolidateAfter") if after is not None else DISRUPTION)


@rule(
    "gpu-pool-consolidation-enabled",
    title="GPU pools never disable consolidation",
    area="consolidation",
    rule_class=RuleClass.POLICY,
    rationale="""`consolidateAfter: Never` turns consolidation off (kubernetes-sigs/karpenter
    pkg/apis/v1/nodepool.go: pattern `^(([0-9]+(s|m|h))+|Never)$`, Never disables): empty and under-used GPU
    nodes then run until they expire, at $16-55 an hour each. Voluntary disruption during business hours is
    limited with a budget instead, which keeps consolidation on the rest of the time. A cost choice: judged when
    budgets.yaml `gpuPoolsConsolidate: true` in the policy in force.""",
    fix="Set spec.disruption.consolidateAfter to a duration (budgets.yaml `consolidation` may give it per pool) "
        "and use a `nodes: \"0\"` budget to protect business hours.",
    sources=(KARPENTER_SOURCES, "https://karpenter.sh/docs/concepts/disruption/#consolidation"),
)
def gpu_pool_consolidation_enabled(ctx: CheckContext) -> Iterator[Violation]:
    if not ctx.policy.budgets.get("gpuPoolsConsolidate"):
        return
    for pool in gpu_nodepools(ctx):
        if pool.doc.get((*DISRUPTION, "consolidateAfter")) == NEVER:
            yield Violation(pool.doc, f"GPU NodePool {pool.name} sets consolidateAfter: Never — idle GPU nodes are "
                                      f"never consolidated", path=(*DISRUPTION, "consolidateAfter"))
