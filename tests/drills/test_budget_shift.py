"""budget_shift: the moved budgets say at real time t what the set's budgets say at t - delta (the project's port
of Karpenter's budget semantics on both sides), for the reference NodePool and the broken variants."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from gpu_policy.drills.budget_shift import business_end_after, shift_mapping, shifted_budgets
from gpu_policy.graph.nodes.budgets import allowed_by_reason, parse_budget
from gpu_policy.resources import fixtures_dir, reference_manifests_dir
from gpu_policy.simulation.disruption import BusinessHours

HOURS = BusinessHours.from_policy({"businessHours": {"timeZone": "Asia/Seoul", "start": "09:00", "end": "17:00",
                                                     "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]}})


def _budgets(path: str) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d]
    [pool] = [d for d in docs if d["metadata"]["name"] == "gpu-inference-pool"]
    return list(pool["spec"]["disruption"]["budgets"])


CASES = {
    "reference": str(reference_manifests_dir() / "karpenter" / "nodepools.yaml"),
    **{name: str(fixtures_dir() / "drills" / name / "manifests" / "nodepools.yaml")
       for name in ("consolidation-budget-never-allows", "consolidation-budget-always-allows",
                    "consolidation-freeze-in-utc")},
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("now", [dt.datetime(2026, 12, 2, 4, 51, 17, tzinfo=dt.UTC),
                                 dt.datetime(2026, 12, 5, 23, 59, 59, tzinfo=dt.UTC)])
def test_moved_budgets_at_real_time_equal_the_sets_at_policy_time(case: str, now: dt.datetime) -> None:
    raw = _budgets(CASES[case])
    end, _ = business_end_after(HOURS, now + dt.timedelta(seconds=120))
    assert HOURS.contains(end - dt.timedelta(minutes=1)) and not HOURS.contains(end)
    shift = shift_mapping(end, now + dt.timedelta(seconds=120))
    assert dt.timedelta(0) <= shift.to_real(end) - (now + dt.timedelta(seconds=120)) < dt.timedelta(minutes=1)
    moved = [parse_budget(i, b) for i, b in enumerate(shifted_budgets(raw, shift, now, now + dt.timedelta(hours=1)))]
    original = [parse_budget(i, b) for i, b in enumerate(raw)]
    assert not [b for b in moved if b.error], moved
    for seconds in range(0, 3600, 20):
        real = now + dt.timedelta(seconds=seconds)
        for nodes in (1, 3):
            assert allowed_by_reason(moved, nodes, real) == allowed_by_reason(original, nodes, shift.to_policy(real))


def test_the_reference_is_frozen_before_the_moved_business_end_and_allows_one_of_three_nodes_after() -> None:
    now = dt.datetime(2026, 12, 2, 4, 51, tzinfo=dt.UTC)
    raw = _budgets(CASES["reference"])
    end, _ = business_end_after(HOURS, now + dt.timedelta(seconds=120))
    shift = shift_mapping(end, now + dt.timedelta(seconds=120))
    moved = [parse_budget(i, b) for i, b in enumerate(shifted_budgets(raw, shift, now, now + dt.timedelta(hours=1)))]
    real_end = shift.to_real(end)
    assert allowed_by_reason(moved, 3, real_end - dt.timedelta(seconds=1))["Empty"] == 0
    assert allowed_by_reason(moved, 3, real_end)["Empty"] == 1
