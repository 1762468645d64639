"""Karpenter NodePool disruption budgets: parsing, schedule validity, activity and allowed disruptions.

The one model of `spec.disruption.budgets` that rules (gpu_policy.rules.karpenter) and the week simulation
(gpu_policy.simulation.disruption) share. Upstream, kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go (v1.14):

- `Budget.IsActive`: a budget without schedule and duration is always active; otherwise Karpenter parses
  `cron.ParseStandard("TZ=UTC " + schedule)` (robfig/cron v3.0.1, go.mod) — cron in UTC, no time zones — walks
  back `duration` from now and asks for the next hit: active when that hit is not after now, i.e. active over
  [hit, hit + duration) for every hit. A schedule without duration is never active (a zero-length window).
- `Budget.GetAllowedDisruptions`: an inactive budget allows MaxInt32; an active one allows `nodes`, an integer
  or a percentage of the NodePool's node count rounded UP (`intstr.GetScaledValueFromIntOrPercent(..., true)`).
  A schedule robfig cannot parse (or a malformed `nodes`) is an error and the budget fails closed: 0.
- `NodePool.GetAllowedDisruptionsByReason`: the minimum over the budgets that apply to the reason (a budget
  without `reasons` applies to all of Underutilized, Empty, Drifted); the errors of EVERY budget are collected,
  and `MustGetAllowedDisruptions` turns any error into 0 allowed disruptions — for every reason, so one broken
  schedule means the pool's nodes are never voluntarily disrupted (no consolidation, no drift replacement).
- The CRD (karpenter.sh_nodepools.yaml) defaults an omitted `budgets` to `[{nodes: "10%"}]`; an explicit empty
  list stays empty (nothing limits disruption).

Budgets bound voluntary disruption only (not spot interruption, expiry or node repair).

The robfig parser (parser.go `Parse`/`getRange`/`parseIntOrName`/`parseDescriptor`, spec.go bounds and `Next`,
constantdelay.go `Every`) is ported below rather than delegated to a Python cron library: croniter and others
accept what robfig rejects (`7` for Sunday, `L`, `W`, `#`, a seconds field) and read some accepted forms
differently (`@every`, `N/step`, the day-of-month/day-of-week OR only when neither field is `*`/`?`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_policy.graph.quantities import parse_duration
from gpu_policy.loading.document import Document, FieldPath

REASONS = ("Underutilized", "Empty", "Drifted")
"""kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go `DisruptionReason` (CRD enum)."""
DISRUPTION: FieldPath = ("spec", "disruption")
BUDGETS: FieldPath = (*DISRUPTION, "budgets")
DEFAULT_NODES = "10%"
"""The CRD default of `spec.disruption.budgets`: one always-active budget of 10%."""

Interval = tuple[dt.datetime, dt.datetime]


# -- robfig/cron v3.0.1 ParseStandard ---------------------------------------------------------------------------
_STAR_BIT = 1 << 63  # spec.go starBit: the field was `*` or `?` (with no step above 1)
_NAMES_DOW = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES_MONTH = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_FIELDS: tuple[tuple[str, int, int, Mapping[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _NAMES_MONTH), ("day of week", 0, 6, _NAMES_DOW),
)
_DESCRIPTORS = frozenset(("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"))
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+|[-+]?0")
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                    "h": 3600.0}
_GO_ATOI = re.compile(r"[-+]?[0-9]+")  # Go strconv.Atoi: optional sign, decimal digits


class CronRejected(ValueError):
    """A schedule robfig/cron's ParseStandard (Karpenter's parser) rejects."""


def _bits(low: int, high: int, step: int = 1) -> int:
    return sum(1 << i for i in range(low, high + 1, step))


def _all(low: int, high: int) -> int:
    return _bits(low, high) | _STAR_BIT


@dataclass(frozen=True)
class CronSchedule:
    """robfig/cron spec.go `SpecSchedule` in UTC: one bit set per field (seconds are always 0 for
    ParseStandard)."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int

    def _day_matches(self, t: dt.datetime) -> bool:
        dom_match = bool(1 << t.day & self.dom)
        dow_match = bool(1 << ((t.weekday() + 1) % 7) & self.dow)  # Go Weekday: Sunday = 0
        if self.dom & _STAR_BIT or self.dow & _STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, after: dt.datetime) -> dt.datetime | None:
        """The first hit strictly after `after` (UTC), or None when none comes within five years (spec.go
        `Next`, whose field-by-field increments with wrap-around this follows)."""
        t = after.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        added = False
        year_limit = t.year + 5
        while True:  # WRAP
            if t.year > year_limit:
                return None
            wrapped = False
            while not (1 << t.month & self.month):
                if not added:
                    added = True
                    t = t.replace(day=1, hour=0, minute=0, second=0)
                t = t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = t.replace(hour=0, minute=0, second=0)
                t += dt.timedelta(days=1)
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.hour & self.hour):
                if not added:
                    added = True
                    t = t.replace(minute=0, second=0)
                t += dt.timedelta(hours=1)
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.minute & self.minute):
                if not added:
                    added = True
                    t = t.replace(second=0)
                t += dt.timedelta(minutes=1)
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            if t.second != 0:  # the seconds field of ParseStandard is 0
                if not added:
                    added = True
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            return t


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>` (constantdelay.go): the next hit is always `delay` after the given time (rounded
    down to whole seconds, at least one second)."""

    delay_seconds: float

    def next(self, after: dt.datetime) -> dt.datetime | None:
        return after.replace(microsecond=0) + dt.timedelta(seconds=self.delay_seconds)


Schedule = CronSchedule | EverySchedule


def _hint(token: str, field_name: str) -> str:
    upper = token.upper()
    if field_name == "day of week" and "7" in re.split(r"[-,/]", token):
        return " (7 for Sunday is not accepted: Karpenter's cron numbers Sunday 0; use 0 or SUN)"
    if any(c in upper for c in "LW#"):
        return " (L, W and # are not part of Karpenter's cron dialect)"
    return ""


def _cron_int(expr: str, names: Mapping[str, int], field_name: str) -> int:
    if expr.lower() in names:
        return names[expr.lower()]
    if not _GO_ATOI.fullmatch(expr):
        raise CronRejected(f"{field_name} {expr!r} is not a number{_hint(expr, field_name)}")
    number = int(expr)
    if number < 0:
        raise CronRejected(f"negative number {number} in the {field_name} field")
    return number


def _cron_range(expr: str, field_name: str, low: int, high: int, names: Mapping[str, int]) -> int:
    """parser.go `getRange`: the bits of `number | number "-" number [ "/" number ]` (or `*`/`?`)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = low, high, _STAR_BIT
    else:
        start = _cron_int(low_and_high[0], names, field_name)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _cron_int(low_and_high[1], names, field_name)
        else:
            raise CronRejected(f"too many hyphens in the {field_name} field {expr!r}")
    step = 1
    if len(range_and_step) == 2:
        step = _cron_int(range_and_step[1], {}, field_name)
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
        if step > 1:
            extra = 0
    elif len(range_and_step) > 2:
        raise CronRejected(f"too many slashes in the {field_name} field {expr!r}")
    if start < low:
        raise CronRejected(f"{field_name} {expr!r} is below the minimum {low}")
    if end > high:
        raise CronRejected(f"{field_name} {expr!r} goes above the maximum {high}{_hint(expr, field_name)}")
    if start > end:
        raise CronRejected(f"{field_name} range {expr!r} begins after it ends")
    if step == 0:
        raise CronRejected(f"{field_name} step in {expr!r} must be positive")
    return _bits(start, end, step) | extra


def _go_duration_seconds(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(float(n) * _GO_UNIT_SECONDS[u] for n, u in _GO_DURATION_PART.findall(text))


def parse_schedule(schedule: str) -> Schedule:
    """The schedule Karpenter evaluates for a budget's `schedule` (robfig `ParseStandard("TZ=UTC " +
    schedule)`); raises CronRejected with the reason robfig rejects it."""
    spec = schedule.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronRejected("time zones are not supported: Karpenter already prefixes TZ=UTC, a second TZ= is a "
                           "sixth field")
    if spec.startswith("@"):
        if spec in ("@yearly", "@annually"):
            return CronSchedule(1, 1, 1 << 1, 1 << 1, _all(0, 6))
        if spec == "@monthly":
            return CronSchedule(1, 1, 1 << 1, _all(1, 12), _all(0, 6))
        if spec == "@weekly":
            return CronSchedule(1, 1, _all(1, 31), _all(1, 12), 1)
        if spec in ("@daily", "@midnight"):
            return CronSchedule(1, 1, _all(1, 31), _all(1, 12), _all(0, 6))
        if spec == "@hourly":
            return CronSchedule(1, _all(0, 23), _all(1, 31), _all(1, 12), _all(0, 6))
        every = spec[len("@every "):]
        if spec.startswith("@every ") and _GO_DURATION.fullmatch(every):
            return EverySchedule(max(1.0, float(int(_go_duration_seconds(every)))))
        raise CronRejected(f"unrecognized descriptor {spec!r} (accepted: {', '.join(sorted(_DESCRIPTORS))})")
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        extra = " (no seconds or year field)" if len(fields) > len(_FIELDS) else ""
        raise CronRejected(f"expected exactly 5 fields (minute hour day-of-month month day-of-week), found "
                           f"{len(fields)}{extra}")
    masks = []
    for value, (field_name, low, high, names) in zip(fields, _FIELDS, strict=True):
        mask = 0
        for expr in (part for part in value.split(",") if part):  # Go strings.FieldsFunc drops empties
            mask |= _cron_range(expr, field_name, low, high, names)
        masks.append(mask)
    minute, hour, dom, month, dow = masks
    return CronSchedule(minute, hour, dom, month, dow)


def robfig_cron_error(schedule: str) -> str | None:
    """Why Karpenter's cron parser rejects `schedule`, or None when it accepts it."""
    try:
        parse_schedule(schedule)
    except CronRejected as exc:
        return str(exc)
    return None


# -- budgets ----------------------------------------------------------------------------------------------------
def _scaled_nodes(nodes: str, node_count: int) -> int | None:
    """nodepool.go `GetIntStrFromValue` + `intstr.GetScaledValueFromIntOrPercent(value, count, roundUp=true)`;
    None when Karpenter cannot read the value."""
    if _GO_ATOI.fullmatch(nodes):
        return int(nodes)
    if nodes.endswith("%") and _GO_ATOI.fullmatch(nodes[:-1]):
        return -(-int(nodes[:-1]) * node_count // 100)
    return None


@dataclass(frozen=True)
class Budget:
    index: int | None
    """Position in spec.disruption.budgets; None for Karpenter's default budget (budgets omitted)."""
    nodes: str
    schedule: str | None = None
    duration_seconds: float | None = None
    reasons: frozenset[str] | None = None
    """None when the budget lists no `reasons` (it then applies to every reason)."""
    schedule_error: str | None = None
    """Why Karpenter's cron parser rejects `schedule` (robfig_cron_error), or None."""
    error: str | None = None
    """Why Karpenter fails closed on this budget (schedule_error, a duration without schedule, unreadable
    `nodes`), or None."""
    cron: Schedule | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> FieldPath:
        return BUDGETS if self.index is None else (*BUDGETS, self.index)

    @property
    def always_active(self) -> bool:
        return self.schedule is None and self.duration_seconds is None

    @property
    def freezes(self) -> bool:
        return self.nodes in ("0", "0%")

    def applies_to(self, reason: str) -> bool:
        return self.reasons is None or reason in self.reasons

    def is_active(self, moment: dt.datetime) -> bool:
        """nodepool.go `IsActive` at `moment`; a budget Karpenter cannot evaluate (`error`) is never active
        (its allowed disruptions fail closed instead, see `allowed`)."""
        if self.always_active:
            return True
        if self.cron is None or self.error is not None:
            return False
        checkpoint = moment - dt.timedelta(seconds=self.duration_seconds or 0.0)
        hit = self.cron.next(checkpoint)
        return hit is not None and hit <= moment

    def allowed(self, node_count: int, moment: dt.datetime) -> int | None:
        """nodepool.go `GetAllowedDisruptions`: 0 when the budget is broken (fail closed), None when it is
        inactive (upstream: MaxInt32, no limit), else `nodes` scaled against `node_count`, rounded up."""
        if self.error is not None:
            return 0
        if not self.is_active(moment):
            return None
        return _scaled_nodes(self.nodes, node_count) or 0

    def active_windows(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """The UTC intervals [hit, hit + duration) of the budget's activity that reach into [start, end)
        (the first may end exactly at `start`). Always active: the whole period; broken or without duration:
        none."""
        if self.always_active:
            return [(start, end)]
        if self.cron is None or self.error is not None or not self.duration_seconds:
            return []
        span = dt.timedelta(seconds=self.duration_seconds)
        if isinstance(self.cron, EverySchedule):  # the next hit is always `delay` away: on or off for good
            return [(start, end)] if self.cron.delay_seconds <= self.duration_seconds else []
        out: list[Interval] = []
        cursor = start - span - dt.timedelta(seconds=1)
        while (hit := self.cron.next(cursor)) is not None and hit < end:
            out.append((hit, hit + span))
            cursor = hit
        return out


def parse_budget(index: int | None, item: Mapping[str, Any]) -> Budget:
    reasons = item.get("reasons")
    duration_text = item.get("duration")
    duration = parse_duration(str(duration_text)) if duration_text is not None else None
    schedule = str(item["schedule"]) if item.get("schedule") is not None else None
    nodes = str(item.get("nodes", DEFAULT_NODES))
    cron: Schedule | None = None
    schedule_error: str | None = None
    error: str | None = None
    if schedule is not None:
        try:
            cron = parse_schedule(schedule)
        except CronRejected as exc:
            schedule_error = error = str(exc)
    elif duration_text is not None:  # Karpenter parses "TZ=UTC " alone: no fields
        error = "a duration without a schedule: Karpenter parses an empty cron and fails"
    if error is None and duration_text is not None and duration is None:
        error = f"duration {duration_text!r} is not a duration"
    if error is None and _scaled_nodes(nodes, 0) is None:
        error = f"nodes {nodes!r} is neither an integer nor a percentage"
    return Budget(index=index, nodes=nodes, schedule=schedule, duration_seconds=duration,
                  reasons=frozenset(str(r) for r in reasons) if isinstance(reasons, list) else None,
                  schedule_error=schedule_error, error=error, cron=cron)


def declared_budgets(doc: Document) -> list[Budget] | None:
    """The NodePool's spec.disruption.budgets; None when the field is absent (Karpenter then uses its default,
    see `effective_budgets`)."""
    raw = doc.get(BUDGETS)
    if raw is None:
        return None
    return [parse_budget(i, item) for i, item in enumerate(raw if isinstance(raw, list) else [])
            if isinstance(item, Mapping)]


def effective_budgets(doc: Document) -> list[Budget]:
    """The budgets Karpenter applies: the declared ones, or the CRD default `[{nodes: "10%"}]`."""
    declared = declared_budgets(doc)
    return [Budget(index=None, nodes=DEFAULT_NODES)] if declared is None else declared


def fails_closed(budgets: Sequence[Budget] | None) -> list[Budget]:
    """Budgets whose schedule Karpenter cannot parse: any one of them makes Karpenter allow 0 disruptions for
    every reason of the pool (nodepool.go `MustGetAllowedDisruptions`)."""
    return [b for b in budgets or [] if b.schedule_error is not None]


def allowed_disruptions(budgets: Sequence[Budget], node_count: int, reason: str, moment: dt.datetime) -> int:
    """nodepool.go `MustGetAllowedDisruptions(clock, numNodes, reason)`: 0 when any budget is broken (fail
    closed, for every reason), else the most restrictive active budget that applies to `reason`. With no such
    budget upstream returns MaxInt32; no more than the pool's nodes can be disrupted, so this returns
    `node_count` then (and caps every value at it)."""
    if any(b.error is not None for b in budgets):
        return 0
    limits = [value for b in budgets if b.applies_to(reason)
              if (value := b.allowed(node_count, moment)) is not None]
    return min([node_count, *limits])


def allowed_by_reason(budgets: Sequence[Budget], node_count: int, moment: dt.datetime) -> dict[str, int]:
    return {reason: allowed_disruptions(budgets, node_count, reason, moment) for reason in REASONS}
