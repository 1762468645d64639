"""The drills, by name: one module per drill under gpu_policy.drills, each defining `SPEC`."""

from __future__ import annotations

import importlib

from gpu_policy.drills.base import DrillSpec
from gpu_policy.errors import GpuPolicyError

DRILL_MODULES = ("alerts", "surge", "scale_down", "surge_capacity", "consolidation", "spot_interruption")
"""Modules under gpu_policy.drills holding one drill each, in the order `gpu-policy drill --list` shows them."""


def all_drills() -> dict[str, DrillSpec]:
    specs: dict[str, DrillSpec] = {}
    for module in DRILL_MODULES:
        spec = importlib.import_module(f"gpu_policy.drills.{module}").SPEC
        if not isinstance(spec, DrillSpec):
            raise TypeError(f"gpu_policy.drills.{module}.SPEC is not a DrillSpec")
        specs[spec.name] = spec
    return specs


def get_drill(name: str) -> DrillSpec:
    drills = all_drills()
    if name not in drills:
        raise GpuPolicyError(f"no drill named {name!r}; known: {', '.join(drills)} (gpu-policy drill --list)")
    return drills[name]
