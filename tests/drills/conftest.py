"""Drill tests run real controllers for minutes. They run when GPU_POLICY_DRILLS=1, or GPU_POLICY_TESTBED=1 (CI);
otherwise they are skipped with that reason. The runner and comparison tests (seconds, no controller) always run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_policy.resources import fixtures_dir, reference_manifests_dir

ENABLE_ENVS = ("GPU_POLICY_DRILLS", "GPU_POLICY_TESTBED")
SLOW_ENV = "GPU_POLICY_DRILLS_SLOW"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


def drills_or_skip() -> None:
    if not any(os.environ.get(name) == "1" for name in ENABLE_ENVS):
        pytest.skip("drills take minutes: set GPU_POLICY_DRILLS=1 to run them (CI sets GPU_POLICY_TESTBED=1)")


@dataclass(frozen=True)
class Variant:
    name: str
    root: Path
    data: dict[str, Any]

    @property
    def drill(self) -> str:
        return str(self.data["drill"])

    @property
    def manifests(self) -> list[str]:
        """The reference set, or the files of it named under `base` (a variant that removes an object), then
        the variant's own objects."""
        base = [str(reference_manifests_dir() / name) for name in self.data.get("base") or []]
        return [*(base or [str(reference_manifests_dir())]), str(self.root / "manifests")]

    @property
    def slow(self) -> bool:
        return bool(self.data.get("slow"))


def variants() -> list[Variant]:
    return [Variant(p.parent.name, p.parent, yaml.safe_load(p.read_text(encoding="utf-8")) or {})
            for p in sorted((fixtures_dir() / "drills").glob("*/drill.yaml"))]
