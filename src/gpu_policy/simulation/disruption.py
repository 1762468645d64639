"""Karpenter disruption budgets over a week: how many nodes may be voluntarily disrupted, when.

Read from kubernetes-sigs/karpenter (v1.14) pkg/apis/v1/nodepool.go: `Budget.IsActive` walks back `duration`
from now and asks the cron schedule (UTC, no time zones) for its next hit: the budget is active when that
hit is not
after now; a budget without schedule is always active. `GetAllowedDisruptionsByReason`: budgets that list
`reasons` only limit those reasons (Underutilized, Empty, Drifted); among active budgets the most restrictive
wins; a percentage is taken of the NodePool's node count, rounded UP; no budgets at all means the CRD default
`nodes: 10%`. Budgets only bound voluntary disruption (not spot interruption, expiry or node repair).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from croniter import croniter

REASONS = ("Underutilized", "Empty", "Drifted")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Budget:
    nodes: str
    schedule: str | None = None
    duration: dt.timedelta | None = None
    reasons: tuple[str, ...] = ()

    def is_active(self, now: dt.datetime) -> bool:
        if self.schedule is None and self.duration is None:
            return True
        checkpoint = now - (self.duration or dt.timedelta(0))
        next_hit = croniter(self.schedule or "* * * * *", checkpoint).get_next(dt.datetime)
        return bool(next_hit <= now)

    def allowed(self, node_count: int) -> int:
        text = self.nodes.strip()
        if text.endswith("%"):
            return math.ceil(node_count * float(text[:-1]) / 100)
        return int(text)


def parse_duration(text: str) -> dt.timedelta:
    total = dt.timedelta(0)
    number = ""
    for ch in text:
        if ch.isdigit():
            number += ch
        else:
            total += (
                dt.timedelta(hours=int(number))
                if ch == "h"
                else dt.timedelta(minutes=int(number))
                if ch == "m"
                else dt.timedelta(seconds=int(number))
            )
            number = ""
    return total


def budgets_of(nodepool_spec: dict) -> list[Budget]:
    raw = (nodepool_spec.get("disruption") or {}).get("budgets")
    if raw is None:
        return [Budget("10%")]
    return [
        Budget(
            str(b.get("nodes", "10%")),
            b.get("schedule"),
            parse_duration(str(b["duration"])) if b.get("duration") else None,
            tuple(b.get("reasons") or ()),
        )
        for b in raw
    ]


def allowed_by_reason(budgets: list[Budget], node_count: int, now: dt.datetime) -> dict[str, int]:
    out = {}
    for reason in REASONS:
        limits = [
            b.allowed(node_count)
            for b in budgets
            if (not b.reasons or reason in b.reasons) and b.is_active(now)
        ]
        out[reason] = min(limits) if limits else node_count
    return out


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    start: dt.time
    end: dt.time
    days: tuple[str, ...]

    @classmethod
    def from_policy(cls, cluster: dict) -> BusinessHours:
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
    budgets: list[Budget], node_count: int, week_start: dt.datetime
) -> list[tuple[dt.datetime, dict]]:
    """Allowed voluntary disruptions at the start of each hour of the week (UTC)."""
    return [
        (
            week_start + dt.timedelta(hours=h),
            allowed_by_reason(budgets, node_count, week_start + dt.timedelta(hours=h)),
        )
        for h in range(7 * 24)
    ]


def business_hour_violations(
    budgets: list[Budget],
    node_count: int,
    hours: BusinessHours,
    week_start: dt.datetime,
    step: dt.timedelta = dt.timedelta(minutes=5),
) -> list[tuple[dt.datetime, dict[str, int]]]:
    """Every minute of the week inside business hours at which some reason may disrupt nodes."""
    out = []
    moment = week_start
    end = week_start + dt.timedelta(days=7)
    while moment < end:
        if hours.contains(moment):
            allowed = allowed_by_reason(budgets, node_count, moment)
            if any(v > 0 for v in allowed.values()):
                out.append((moment, allowed))
        moment += step
    return out


def reference_week() -> dt.datetime:
    """A fixed Monday 00:00 UTC (time-zone rules of the business-hours zone apply as of that week)."""
    return dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
