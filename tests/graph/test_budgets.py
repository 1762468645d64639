"""The disruption budget model (gpu_policy.graph.nodes.budgets) against Karpenter's and robfig/cron's behaviour."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from croniter import croniter

from gpu_policy.graph.nodes.budgets import (
    REASONS,
    Budget,
    CronSchedule,
    EverySchedule,
    allowed_by_reason,
    allowed_disruptions,
    declared_budgets,
    effective_budgets,
    parse_budget,
    parse_schedule,
    robfig_cron_error,
)
from gpu_policy.loading.document import Document
from gpu_policy.loading.yaml_reader import to_documents

UTC = dt.UTC
MONDAY = dt.datetime(2026, 1, 12, tzinfo=UTC)  # a Monday


def _pool(disruption: str) -> Document:
    text = f"""
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {{name: gpu}}
spec:
  disruption: {disruption}
"""
    [doc] = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    return doc


def _budget(**item: Any) -> Budget:
    return parse_budget(0, item)


# -- robfig/cron v3 ParseStandard: what Karpenter rejects -------------------------------------------------------
@pytest.mark.parametrize(("schedule", "why"), [
    ("0 0 * * 7", "7 for Sunday is not accepted"),
    ("0 0 * * 1-7", "7 for Sunday is not accepted"),
    ("0 0 L * *", "L, W and # are not part of Karpenter's cron dialect"),
    ("0 0 * * 5L", "L, W and # are not part of Karpenter's cron dialect"),
    ("0 0 * * 1#2", "L, W and # are not part of Karpenter's cron dialect"),
    ("0 0 15W * *", "L, W and # are not part of Karpenter's cron dialect"),
    ("0 0 0 * * 1-5", "expected exactly 5 fields"),
    ("", "expected exactly 5 fields"),
    ("TZ=Asia/Seoul 0 9 * * 1-5", "time zones are not supported"),
    ("0 24 * * *", "hour '24' goes above the maximum 23"),
    ("0 0 0 * *", "day of month '0' is below the minimum 1"),
    ("0 0 * * 5-1", "begins after it ends"),
    ("*/0 * * * *", "step in '*/0' must be positive"),
    ("R 0 * * *", "minute 'R' is not a number"),
    ("1-2-3 0 * * *", "too many hyphens"),
    ("*/2/3 0 * * *", "too many slashes"),
    ("@every 1h x y z", "unrecognized descriptor"),
])
def test_cron_karpenter_rejects(schedule: str, why: str) -> None:
    error = robfig_cron_error(schedule)
    assert error is not None and why in error


@pytest.mark.parametrize("schedule", [
    "0 0 * * 1-5", "0 0 * * MON-FRI", "0 0 * * sun", "0 0 ? * 0-6", "*/15 0-7 * * 1,3,5", "0 0 * jan-mar 5/1",
    "@daily", "@weekly", "@every 1h30m", " 0 0 * * 1-5 ",
])
def test_cron_karpenter_accepts(schedule: str) -> None:
    assert robfig_cron_error(schedule) is None


# -- robfig/cron Next -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [
    "0 9 * * 1-5", "0 0 * * 0-4", "*/15 0-7 * * 1,3,5", "30 23 31 * *", "0 0 1 */2 *",
    "5 4 * * sun", "0 0 29 2 *", "59 23 31 12 *", "0 */6 * * *",
])
def test_next_hits_agree_with_croniter_on_plain_cron(schedule: str) -> None:
    # croniter is an independent implementation; on cron both dialects read alike the hits must be identical.
    cron = parse_schedule(schedule)
    assert isinstance(cron, CronSchedule)
    ours, theirs = dt.datetime(2025, 12, 30, 7, 59, 30, tzinfo=UTC), croniter(schedule, dt.datetime(
        2025, 12, 30, 7, 59, 30, tzinfo=UTC))
    for _ in range(10):  # 10 Feb 29ths reach 2064: robfig gives up after a 5-year gap (2096 -> 2104)
        hit = cron.next(ours)
        assert hit == theirs.get_next(dt.datetime)
        assert hit is not None
        ours = hit


def test_next_is_strictly_after_the_given_time() -> None:
    cron = parse_schedule("0 9 * * *")
    nine = dt.datetime(2026, 1, 12, 9, tzinfo=UTC)
    assert cron.next(nine) == nine + dt.timedelta(days=1)
    assert cron.next(nine - dt.timedelta(microseconds=1)) == nine


def test_day_of_month_and_week_are_or_only_when_neither_is_a_star() -> None:
    # robfig spec.go dayMatches: both restricted -> either matches; `*` in one -> both must match.
    both = parse_schedule("0 0 13 * 5")  # the 13th OR any Friday
    assert both.next(dt.datetime(2026, 2, 1, tzinfo=UTC)) == dt.datetime(2026, 2, 6, tzinfo=UTC)  # a Friday
    only_13th = parse_schedule("0 0 13 * *")
    assert only_13th.next(dt.datetime(2026, 2, 1, tzinfo=UTC)) == dt.datetime(2026, 2, 13, tzinfo=UTC)
    # `*/2` clears the star bit (parser.go getRange: step > 1): the day of week is "restricted", so OR applies.
    stepped = parse_schedule("0 0 13 * */2")  # the 13th OR Sun/Tue/Thu/Sat
    assert stepped.next(dt.datetime(2026, 2, 2, 1, tzinfo=UTC)) == dt.datetime(2026, 2, 3, tzinfo=UTC)


def test_n_slash_step_runs_from_n_to_the_maximum() -> None:
    cron = parse_schedule("50/5 0 * * *")  # robfig: "N/step" means "N-max/step": 50, 55
    start = dt.datetime(2026, 1, 12, tzinfo=UTC)
    first = cron.next(start)
    assert first == start.replace(minute=50)
    assert cron.next(first) == start.replace(minute=55)
    assert cron.next(start.replace(minute=55)) == start + dt.timedelta(days=1, minutes=50)


def test_descriptors() -> None:
    assert parse_schedule("@weekly").next(MONDAY) == dt.datetime(2026, 1, 18, tzinfo=UTC)  # Sunday 00:00
    assert parse_schedule("@monthly").next(MONDAY) == dt.datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_schedule("@yearly").next(MONDAY) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_schedule("@hourly").next(MONDAY) == MONDAY + dt.timedelta(hours=1)
    assert parse_schedule("@every 1h30m") == EverySchedule(5400.0)


def test_impossible_date_has_no_hit() -> None:
    assert parse_schedule("0 0 30 2 *").next(MONDAY) is None


# -- activity: [hit, hit + duration) in UTC ---------------------------------------------------------------------
def test_active_from_each_hit_for_its_duration() -> None:
    freeze = _budget(nodes="0", schedule="0 9 * * 1-5", duration="8h")
    nine = MONDAY.replace(hour=9)
    assert not freeze.is_active(nine - dt.timedelta(seconds=1))
    assert freeze.is_active(nine)
    assert freeze.is_active(nine + dt.timedelta(hours=8) - dt.timedelta(seconds=1))
    assert not freeze.is_active(nine + dt.timedelta(hours=8))
    assert not freeze.is_active(MONDAY.replace(day=17, hour=10))  # Saturday


def test_windows_over_a_week() -> None:
    freeze = _budget(nodes="0", schedule="0 0 * * 1-5", duration="8h")
    windows = freeze.active_windows(MONDAY, MONDAY + dt.timedelta(days=7))
    assert windows == [(MONDAY + dt.timedelta(days=d), MONDAY + dt.timedelta(days=d, hours=8)) for d in range(5)]


def test_schedule_without_duration_is_never_active_and_always_active_without_both() -> None:
    no_duration = _budget(nodes="0", schedule="* * * * *")
    assert no_duration.error is None and not no_duration.is_active(MONDAY)
    assert no_duration.active_windows(MONDAY, MONDAY + dt.timedelta(days=1)) == []
    always = _budget(nodes="20%")
    assert always.is_active(MONDAY) and always.active_windows(MONDAY, MONDAY + dt.timedelta(hours=1)) == [
        (MONDAY, MONDAY + dt.timedelta(hours=1))]


@pytest.mark.parametrize(("every", "duration", "active"), [("1h", "1h", True), ("1h", "2h", True),
                                                          ("3h", "2h", False)])
def test_every_schedule_is_on_or_off_for_good(every: str, duration: str, active: bool) -> None:
    # constantdelay.go: the next hit after now - duration is now - duration + delay.
    budget = _budget(nodes="0", schedule=f"@every {every}", duration=duration)
    assert budget.is_active(MONDAY) is active
    assert bool(budget.active_windows(MONDAY, MONDAY + dt.timedelta(days=1))) is active


# -- allowed disruptions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("nodes", "count", "allowed"), [
    ("20%", 7, 2), ("20%", 5, 1), ("10%", 1, 1), ("10%", 0, 0), ("3", 10, 3), ("0", 10, 0), ("0%", 10, 0),
])
def test_nodes_scale_against_the_node_count_rounded_up(nodes: str, count: int, allowed: int) -> None:
    assert _budget(nodes=nodes).allowed(count, MONDAY) == allowed


def test_most_restrictive_active_budget_wins_per_reason() -> None:
    budgets = [_budget(nodes="20%"),
               parse_budget(1, {"nodes": "1", "reasons": ["Drifted"]}),
               parse_budget(2, {"nodes": "0", "schedule": "0 0 * * 1-5", "duration": "8h",
                                "reasons": ["Underutilized"]})]
    frozen = MONDAY.replace(hour=3)
    assert allowed_by_reason(budgets, 10, frozen) == {"Underutilized": 0, "Empty": 2, "Drifted": 1}
    later = MONDAY.replace(hour=9)  # the freeze is over: it no longer limits
    assert allowed_by_reason(budgets, 10, later) == {"Underutilized": 2, "Empty": 2, "Drifted": 1}


def test_no_applicable_active_budget_leaves_every_node_disruptable() -> None:
    only_scheduled = [_budget(nodes="0", schedule="0 0 * * 1-5", duration="8h")]
    assert allowed_disruptions(only_scheduled, 10, "Empty", MONDAY.replace(hour=12)) == 10
    assert allowed_disruptions([], 10, "Drifted", MONDAY) == 10


def test_an_unparseable_schedule_fails_closed_for_every_reason_at_every_moment() -> None:
    # GetAllowedDisruptionsByReason collects every budget's error, even one limited to another reason and
    # currently "inactive"; MustGetAllowedDisruptions then returns 0.
    budgets = [_budget(nodes="20%"),
               parse_budget(1, {"nodes": "50%", "schedule": "0 0 * * 1-7", "duration": "1h",
                                "reasons": ["Drifted"]})]
    assert budgets[1].schedule_error is not None and "7 for Sunday" in budgets[1].schedule_error
    for hour in (0, 12, 23):
        assert allowed_by_reason(budgets, 10, MONDAY.replace(hour=hour)) == dict.fromkeys(REASONS, 0)
    assert budgets[1].active_windows(MONDAY, MONDAY + dt.timedelta(days=1)) == []


def test_a_duration_without_schedule_fails_closed() -> None:
    # Karpenter parses "TZ=UTC " + "" (no fields) and fails; the CRD's CEL rule rejects it too.
    budget = _budget(nodes="20%", duration="8h")
    assert budget.error is not None and budget.schedule_error is None
    assert allowed_disruptions([budget], 10, "Empty", MONDAY) == 0


@pytest.mark.parametrize("nodes", ["12.5%", "ten", "10 %"])
def test_unreadable_nodes_fail_closed(nodes: str) -> None:
    budget = _budget(nodes=nodes)
    assert budget.error is not None and "nodes" in budget.error
    assert allowed_disruptions([budget], 10, "Empty", MONDAY) == 0


# -- parsing a NodePool -----------------------------------------------------------------------------------------
def test_omitted_budgets_default_to_one_ten_percent_budget() -> None:
    doc = _pool("{consolidateAfter: 30s}")
    assert declared_budgets(doc) is None
    [default] = effective_budgets(doc)
    assert default.index is None and default.nodes == "10%" and default.always_active
    assert allowed_by_reason(effective_budgets(doc), 25, MONDAY) == dict.fromkeys(REASONS, 3)


def test_explicit_empty_budgets_limit_nothing() -> None:
    doc = _pool("{budgets: []}")
    assert effective_budgets(doc) == []
    assert allowed_by_reason(effective_budgets(doc), 4, MONDAY) == dict.fromkeys(REASONS, 4)


def test_declared_budgets_keep_their_field_positions() -> None:
    doc = _pool('{budgets: [{nodes: "20%"}, {nodes: "0", schedule: "0 0 * * 1-5", duration: 8h, '
                'reasons: [Drifted, Empty]}]}')
    first, second = effective_budgets(doc)
    assert first.path == ("spec", "disruption", "budgets", 0) and first.reasons is None
    assert second.path == ("spec", "disruption", "budgets", 1)
    assert second.duration_seconds == 8 * 3600 and second.reasons == frozenset({"Drifted", "Empty"})
    assert second.freezes and not first.freezes
