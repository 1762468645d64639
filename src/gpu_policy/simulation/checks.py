"""Assertions over a trajectory. Each returns None when it holds, else a message an operator can act on."""

from __future__ import annotations

import math

from gpu_policy.simulation.engine import Trajectory, Workload
from gpu_policy.simulation.hpa import SYNC_PERIOD_SECONDS


def _timeline(traj: Trajectory, start: float, end: float) -> str:
    points = [f"t={int(s.time)}s:{s.replicas}" for s in traj.samples if start <= s.time <= end]
    return ", ".join(_dedupe(points))


def _dedupe(points: list[str]) -> list[str]:
    out: list[str] = []
    last = None
    for p in points:
        value = p.split(":")[1]
        if value != last:
            out.append(p)
        last = value
    return out


def explain(workload: Workload, traj: Trajectory) -> str:
    """Why the replicas moved the way they did: the metric formula of each trigger, and fallback facts."""
    lines = []
    for autoscaler in workload.autoscalers:
        so = autoscaler.scaled_object
        if so is None:
            continue
        for trigger in so.triggers:
            shape = trigger.shape
            if trigger.metric_type == "AverageValue" and shape in ("avg", "max", "min"):
                values = [
                    s.metric for s in traj.samples if s.metric is not None and s.writer == autoscaler.name
                ]
                peak = max(values, default=0.0)
                lines.append(
                    f"{so.name} trigger {trigger.index}: the query returns one {shape}() value and metricType is "
                    f"AverageValue, so the HPA computes desired = ceil({shape} / threshold) = "
                    f"ceil({peak:g} / {trigger.threshold:g}) = {math.ceil(peak / trigger.threshold)} at the peak, "
                    "whatever the replica count (replica_calculator.go GetExternalPerPodMetricReplicas). Use sum(...) "
                    "with AverageValue (threshold = per-pod target) or keep avg(...) with metricType: Value."
                )
            if trigger.ignore_null_values and any(traj.trace.in_outage(s.time) for s in traj.samples):
                lines.append(
                    f"{so.name} trigger {trigger.index}: ignoreNullValues is true (the default), so the empty "
                    "result during the outage reads as 0 - the HPA scales toward the minimum and fallback never fires "
                    '(prometheus_scaler.go). Set ignoreNullValues: "false".'
                )
        if so.fallback is None:
            lines.append(f"{so.name} has no fallback: during an outage the HPA keeps the last replica count.")
    others = [a.name for a in workload.autoscalers if a.scaled_object is None]
    if others:
        errors = {s.error for s in traj.samples if s.writer in others and s.error}
        lines.append(
            f"also writing {workload.ref}'s replicas: {', '.join(others)}"
            + (f" (its metrics fail: {sorted(errors)[0]})" if errors else "")
        )
    return "\n".join(lines)


def reaches(traj: Trajectory, replicas: int, within: float, since: float) -> str | None:
    for s in traj.samples:
        if s.time >= since and s.replicas >= replicas:
            if s.time - since <= within:
                return None
            return (
                f"{traj.workload} reached {replicas} replicas only {int(s.time - since)} s after t={int(since)}s "
                f"(expected within {int(within)} s): {_timeline(traj, since, s.time)}"
            )
    last = traj.samples[-1]
    return (
        f"{traj.workload} never reached {replicas} replicas (after t={int(since)}s it went "
        f"{_timeline(traj, since, last.time)}); max={traj.max_replicas}"
    )


def never_drops_within(traj: Trajectory, seconds: float, fall: float) -> str | None:
    """No scale-down until `seconds` after the last sync that still saw the high load (the window's anchor:
    the stabilization window counts from the last high recommendation, taken up to one sync before the fall)."""
    before = [s for s in traj.samples if s.time < fall]
    anchor = before[-1].time if before else fall
    level = traj.replicas_at(anchor)
    for s in traj.samples:
        if anchor < s.time < anchor + seconds and s.replicas < level:
            return (
                f"{traj.workload} dropped from {level} to {s.replicas} replicas at t={int(s.time)}s, "
                f"{int(s.time - anchor)} s after the last sync that saw the high load (t={int(anchor)}s); "
                f"expected no drop for {int(seconds)} s: {_timeline(traj, anchor, anchor + seconds)}"
            )
    return None


def scale_down_rate(traj: Trajectory, percent: float, period: float) -> str | None:
    """Within any `period`, the replicas left are at least floor(start * (1 - percent/100)), `start` being the count
    at the period's start - how the HPA's Percent policy counts (so 25 % of 10 lets 3 go: floor(7.5) = 7)."""
    for i, s in enumerate(traj.samples):
        earlier = [p for p in traj.samples[:i] if p.time <= s.time - period]
        start = earlier[-1].replicas if earlier else traj.samples[0].replicas
        window = [p.replicas for p in traj.samples[: i + 1] if p.time > s.time - period]
        if max(window, default=start) > start:
            continue  # scale-ups inside the period: the HPA's own start-of-period arithmetic differs
        floor_allowed = math.floor(start * (1 - percent / 100) + 1e-9)
        if s.replicas < floor_allowed:
            return (
                f"{traj.workload} went from {start} to {s.replicas} replicas within {int(period)} s "
                f"(t={int(s.time - period)}s..{int(s.time)}s); at most {percent:g}% per {int(period)} s "
                f"allows {floor_allowed}: {_timeline(traj, s.time - period, s.time)}"
            )
    return None


def direction_changes(traj: Trajectory, start: float = 0.0) -> int:
    changes = 0
    direction = 0
    previous = traj.replicas_at(start)
    for s in traj.after(start):
        if s.replicas == previous:
            continue
        now = 1 if s.replicas > previous else -1
        if direction and now != direction:
            changes += 1
        direction = now
        previous = s.replicas
    return changes


def outage_window(traj: Trajectory) -> tuple[float, float]:
    if not traj.trace.outages:
        raise ValueError(f"trace {traj.trace.name!r} has no outage")
    return traj.trace.outages[0]


def falls_back_to(traj: Trajectory, replicas: int, within: float) -> str | None:
    start, end = outage_window(traj)
    for s in traj.samples:
        if start <= s.time < end and s.replicas == replicas:
            if s.time - start <= within:
                return None
            break
    return (
        f"during the metric outage (t={int(start)}s..{int(end)}s) {traj.workload} did not settle at "
        f"{replicas} replicas within {int(within)} s: {_timeline(traj, start - SYNC_PERIOD_SECONDS, end)}"
    )


def never_scales_down_in_outage(traj: Trajectory) -> str | None:
    start, end = outage_window(traj)
    level = traj.replicas_at(start - 1e-6)
    for s in traj.samples:
        if start <= s.time < end and s.replicas < level:
            return (
                f"{traj.workload} scaled down from {level} to {s.replicas} at t={int(s.time)}s during the metric "
                f"outage (t={int(start)}s..{int(end)}s): {_timeline(traj, start, end)}"
            )
    return None


def settles_at(traj: Trajectory, replicas: int, within: float, since: float) -> str | None:
    for s in traj.samples:
        if (
            s.time >= since
            and s.replicas == replicas
            and all(p.replicas == replicas for p in traj.after(s.time))
        ):
            if s.time - since <= within:
                return None
            return (
                f"{traj.workload} settled at {replicas} only {int(s.time - since)} s after t={int(since)}s "
                f"(expected within {int(within)} s)"
            )
    return (
        f"{traj.workload} did not settle at {replicas} replicas: "
        f"{_timeline(traj, since, traj.samples[-1].time)}"
    )


def never_below(traj: Trajectory, replicas: int) -> str | None:
    low = min(traj.samples, key=lambda s: s.replicas)
    if low.replicas < replicas:
        return (
            f"{traj.workload} went down to {low.replicas} replicas at t={int(low.time)}s (minimum {replicas})"
        )
    return None
