"""The week simulation of disruption budgets (gpu_policy.simulation.disruption) on the shared budget model."""

from __future__ import annotations

import datetime as dt

from gpu_policy.graph.nodes.budgets import REASONS, Budget, parse_budget
from gpu_policy.simulation.disruption import (
    BusinessHours,
    business_hour_violations,
    reference_week,
    week_table,
)

SEOUL = BusinessHours.from_policy({"businessHours": {"timeZone": "Asia/Seoul", "start": "09:00", "end": "17:00",
                                                     "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]}})


def _budgets(freeze_schedule: str) -> list[Budget]:
    return [parse_budget(0, {"nodes": "20%"}),
            parse_budget(1, {"nodes": "0", "schedule": freeze_schedule, "duration": "8h"})]


def test_utc_freeze_covers_seoul_business_hours() -> None:
    assert business_hour_violations(_budgets("0 0 * * 1-5"), 10, SEOUL, reference_week()) == []


def test_seed_freeze_leaves_seoul_business_hours_open() -> None:
    found = business_hour_violations(_budgets("0 9 * * 1-5"), 10, SEOUL, reference_week())
    first, allowed = found[0]
    assert first == reference_week()  # Mon 00:00 UTC = 09:00 KST, the freeze starts only at 09:00 UTC
    assert allowed == dict.fromkeys(REASONS, 2)  # 20% of 10


def test_rejected_schedule_simulates_as_no_disruption_at_all() -> None:
    # `0 9 * * 1-7` is the seed's wrong-hours freeze with 7 for Sunday. croniter would read it as a freeze over
    # 18:00-02:00 KST and find business hours open; Karpenter rejects the schedule and fails closed, so nothing
    # is ever voluntarily disrupted — in business hours or outside them.
    budgets = _budgets("0 9 * * 1-7")
    assert business_hour_violations(budgets, 10, SEOUL, reference_week()) == []
    assert {v for _, allowed in week_table(budgets, 10, reference_week()) for v in allowed.values()} == {0}
    # The same budgets with a schedule Karpenter accepts do disrupt during business hours.
    assert business_hour_violations(_budgets("0 9 * * 1-5"), 10, SEOUL, reference_week()) != []


def test_week_table_shows_the_freeze_hours() -> None:
    table = dict(week_table(_budgets("0 0 * * 1-5"), 10, reference_week()))
    monday = reference_week()
    assert table[monday + dt.timedelta(hours=7)] == dict.fromkeys(REASONS, 0)
    assert table[monday + dt.timedelta(hours=8)] == dict.fromkeys(REASONS, 2)
    assert table[monday + dt.timedelta(days=5, hours=3)] == dict.fromkeys(REASONS, 2)  # Saturday
