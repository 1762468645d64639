"""What a scaling scenario expected of one ScaledObject, recorded by its `Then` steps for the chart: a time window,
the replica level it concerns (if any), and whether it held. The chart draws each one over the trajectory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    label: str
    """What was expected, as the chart's legend says it: `>= 10 replicas within 60 s`."""
    start: float
    """Seconds since the trace started."""
    end: float | None
    """None: until the end of the trace."""
    replicas: int | None
    """The replica level the expectation is about (drawn as a dashed line across the window), None for none."""
    held: bool
