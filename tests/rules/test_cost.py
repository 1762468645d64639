"""Cost rules: the worst-case fleet search against exhaustive enumeration, and the seed's ceiling."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

from gpu_policy.graph.nodes.catalogue import instance_facts
from gpu_policy.graph.nodes.resources import GIB, karpenter_capacity
from gpu_policy.rules.cost import FleetOption, most_expensive_fleet
from tests.rules._helpers import POLICY, run_rule
from tests.rules._karpenter_docs import deployment, nodepool


def _option(name: str) -> FleetOption:
    return FleetOption(name, karpenter_capacity(instance_facts(POLICY, name) or {}, 0.075),
                       Decimal(str(POLICY.cost["onDemandHourlyUSD"][name])))


def test_seed_inference_pool_worst_case_is_two_p5() -> None:
    limits = {"cpu": Decimal(1000), "memory": Decimal(4000) * GIB, "nvidia.com/gpu": Decimal(64)}
    cost, counts, exact = most_expensive_fleet([_option(t) for t in ("p4d.24xlarge", "p5.48xlarge",
                                                                    "g5.48xlarge")], limits)
    assert exact and counts == {"p4d.24xlarge": 0, "p5.48xlarge": 2, "g5.48xlarge": 0}
    assert cost == Decimal("110.08")


def test_search_matches_exhaustive_enumeration() -> None:
    rng = random.Random(7)
    for _ in range(40):
        options = [FleetOption(f"t{i}", {"cpu": Decimal(rng.randint(1, 9)),
                                         "gpu": Decimal(rng.randint(0, 4))},
                               Decimal(rng.randint(1, 30))) for i in range(3)]
        limits = {"cpu": Decimal(rng.randint(5, 30)), "gpu": Decimal(rng.randint(1, 12))}
        best = Decimal(0)
        for counts in itertools.product(range(31), repeat=3):
            if all(sum(o.capacity[r] * n for o, n in zip(options, counts, strict=True)) <= limits[r]
                   for r in limits):
                best = max(best, sum((o.price * n for o, n in zip(options, counts, strict=True)), Decimal(0)))
        assert most_expensive_fleet(options, limits)[0] == best


def test_fleet_over_budget_names_the_largest_pool_with_a_breakdown() -> None:
    text = nodepool("big", types='["p5.48xlarge"]', limits='{nvidia.com/gpu: "256"}')
    [(resource, message)] = run_rule("gpu-fleet-cost-within-budget", text)
    assert resource == "NodePool/big" and "$1761.28/h" in message


def test_pool_without_limits_is_unbounded() -> None:
    [(_, message)] = run_rule("gpu-fleet-cost-within-budget", nodepool("gpu", limits="{}"))
    assert "no limit bounds it" in message


def test_spot_tolerant_gpu_workload_without_spot_pool_warns() -> None:
    pod = """\
      containers: [{name: vllm, image: vllm, resources: {limits: {nvidia.com/gpu: 1}}}]
"""
    labels = '{gpu-policy.io/spot-tolerant: "true"}'
    text = nodepool("od") + deployment("batch", pod, labels=labels)
    [(resource, message)] = run_rule("spot-tolerant-workloads-use-spot", text)
    assert resource == "Deployment/inference/batch" and "no spot-capable NodePool admits it" in message
    mixed = nodepool("mixed", capacity='["on-demand", "spot"]') + deployment("batch", pod, labels=labels)
    assert run_rule("spot-tolerant-workloads-use-spot", mixed) == []
