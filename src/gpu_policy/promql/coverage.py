"""Which alerts no scenario or promtool test exercises (what prometheus/prometheus#11848 asks promtool
for)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

# The alert steps of gpu_policy.steps.alert_steps that name an alert: `"Alert" is firing|is not
# firing|resolves`.
_STEP = re.compile(
    r'^\s*(?:Given|When|Then|And|But|\*)\s+"([^"]+)" (?:is firing|is not firing|resolves by)\b', re.M
)


def exercised_by_features(paths: Iterable[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for match in _STEP.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(match.group(1), []).append(f"{path}:{line}")
    return found


def exercised_by_test_files(paths: Iterable[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in (data or {}).get("tests") or []:
            for check in (test or {}).get("alert_rule_test") or []:
                name = (check or {}).get("alertname")
                if isinstance(name, str):
                    found.setdefault(name, []).append(str(path))
    return found


def unexercised(defined: Iterable[str], *exercised: dict[str, list[str]]) -> list[str]:
    covered = {name for table in exercised for name in table}
    return sorted(set(defined) - covered)
