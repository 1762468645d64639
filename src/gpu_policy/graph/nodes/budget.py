"""The bound on placement work: NodePools × pod templates.

Whether a pod template can land on a pool is judged per (pool, template) pair and per instance type of the pool,
so a set of many pools and many templates costs their product (1,500 × 1,500 took minutes). Past
`Limits.max_placement_pairs` the rules that judge placement raise `PlacementOverLimit` before doing any of that
work; the engine lists each of them as not evaluated, with why, and reports one finding for the set.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpu_policy.loading.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True)
class PlacementWork:
    pools: int
    templates: int

    @property
    def pairs(self) -> int:
        return self.pools * self.templates


class PlacementOverLimit(Exception):
    """Raised by the node model instead of judging placement past the limit; never a crash, never a verdict."""

    def __init__(self, work: PlacementWork, limit: int) -> None:
        self.work, self.limit = work, limit
        super().__init__(
            f"{work.pools:,} NodePools × {work.templates:,} pod templates = {work.pairs:,} placement pairs, over "
            f"the limit of {limit:,} (Limits.max_placement_pairs): placement was not evaluated"
        )


def limits_of(options: dict[str, object]) -> Limits:
    """The run's limits: `options["limits"]` when a caller (a test) sets one, else the defaults."""
    limits = options.get("limits")
    return limits if isinstance(limits, Limits) else DEFAULT_LIMITS


def check_placement_work(work: PlacementWork, limits: Limits) -> None:
    if work.pairs > limits.max_placement_pairs:
        raise PlacementOverLimit(work, limits.max_placement_pairs)
