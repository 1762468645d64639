"""Read the feature files as data: which scenarios exist and which rule titles their steps name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gpu_policy.resources import features_dir

_STEP = re.compile(r"^\s*(Given|When|Then|And|But)\s+(.*?)\s*$")
_SCENARIO = re.compile(r"^\s*Scenario(?: Outline)?:\s*(.*?)\s*$")


@dataclass
class Scenario:
    feature: Path
    name: str
    steps: list[str]
    tags: frozenset[str] = frozenset()
    """The feature's and the scenario's own @tags (without the @)."""


def scenarios() -> list[Scenario]:
    found: list[Scenario] = []
    for feature in sorted(features_dir().glob("*.feature")):
        background: list[str] = []
        current: Scenario | None = None
        in_background = False
        feature_tags: set[str] = set()
        pending_tags: set[str] = set()
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("@"):
                pending_tags |= {t.lstrip("@") for t in line.split() if t.startswith("@")}
                continue
            if line.strip().startswith("Feature:"):
                feature_tags, pending_tags = pending_tags, set()
                continue
            if line.strip().startswith("Background:"):
                in_background = True
                continue
            match = _SCENARIO.match(line)
            if match:
                in_background = False
                current = Scenario(feature, match.group(1), list(background), frozenset(feature_tags | pending_tags))
                pending_tags = set()
                found.append(current)
                continue
            step = _STEP.match(line)
            if step:
                if in_background:
                    background.append(step.group(2))
                elif current is not None:
                    current.steps.append(step.group(2))
    return found
