"""Trajectories as CSV and as a small hand-written SVG chart (replicas and desired; metric on a second axis)."""

from __future__ import annotations

import csv
import io
import re
from html import escape
from pathlib import Path

from gpu_policy.simulation.engine import Trajectory

WIDTH, HEIGHT, MARGIN = 900, 420, 64
TITLE_WIDTH = 110
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


def readable_title(name: str) -> str:
    """`test_model_a_absorbs_a_traffic_surge-model-a-gpu-scaler` -> `Model a absorbs a traffic surge
    (model-a-gpu-scaler)`: the scenario as a sentence, then the ScaledObject."""
    scenario, _, scaled = name.partition("-")
    words = scenario.removeprefix("test_").replace("_", " ").strip()
    sentence = words[:1].upper() + words[1:] if words else name
    return f"{sentence} ({scaled})" if scaled else sentence


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


def render_svg(traj: Trajectory, title: str) -> str:
    samples = traj.samples
    t_max = max((s.time for s in samples), default=1.0) or 1.0
    r_max = max([traj.max_replicas] + [s.replicas for s in samples] + [s.desired or 0 for s in samples]) or 1
    metrics = [s.metric for s in samples if s.metric is not None]
    m_max = max(metrics, default=1.0) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def x(t: float) -> float:
        return MARGIN + plot_w * t / t_max

    def y_r(v: float) -> float:
        return HEIGHT - MARGIN - plot_h * min(v, r_max * 1.2) / (r_max * 1.2)

    def y_m(v: float) -> float:
        return HEIGHT - MARGIN - plot_h * v / (m_max * 1.1)

    step_points: list[tuple[float, float]] = []
    last: int | None = None
    for s in samples:
        if last is not None:
            step_points.append((x(s.time), y_r(last)))
        step_points.append((x(s.time), y_r(s.replicas)))
        last = s.replicas
    desired = [(x(s.time), y_r(s.desired)) for s in samples if s.desired is not None]
    metric = [(x(s.time), y_m(s.metric)) for s in samples if s.metric is not None]
    title_lines = _wrap(title)[:2]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
        'font-size="11">',
        f"<title>{escape(title)}</title>",
        *(f'<text x="{MARGIN}" y="{18 + 17 * i}" font-size="14">{escape(line)}</text>'
          for i, line in enumerate(title_lines)),
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
        f'<text x="16" y="{MARGIN + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {MARGIN + plot_h / 2:.1f})" fill="#3d85c6">replicas (pods)</text>',
        f'<text x="{WIDTH - 14}" y="{MARGIN + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(90 {WIDTH - 14} {MARGIN + plot_h / 2:.1f})" fill="#6a8">'
        "metric: the trigger's value as KEDA reads it</text>",
        f'<text x="{MARGIN + plot_w / 2:.1f}" y="{HEIGHT - MARGIN + 32}" text-anchor="middle">'
        f"time since the trace started (seconds)</text>",
    ]
    for start, end in _fallback_spans(traj):
        parts.append(
            f'<rect x="{x(start):.1f}" y="{MARGIN}" width="{max(0.0, x(end) - x(start)):.1f}" height="{plot_h}" '
            f'fill="#cfe2f3" opacity="0.6"><title>KEDA fallback replicas in force</title></rect>'
        )
    for start, end in traj.trace.outages:
        parts.append(
            f'<rect x="{x(start):.1f}" y="{MARGIN}" width="{max(0.0, x(min(end, t_max)) - x(start)):.1f}" '
            f'height="{plot_h}" fill="#f4cccc" opacity="0.6"><title>metric outage</title></rect>'
        )
    for name, at in traj.trace.marks.items():
        parts.append(
            f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#bbb" '
            f'stroke-dasharray="3,3"/><text x="{x(at) + 3:.1f}" y="{MARGIN + 12}">{escape(name)}</text>'
        )
    for v in range(0, int(r_max * 1.2) + 1, max(1, int(r_max * 1.2) // 6)):
        parts.append(f'<text x="{MARGIN - 8}" y="{y_r(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for i in range(6):
        level = m_max * 1.1 * i / 5
        parts.append(f'<text x="{WIDTH - MARGIN + 8}" y="{y_m(level) + 4:.1f}" fill="#6a8">{level:.0f}</text>')
    for i in range(6):
        t = t_max * i / 5
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{t:.0f}s</text>')
    parts += [
        _polyline(metric, "#6a8", "2,2"),
        _polyline(desired, "#e69138", "6,3"),
        _polyline(step_points, "#3d85c6"),
        f'<text x="{MARGIN}" y="{HEIGHT - 10}"><tspan fill="#3d85c6">replicas</tspan>  '
        f'<tspan fill="#e69138">desired (metric proposal)</tspan>  <tspan fill="#6a8">metric (right axis)</tspan>'
        f'  <tspan fill="#c00">metric outage</tspan>  <tspan fill="#3d85c6">fallback</tspan>'
        f"  min {traj.min_replicas} / max {traj.max_replicas}</text>",
        "</svg>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(traj: Trajectory, directory: Path, name: str) -> tuple[Path, Path]:
    """The CSV and SVG under `directory/simulation/`, written without following symlinks (reporting.files)."""
    from gpu_policy.reporting.files import write_report_file

    base = slug(name)
    csv_path = write_report_file(directory, f"simulation/{base}.csv", render_csv(traj))
    svg_path = write_report_file(directory, f"simulation/{base}.svg",
                                 render_svg(traj, f"{readable_title(name)}: {traj.workload} under trace "
                                                  f"{traj.trace.name}"))
    return csv_path, svg_path
