"""Moving a NodePool's disruption budgets in time, so that a real Karpenter lives a chosen moment of the week now.

Karpenter reads a budget's `schedule` as cron in UTC and keeps the budget active for `duration` after each hit
(kubernetes-sigs/karpenter v1.14.1 pkg/apis/v1/nodepool.go `Budget.IsActive`: `cron.ParseStandard("TZ=UTC " +
schedule)`, checkpoint = now - duration, active when the next hit after the checkpoint is not after now). A drill
cannot move Karpenter's clock, so it moves the budgets instead: for a shift `delta` (whole minutes), every window
[hit, hit + duration) of a scheduled budget that reaches into the span the drill cares about becomes one budget
with the same `nodes` and `reasons`, `schedule: "<minute> <hour> <day> <month> *"` (that window's start moved by
`delta`, a date cron that hits once a year) and `duration: <minutes>m`. Karpenter then sees, at real time t, exactly
the budgets the set's NodePool has at t - delta. Budgets without a schedule (always active) are kept as they are;
a budget whose schedule Karpenter cannot parse is kept too (Karpenter fails closed on it either way). The windows
come from the project's port of Karpenter's cron and budget semantics (gpu_policy.graph.nodes.budgets), so
`shift` and Karpenter agree by construction on which budgets are active when; the drill observes what Karpenter
then does.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpu_policy.graph.nodes.budgets import parse_budget
from gpu_policy.simulation.disruption import DAYS, BusinessHours

MAX_BUDGETS = 50
"""The CRD's maxItems for spec.disruption.budgets (karpenter.sh_nodepools.yaml)."""


@dataclass(frozen=True)
class Shift:
    delta: dt.timedelta
    """Real time = the set's time + delta."""

    def to_real(self, moment: dt.datetime) -> dt.datetime:
        return moment + self.delta

    def to_policy(self, moment: dt.datetime) -> dt.datetime:
        return moment - self.delta


def business_end_after(hours: BusinessHours, after: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The next end of business hours after `after` (UTC) and the start of that same business day, both UTC."""
    local = after.astimezone(hours.zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if DAYS[day.weekday()] not in hours.days:
            continue
        start = dt.datetime.combine(day, hours.start, tzinfo=hours.zone)
        end = dt.datetime.combine(day, hours.end, tzinfo=hours.zone)
        if end <= start:
            end += dt.timedelta(days=1)
        if end > after:
            return end.astimezone(dt.UTC), start.astimezone(dt.UTC)
    raise ValueError(f"no business day in {hours.days}")


def shift_mapping(policy_moment: dt.datetime, real_at_least: dt.datetime) -> Shift:
    """The smallest whole-minute shift that puts `policy_moment` (whole minutes) at or after `real_at_least`."""
    seconds = (real_at_least - policy_moment).total_seconds()
    return Shift(dt.timedelta(minutes=math.ceil(seconds / 60)))


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))}m"


def shifted_budgets(raw: Sequence[Mapping[str, Any]], shift: Shift, real_start: dt.datetime,
                    real_end: dt.datetime) -> list[dict[str, Any]]:
    """The budgets Karpenter must hold so that over [real_start, real_end] it sees what `raw` says at the set's
    time (real - shift.delta). See the module docstring."""
    out: list[dict[str, Any]] = []
    start, end = shift.to_policy(real_start), shift.to_policy(real_end)
    for index, item in enumerate(raw):
        budget = parse_budget(index, item)
        if budget.always_active or budget.error is not None:
            out.append(dict(item))
            continue
        for begin, finish in budget.active_windows(start, end):
            if finish <= start:
                continue
            moved = shift.to_real(begin)
            entry: dict[str, Any] = {"nodes": budget.nodes,
                                     "schedule": f"{moved.minute} {moved.hour} {moved.day} {moved.month} *",
                                     "duration": _minutes((finish - begin).total_seconds())}
            if item.get("reasons") is not None:
                entry["reasons"] = list(item["reasons"])
            out.append(entry)
    if len(out) > MAX_BUDGETS:
        raise ValueError(f"{len(out)} budgets after the shift, more than the CRD's {MAX_BUDGETS}")
    return out
