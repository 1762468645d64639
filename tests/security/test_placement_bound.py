"""Issue 9: placement work (NodePools × pod templates) is bounded; past the limit the placement rules are listed as
not evaluated, with why, and one finding says so — never silently, never minutes of work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_policy.engine import RunOptions, RunResult, run_engine
from gpu_policy.graph.nodes import model
from gpu_policy.loading.limits import Limits

PLACEMENT_RULES = ("gpu-workload-lands-on-nodepool", "spot-pods-tolerate-gpu-taint")


def nodepool(i: int) -> dict[str, Any]:
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": f"gpu-{i}"},
            "spec": {"template": {"metadata": {"labels": {"pool": f"p{i}"}}, "spec": {
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "spot"]},
                    {"key": "node.kubernetes.io/instance-type", "operator": "In",
                     "values": ["p4d.24xlarge", "p5.48xlarge", "g5.48xlarge"]}],
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]}},
                "limits": {"cpu": "1536", "memory": "16384Gi", "nvidia.com/gpu": "64"}}}


def deployment(j: int, gpus: int = 1) -> dict[str, Any]:
    resources = {"nvidia.com/gpu": str(gpus), "cpu": "4", "memory": "16Gi"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"model-{j}", "namespace": "ml"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"m{j}"}}, "template": {
                "metadata": {"labels": {"app": f"m{j}"}}, "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.4",
                                    "resources": {"requests": resources, "limits": resources}}]}}}}


def write_set(folder: Path, pools: int, deployments: int, too_big: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nodepools.yaml").write_text(yaml.safe_dump_all([nodepool(i) for i in range(pools)]))
    (folder / "deployments.yaml").write_text(yaml.safe_dump_all(
        [deployment(j, 16 if j == too_big else 1) for j in range(deployments)]))
    return folder


def run(folder: Path, limits: Limits | None = None) -> RunResult:
    extra = {"limits": limits} if limits is not None else {}
    result = run_engine(RunOptions(paths=[str(folder)], complete=True, extra=extra,
                                   only=[*PLACEMENT_RULES, "manifest-is-readable"]))
    assert result.internal_errors == [], [e.error for e in result.internal_errors]
    return result


def test_within_the_limit_placement_is_judged(tmp_path: Path) -> None:
    result = run(write_set(tmp_path, 3, 4, too_big=2))
    lands = result.findings_for("gpu-workload-lands-on-nodepool")
    assert [f.resource for f in lands] == ["Deployment/ml/model-2"]
    assert "16" in lands[0].message
    assert not [f for f in result.findings_for("manifest-is-readable") if f.resource == "<placement>"]
    assert not [n for n in result.not_evaluated if "max_placement_pairs" in n.reason]


def test_past_the_limit_the_placement_rules_are_not_evaluated_and_one_finding_says_why(tmp_path: Path) -> None:
    result = run(write_set(tmp_path, 3, 4, too_big=2), Limits(max_placement_pairs=11))
    assert result.findings_for("gpu-workload-lands-on-nodepool") == []  # no verdict, not a pass
    [limit] = [f for f in result.findings_for("manifest-is-readable") if f.resource == "<placement>"]
    assert "3 NodePools × 4 pod templates = 12 placement pairs, over the limit of 11" in limit.message
    assert all(rule in limit.message for rule in PLACEMENT_RULES)
    assert limit.file is not None and limit.file.endswith("nodepools.yaml")
    reasons = [n.reason for n in result.not_evaluated]
    for rule in PLACEMENT_RULES:
        assert any(r.startswith(f"rule {rule}: not evaluated: 3 NodePools × 4 pod templates") for r in reasons), reasons


@pytest.mark.slow
def test_1500_pools_by_1500_templates_does_bounded_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case (it took 140 s): at the default limits no pool × instance type × template walk starts.
    Without the bound this set asks shape_rejects 1500 × 1500 × 3 times; more than 100,000 calls fails the test
    (raised inside a rule, it is an internal error) instead of running for minutes."""
    calls = {"n": 0}
    original = model.shape_rejects

    def counted(*args: Any, **kwargs: Any) -> str | None:
        calls["n"] += 1
        if calls["n"] > 100_000:
            raise RuntimeError("unbounded placement work: more than 100,000 pool × template × type checks")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "shape_rejects", counted)
    result = run(write_set(tmp_path, 1500, 1500))
    assert calls["n"] == 0
    [limit] = [f for f in result.findings_for("manifest-is-readable") if f.resource == "<placement>"]
    assert "1,500 NodePools × 1,500 pod templates = 2,250,000 placement pairs" in limit.message
