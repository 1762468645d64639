"""The simulator held to reality: an observed replica timeline (what the real HPA wrote) against the simulator's
prediction for the same trace, with a stated tolerance, written as CSV and SVG under --report.

Both timelines are step functions: `(seconds since the trace started, replicas)` points, each value holding until
the next point. The tolerance has two parts, both stated in the report:
- `seconds`: a time shift. The real controllers are not in lockstep with the simulator: the HPA's sync starts at an
  arbitrary phase of its period (up to one `--horizontal-pod-autoscaler-sync-period` apart), and the metric the
  HPA reads is older than the trace by the scrape interval, KEDA's query and the metrics adapter
  (`metric delay`). A replica count observed at t is accepted when the prediction held it at some time within
  [t - seconds, t + seconds].
- `replicas`: how far apart the counts may be beyond that shift (0 by default: the same decisions, only later or
  earlier).
Besides the time shift, a prediction may come with alternatives: other timelines the same controllers may follow
on a real run (the HPA counts a record exactly one window old or not, depending on which of two timers started
the sync: gpu_policy.simulation.hpa, "Window edges"). The accepted band at t is the union over all of them.
A point outside both is a difference; the comparison lists the first and the largest.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from gpu_policy.simulation.engine import Trajectory

Timeline = Sequence[tuple[float, int]]


@dataclass(frozen=True)
class Tolerance:
    seconds: float
    replicas: int = 0

    def describe(self) -> str:
        return f"±{self.seconds:g} s and ±{self.replicas} replica(s)"


@dataclass(frozen=True)
class Row:
    time: float
    observed: int
    predicted: int
    low: int
    """The lowest count the prediction held within the time tolerance, minus the replica tolerance."""
    high: int
    within: bool


@dataclass
class Comparison:
    tolerance: Tolerance
    rows: list[Row] = field(default_factory=list)

    @property
    def differences(self) -> list[Row]:
        return [r for r in self.rows if not r.within]

    @property
    def ok(self) -> bool:
        return not self.differences

    def worst(self) -> Row | None:
        """The difference farthest outside the band (the first of equals)."""
        worst: Row | None = None
        for row in self.differences:
            gap = max(row.low - row.observed, row.observed - row.high)
            if worst is None or gap > max(worst.low - worst.observed, worst.observed - worst.high):
                worst = row
        return worst

    def summary(self) -> str:
        if self.ok:
            return f"observed within the prediction ({self.tolerance.describe()}) at all {len(self.rows)} instants"
        first, worst = self.differences[0], self.worst()
        assert worst is not None
        return (f"{len(self.differences)} of {len(self.rows)} instants outside the prediction "
                f"({self.tolerance.describe()}): first at {first.time:g} s (observed {first.observed}, predicted "
                f"{first.predicted}, accepted {first.low}-{first.high}); largest at {worst.time:g} s (observed "
                f"{worst.observed}, predicted {worst.predicted}, accepted {worst.low}-{worst.high})")


def value_at(timeline: Timeline, t: float) -> int:
    """The step function's value at t (the first point's value before it)."""
    if not timeline:
        raise ValueError("an empty timeline has no value")
    value = timeline[0][1]
    for at, replicas in timeline:
        if at > t:
            break
        value = replicas
    return value


def values_within(timeline: Timeline, start: float, end: float) -> list[int]:
    """Every value the step function takes in [start, end]."""
    out = [value_at(timeline, start)]
    out += [replicas for at, replicas in timeline if start < at <= end]
    return out


def predicted_timeline(trajectory: Trajectory) -> list[tuple[float, int]]:
    """The simulator's spec.replicas after each sync (the last writer's, when several autoscalers write)."""
    by_time: dict[float, int] = {}
    for sample in trajectory.samples:
        by_time[sample.time] = sample.replicas
    return sorted(by_time.items())


def compare(observed: Timeline, predicted: Timeline, tolerance: Tolerance, horizon: float,
            step: float = 1.0, alternatives: Sequence[Timeline] = ()) -> Comparison:
    """Compare both timelines at every `step` seconds from 0 to `horizon`; a count any of `alternatives` held
    within the time tolerance is accepted too (the `predicted` column stays the first prediction's)."""
    if step <= 0 or horizon < 0:
        raise ValueError("step must be positive and horizon non-negative")
    result = Comparison(tolerance)
    count = int(horizon / step + 1e-9)
    for i in range(count + 1):
        t = i * step
        seen = value_at(observed, t)
        window = [v for timeline in (predicted, *alternatives)
                  for v in values_within(timeline, t - tolerance.seconds, t + tolerance.seconds)]
        low, high = min(window) - tolerance.replicas, max(window) + tolerance.replicas
        result.rows.append(Row(t, seen, value_at(predicted, t), low, high, low <= seen <= high))
    return result


def render_csv(comparison: Comparison) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["time_s", "observed", "predicted", "accepted_low", "accepted_high", "within"])
    for row in comparison.rows:
        writer.writerow([f"{row.time:g}", row.observed, row.predicted, row.low, row.high, int(row.within)])
    return out.getvalue()


WIDTH, HEIGHT, MARGIN = 900, 420, 64


def render_svg(comparison: Comparison, title: str) -> str:
    rows = comparison.rows
    t_max = max((r.time for r in rows), default=1.0) or 1.0
    r_max = max([1] + [max(r.observed, r.high) for r in rows])
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def x(t: float) -> float:
        return MARGIN + plot_w * t / t_max

    def y(v: float) -> float:
        return HEIGHT - MARGIN - plot_h * max(0.0, v) / (r_max * 1.15)

    def steps(values: list[tuple[float, float]]) -> str:
        points: list[str] = []
        last: float | None = None
        for t, v in values:
            if last is not None:
                points.append(f"{x(t):.1f},{y(last):.1f}")
            points.append(f"{x(t):.1f},{y(v):.1f}")
            last = v
        return " ".join(points)

    band_top = " ".join(f"{x(r.time):.1f},{y(r.high):.1f}" for r in rows)
    band_bottom = " ".join(f"{x(r.time):.1f},{y(r.low):.1f}" for r in reversed(rows))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
        'font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{MARGIN}" y="20" font-size="14">{escape(title)}</text>',
        f'<text x="{MARGIN}" y="38">{escape(comparison.summary())}</text>',
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    if rows:
        parts.append(f'<polygon points="{band_top} {band_bottom}" fill="#d9ead3" opacity="0.7">'
                     f"<title>accepted: {escape(comparison.tolerance.describe())}</title></polygon>")
    for row in comparison.differences:
        parts.append(f'<circle cx="{x(row.time):.1f}" cy="{y(row.observed):.1f}" r="2.5" fill="#c00"/>')
    parts += [
        f'<polyline fill="none" stroke="#e69138" stroke-width="2" stroke-dasharray="6,3" '
        f'points="{steps([(r.time, r.predicted) for r in rows])}"/>',
        f'<polyline fill="none" stroke="#3d85c6" stroke-width="2" '
        f'points="{steps([(r.time, r.observed) for r in rows])}"/>',
    ]
    for v in range(0, int(r_max * 1.15) + 1, max(1, int(r_max * 1.15) // 6)):
        parts.append(f'<text x="{MARGIN - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for i in range(6):
        t = t_max * i / 5
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{t:.0f}s</text>')
    parts += [
        f'<text x="{MARGIN}" y="{HEIGHT - 12}"><tspan fill="#3d85c6">observed replicas (real HPA)</tspan>  '
        '<tspan fill="#e69138">predicted (gpu_policy.simulation)</tspan>  <tspan fill="#6a8">accepted band</tspan>'
        '  <tspan fill="#c00">difference</tspan></text>',
        "</svg>",
    ]
    return "\n".join(parts)


def write_comparison(comparison: Comparison, report_dir: Path, name: str, title: str) -> tuple[Path, Path]:
    """`drills/<name>-observed-vs-predicted.csv` and `.svg` under the report folder (no symlink followed)."""
    from gpu_policy.reporting.files import write_report_file

    base = f"drills/{name}-observed-vs-predicted"
    return (write_report_file(report_dir, f"{base}.csv", render_csv(comparison)),
            write_report_file(report_dir, f"{base}.svg", render_svg(comparison, title)))
