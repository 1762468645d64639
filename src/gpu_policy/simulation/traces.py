"""Metric traces: what the GPUs of a workload are asked to do over time, with gaps for metric outages.

Two kinds:
- `demand`: total GPU work in GPU-percent (100 = one GPU fully busy). The ready pods share it evenly and each
  reports min(100, demand / ready pods), so adding pods lowers per-pod utilization and a surge can be
  absorbed.
- `per_pod`: the utilization every running pod reports, whatever the replica count (a load that does not
respond).

A trace file (YAML, `fixtures/traces/<name>.yaml`) has `points` (piecewise linear between `{at, value}`) or a
`square_wave`, optional `outages` (`{from, to}`: no series at all in [from, to)), and `marks` naming
instants the
scenario steps measure from (`rise`, `fall`, `outage`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from gpu_policy.resources import traces_dir as bundled_traces_dir

TraceKind = Literal["demand", "per_pod"]


def traces_dir() -> Path:
    return bundled_traces_dir()


@dataclass(frozen=True)
class Trace:
    name: str
    kind: TraceKind
    duration_seconds: int
    times: tuple[float, ...]
    values: tuple[float, ...]
    outages: tuple[tuple[float, float], ...] = ()
    marks: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def value_at(self, t: float) -> float:
        times, values = self.times, self.values
        if t <= times[0]:
            return values[0]
        if t >= times[-1]:
            return values[-1]
        i = bisect.bisect_right(times, t)
        t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def in_outage(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.outages)

    def mark(self, name: str) -> float:
        if name not in self.marks:
            raise KeyError(f"trace {self.name!r} has no mark {name!r} (marks: {sorted(self.marks)})")
        return self.marks[name]

    def per_pod_utilization(self, t: float, ready_pods: int, running_pods: int) -> list[float]:
        """The GPU utilization (%) of every running pod at t; [] during an outage (no series at all)."""
        if self.in_outage(t):
            return []
        value = self.value_at(t)
        if self.kind == "per_pod":
            return [value] * running_pods
        share = min(100.0, value / ready_pods) if ready_pods else 0.0
        # starting (not ready) pods hold a GPU but serve nothing yet: they report 0 %
        return [share] * ready_pods + [0.0] * max(0, running_pods - ready_pods)


def parse_trace(name: str, data: dict) -> Trace:
    kind = data.get("kind", "demand")
    if kind not in ("demand", "per_pod"):
        raise ValueError(f"trace {name}: kind must be demand or per_pod, not {kind!r}")
    duration = int(data["duration_seconds"])
    if "square_wave" in data:
        wave = data["square_wave"]
        half = int(wave["half_period_seconds"])
        until = int(wave.get("until", duration))
        times: list[float] = []
        values: list[float] = []
        level = float(wave["low"])
        for start in range(0, until, half):
            times += [float(start), float(min(start + half, until)) - 1e-6]
            values += [level, level]
            level = float(wave["high"]) if level == float(wave["low"]) else float(wave["low"])
    else:
        points = sorted(data["points"], key=lambda p: float(p["at"]))
        times = [float(p["at"]) for p in points]
        values = [float(p["value"]) for p in points]
    outages = tuple((float(o["from"]), float(o["to"])) for o in data.get("outages") or [])
    marks = {str(k): float(v) for k, v in (data.get("marks") or {}).items()}
    return Trace(
        name, kind, duration, tuple(times), tuple(values), outages, marks, str(data.get("description", ""))
    )


def load_trace(name: str, directory: Path | None = None) -> Trace:
    folder = directory or traces_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise FileNotFoundError(f"no trace {name!r} in {folder} (known: {', '.join(known)})")
    return parse_trace(name, yaml.safe_load(path.read_text()) or {})
