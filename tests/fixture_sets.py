"""Fixture sets: broken manifests next to exactly the findings they must produce (like `kyverno test`)."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.engine import RunOptions, RunResult, run_engine
from gpu_policy.resources import fixtures_dir


@dataclass(frozen=True)
class ExpectedFinding:
    rule: str
    resource: str
    message: str = ""


@dataclass
class FixtureSet:
    name: str
    root: Path
    description: str
    expect: list[ExpectedFinding]
    expect_scenarios_fail: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def policies(self) -> Path | None:
        folder = self.root / "policies"
        return folder if folder.is_dir() else None

    @property
    def profile(self) -> str | None:
        """The sets written for the reference system run with its profile unless they say `profile: none`."""
        value = self.raw.get("profile", "reference")
        return None if value == "none" else str(value)

    @property
    def complete(self) -> bool:
        return bool(self.raw.get("complete", True))

    def options(self) -> RunOptions:
        return RunOptions(paths=[str(self.manifests)], policies_dir=self.policies,
                          profile=None if self.policies else self.profile, complete=self.complete,
                          config_path=self.root / "config.yaml" if (self.root / "config.yaml").is_file() else None)

    def cli_options(self) -> list[str]:
        """The same options as `options()`, as `gpu-policy check` and the pytest plugin spell them."""
        args = ["--policies", str(self.policies)] if self.policies else []
        if self.policies is None and self.profile is not None:
            args += ["--profile", self.profile]
        if (self.root / "config.yaml").is_file():
            args += ["--config", str(self.root / "config.yaml")]
        return [*args, "--complete" if self.complete else "--no-complete"]

    def run(self) -> RunResult:
        return run_engine(self.options())


def discover() -> list[FixtureSet]:
    """Every fixture set, sorted by name. Read once per test process (six test modules ask at collection time);
    each call returns a new list of the same `FixtureSet` objects."""
    return list(_discovered())


@functools.cache
def _discovered() -> tuple[FixtureSet, ...]:
    sets = []
    for expected_file in sorted(fixtures_dir().glob("*/expected.yaml")):
        data = yaml.safe_load(expected_file.read_text()) or {}
        sets.append(FixtureSet(
            name=expected_file.parent.name,
            root=expected_file.parent,
            description=str(data.get("description", "")),
            expect=[ExpectedFinding(e["rule"], e["resource"], str(e.get("message", "")))
                    for e in data.get("expect") or []],
            expect_scenarios_fail=list(data.get("expect_scenarios_fail") or []),
            raw=data,
        ))
    return tuple(sets)


def compare(fixture: FixtureSet, run: RunResult) -> list[str]:
    """Every difference between what the set must produce and what the engine found, as readable lines."""
    got = Counter((f.rule_id, f.resource) for f in run.findings)
    want = Counter((e.rule, e.resource) for e in fixture.expect)
    problems = [f"missing: [{rule}] {res}" for (rule, res), n in (want - got).items() for _ in range(n)]
    problems += [f"unexpected: [{rule}] {res}" for (rule, res), n in (got - want).items() for _ in range(n)]
    for e in fixture.expect:
        if not e.message:
            continue
        messages = [f.message for f in run.findings if (f.rule_id, f.resource) == (e.rule, e.resource)]
        if messages and not any(e.message in m for m in messages):
            problems.append(f"message: [{e.rule}] {e.resource}: none of {messages!r} contains {e.message!r}")
    for f in run.findings:
        if not f.file or not f.line:
            problems.append(f"no file:line for [{f.rule_id}] {f.resource}: {f.message}")
    return problems
