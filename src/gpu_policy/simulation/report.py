"""Trajectories as CSV and as a small hand-written SVG chart (replicas and desired; metric on a second axis; what
the scenario expected, and whether it held)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from gpu_policy.simulation.engine import Trajectory
from gpu_policy.simulation.expectations import Expectation

WIDTH, HEIGHT, MARGIN = 900, 420, 64
TITLE_WIDTH = 85
"""Characters per title line; a longer title wraps instead of being cut off."""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "scenario"


def render_csv(traj: Trajectory) -> str:
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(
        [
            "time_s",
            "metric",
            "desired",
            "replicas",
            "ready",
            "limiting_reason",
            "writer",
            "fallback",
            "error",
        ]
    )
    for s in traj.samples:
        writer.writerow(
            [
                int(s.time),
                "" if s.metric is None else f"{s.metric:.3f}",
                "" if s.desired is None else s.desired,
                s.replicas,
                s.ready,
                s.reason,
                s.writer,
                int(s.fallback),
                s.error,
            ]
        )
    return handle.getvalue()


def write_csv(traj: Trajectory, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_csv(traj), newline="")
    return path


def _polyline(points: list[tuple[float, float]], color: str, dash: str = "") -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="2"{extra} points="{coords}"/>'


def _wrap(text: str, width: int = TITLE_WIDTH) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*lines, current] if current else lines


def _fallback_spans(traj: Trajectory) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for s in traj.samples:
        if s.fallback and start is None:
            start = s.time
        elif not s.fallback and start is not None:
            spans.append((start, s.time))
            start = None
    if start is not None and traj.samples:
        spans.append((start, traj.samples[-1].time))
    return spans


STATUS_COLORS = {"PASSED": "#2e7d32", "FAILED": "#c62828"}
"""Any other status (SKIPPED: a step skipped before the end) is drawn grey."""


def chart_prefix(feature_file: str, scenario: str) -> str:
    """`scaling_behavior.model-a-absorbs-a-traffic-surge.`: the start of the file names of one scenario's charts
    (then the ScaledObject's name). Neither part holds a dot, so one scenario's prefix never starts another's."""
    feature = re.sub(r"[^a-z0-9]+", "-", Path(feature_file).stem.lower()).strip("-") or "feature"
    name = re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-") or "scenario"
    return f"{feature}.{name}."


def render_svg(traj: Trajectory, title: str, *, subtitle: str = "", expectations: Sequence[Expectation] = (),
               status: str = "") -> str:
    """The trajectory as an SVG chart: `title` (the scenario's name, wrapped, never cut), `subtitle` (what ran),
    replicas and the HPA's desired count on the left axis (pods), the trigger's metric on the right axis, time in
    seconds; metric outages and KEDA fallback shaded; each expectation drawn as a window (green held, red not)
    with its replica level dashed; `status` (PASSED/FAILED) marked in the corner."""
    samples = traj.samples
    t_max = max((s.time for s in samples), default=1.0) or 1.0
    levels = [e.replicas for e in expectations if e.replicas is not None]
    r_max = max([traj.max_replicas, *levels] + [s.replicas for s in samples] + [s.desired or 0 for s in samples]) or 1
    metrics = [s.metric for s in samples if s.metric is not None]
    m_max = max(metrics, default=1.0) or 1.0
    title_lines = _wrap(title)
    top = 22 + 17 * (len(title_lines) + (1 if subtitle else 0)) + 8
    height = HEIGHT + top - MARGIN
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    bottom = top + plot_h

    def x(t: float) -> float:
        return MARGIN + plot_w * min(max(t, 0.0), t_max) / t_max

    def y_r(v: float) -> float:
        return bottom - plot_h * min(v, r_max * 1.2) / (r_max * 1.2)

    def y_m(v: float) -> float:
        return bottom - plot_h * v / (m_max * 1.1)

    step_points: list[tuple[float, float]] = []
    last: int | None = None
    for s in samples:
        if last is not None:
            step_points.append((x(s.time), y_r(last)))
        step_points.append((x(s.time), y_r(s.replicas)))
        last = s.replicas
    desired = [(x(s.time), y_r(s.desired)) for s in samples if s.desired is not None]
    metric = [(x(s.time), y_m(s.metric)) for s in samples if s.metric is not None]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(title)}{' (' + escape(status) + ')' if status else ''}</title>",
        *(f'<text x="{MARGIN}" y="{22 + 17 * i}" font-size="14" font-weight="bold">{escape(line)}</text>'
          for i, line in enumerate(title_lines)),
    ]
    if subtitle:
        parts.append(f'<text x="{MARGIN}" y="{22 + 17 * len(title_lines)}" fill="#555">{escape(subtitle)}</text>')
    if status:
        parts.append(f'<text x="{WIDTH - MARGIN}" y="22" text-anchor="end" font-size="16" font-weight="bold" '
                     f'fill="{STATUS_COLORS.get(status, "#777")}" class="status">{escape(status)}</text>')
    parts += [
        f'<rect x="{MARGIN}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
        f'<text x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2:.1f})" fill="#3d85c6">replicas (pods)</text>',
        f'<text x="{WIDTH - 14}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(90 {WIDTH - 14} {top + plot_h / 2:.1f})" fill="#6a8">'
        "metric: the trigger's value as KEDA reads it (trigger units)</text>",
        f'<text x="{MARGIN + plot_w / 2:.1f}" y="{bottom + 32}" text-anchor="middle">'
        "time since the trace started (s)</text>",
    ]
    for start, end in _fallback_spans(traj):
        parts.append(
            f'<rect x="{x(start):.1f}" y="{top}" width="{max(0.0, x(end) - x(start)):.1f}" height="{plot_h}" '
            f'fill="#cfe2f3" opacity="0.6"><title>KEDA fallback replicas in force</title></rect>'
        )
    for start, end in traj.trace.outages:
        parts.append(
            f'<rect x="{x(start):.1f}" y="{top}" width="{max(0.0, x(end) - x(start)):.1f}" '
            f'height="{plot_h}" fill="#f4cccc" opacity="0.6"><title>metric outage</title></rect>'
        )
    for i, expected in enumerate(expectations):
        color = "#2e7d32" if expected.held else "#c62828"
        end = t_max if expected.end is None else expected.end
        verdict = "held" if expected.held else "NOT met"
        parts.append(
            f'<g class="expected"><rect x="{x(expected.start):.1f}" y="{top}" '
            f'width="{max(1.0, x(end) - x(expected.start)):.1f}" height="{plot_h}" fill="{color}" opacity="0.08" '
            f'stroke="{color}" stroke-dasharray="4,3"><title>expected: {escape(expected.label)} ({verdict})</title>'
            f'</rect><text x="{x(expected.start) + 3:.1f}" y="{top + 24 + 12 * i}" fill="{color}">'
            f"expected: {escape(expected.label)} ({verdict})</text>"
        )
        if expected.replicas is not None:
            parts.append(
                f'<line x1="{x(expected.start):.1f}" x2="{x(end):.1f}" y1="{y_r(expected.replicas):.1f}" '
                f'y2="{y_r(expected.replicas):.1f}" stroke="{color}" stroke-width="2" stroke-dasharray="8,4"/>'
            )
        parts.append("</g>")
    for name, at in traj.trace.marks.items():
        parts.append(
            f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top}" y2="{bottom}" stroke="#bbb" '
            f'stroke-dasharray="3,3"/><text x="{x(at) + 3:.1f}" y="{top + 12}">{escape(name)}</text>'
        )
    for v in range(0, int(r_max * 1.2) + 1, max(1, int(r_max * 1.2) // 6)):
        parts.append(f'<text x="{MARGIN - 8}" y="{y_r(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for i in range(6):
        level = m_max * 1.1 * i / 5
        parts.append(f'<text x="{WIDTH - MARGIN + 8}" y="{y_m(level) + 4:.1f}" fill="#6a8">{level:.0f}</text>')
    for i in range(6):
        t = t_max * i / 5
        parts.append(f'<text x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">{t:.0f}</text>')
    parts += [
        _polyline(metric, "#6a8", "2,2"),
        _polyline(desired, "#e69138", "6,3"),
        _polyline(step_points, "#3d85c6"),
        f'<text x="{MARGIN}" y="{height - 10}"><tspan fill="#3d85c6">replicas</tspan>  '
        f'<tspan fill="#e69138">desired (metric proposal)</tspan>  <tspan fill="#6a8">metric (right axis)</tspan>'
        f'  <tspan fill="#c00">metric outage</tspan>  <tspan fill="#3d85c6">fallback</tspan>'
        f'  <tspan fill="#2e7d32">expected window (red: not met)</tspan>'
        f"  min {traj.min_replicas} / max {traj.max_replicas}</text>",
        "</svg>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(traj: Trajectory, directory: Path, prefix: str, scaled_object: str, *, title: str,
                 subtitle: str = "", expectations: Sequence[Expectation] = (), status: str = "") -> tuple[Path, Path]:
    """The CSV and SVG of one ScaledObject's run under `directory/simulation/`, named `prefix` + the ScaledObject,
    written without following symlinks (reporting.files)."""
    from gpu_policy.reporting.files import write_report_file

    base = prefix + slug(scaled_object)
    csv_path = write_report_file(directory, f"simulation/{base}.csv", render_csv(traj))
    svg_path = write_report_file(directory, f"simulation/{base}.svg",
                                 render_svg(traj, title, subtitle=subtitle, expectations=expectations,
                                            status=status))
    return csv_path, svg_path
