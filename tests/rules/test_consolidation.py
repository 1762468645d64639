"""Consolidation rules: durations compare as durations; GPU pools must be in the policy map."""

from __future__ import annotations

from tests.rules._helpers import run_rule
from tests.rules._karpenter_docs import nodepool


def test_equal_durations_in_other_spelling_pass() -> None:
    text = nodepool("gpu-inference-pool", disruption="{consolidateAfter: 0m30s}")
    assert run_rule("consolidation-matches-policy", text) == []


def test_default_policy_is_compared() -> None:
    [(_, message)] = run_rule("consolidation-matches-policy",
                              nodepool("gpu-spot-pool", disruption="{consolidateAfter: 30s}"))
    assert "consolidationPolicy is WhenEmptyOrUnderutilized (default), the consolidation of" in message
    assert message.endswith("budgets.yaml wants WhenEmpty")


def test_gpu_pool_missing_from_the_policy_fails_cpu_pool_does_not() -> None:
    found = run_rule("consolidation-matches-policy", nodepool("gpu-batch"))
    assert [r for r, _ in found] == ["NodePool/gpu-batch"]
    cpu = nodepool("general", types='["m5.large"]', taints="[]", limits='{cpu: "100"}')
    assert run_rule("consolidation-matches-policy", cpu) == []


def test_never_fails_only_on_gpu_pools() -> None:
    never = "{consolidateAfter: Never}"
    assert len(run_rule("gpu-pool-consolidation-enabled", nodepool("gpu", disruption=never))) == 1
    cpu = nodepool("general", types='["m5.large"]', taints="[]", limits='{cpu: "100"}', disruption=never)
    assert run_rule("gpu-pool-consolidation-enabled", cpu) == []
