"""Karpenter disruption budgets over a week: how many nodes may be voluntarily disrupted, when.

The budget model itself — parsing, robfig cron in UTC, activity, allowed disruptions by reason with
Karpenter's fail-closed handling of a schedule it cannot parse — is `gpu_policy.graph.nodes.budgets`, shared
with the Karpenter rules. This module only walks a week of it against the organisation's business hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gpu_policy.graph.nodes.budgets import Budget, allowed_by_reason

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    start: dt.time
    end: dt.time
    days: tuple[str, ...]

    @classmethod
    def from_policy(cls, cluster: Mapping[str, Any]) -> BusinessHours:
        hours = cluster["businessHours"]
        return cls(
            ZoneInfo(hours["timeZone"]),
            dt.time.fromisoformat(hours["start"]),
            dt.time.fromisoformat(hours["end"]),
            tuple(hours["days"]),
        )

    def contains(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.zone)
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


def week_table(
    budgets: Sequence[Budget], node_count: int, week_start: dt.datetime
) -> list[tuple[dt.datetime, dict[str, int]]]:
    """Allowed voluntary disruptions at the start of each hour of the week (UTC)."""
    return [
        (
            week_start + dt.timedelta(hours=h),
            allowed_by_reason(budgets, node_count, week_start + dt.timedelta(hours=h)),
        )
        for h in range(7 * 24)
    ]


def _instants(week_start: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    end = week_start + dt.timedelta(days=7)
    out = []
    moment = week_start
    while moment < end:
        out.append(moment)
        moment += step
    return out


def business_hour_violations(
    budgets: Sequence[Budget],
    node_count: int,
    hours: BusinessHours,
    week_start: dt.datetime,
    step: dt.timedelta = dt.timedelta(minutes=5),
) -> list[tuple[dt.datetime, dict[str, int]]]:
    """Every `step` instant of the week inside business hours at which some reason may disrupt nodes."""
    out = []
    for moment in _instants(week_start, step):
        if hours.contains(moment):
            allowed = allowed_by_reason(budgets, node_count, moment)
            if any(v > 0 for v in allowed.values()):
                out.append((moment, allowed))
    return out


def reference_week() -> dt.datetime:
    """A fixed Monday 00:00 UTC (time-zone rules of the business-hours zone apply as of that week)."""
    return dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
