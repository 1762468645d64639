"""Fixture sets that must fail behaviour scenarios (simulation, promtool) fail exactly those, and nothing else.

The whole bundled suite runs on each such set, as a user would run it (`pytest --manifests=SET`). A scenario is
expected to fail when it is listed in `expect_scenarios_fail`, or when its step is the title of a rule the set's
`expect` lists; every other scenario must pass (or skip, when the set holds nothing it applies to).
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpu_policy.plugin import SUITE_FILE
from gpu_policy.rules.registry import all_rules
from tests.feature_catalogue import scenarios
from tests.fixture_sets import FixtureSet, discover

ROOT = Path(__file__).resolve().parent.parent
SETS = [s for s in discover() if s.expect_scenarios_fail]


def simplify(name: str) -> str:
    """pytest-bdd derives test names from scenario names by dropping punctuation: compare letters and digits."""
    return re.sub(r"[^a-z0-9]", "", name.lower().removeprefix("test_"))


def expected_failures(fixture: FixtureSet) -> set[str]:
    rule_ids = {e.rule for e in fixture.expect}
    titles = {" ".join(r.title.lower().split()) for r in all_rules().values() if r.id in rule_ids}
    by_rule = {s.name for s in scenarios() if any(" ".join(step.lower().split()) in titles for step in s.steps)}
    return {simplify(name) for name in set(fixture.expect_scenarios_fail) | by_rule}


def run_suite(fixture: FixtureSet, tmp_path: Path) -> tuple[dict[str, str], str]:
    junit = tmp_path / "junit.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--manifests={fixture.manifests}",
            str(SUITE_FILE), f"--junitxml={junit}", f"--rootdir={ROOT}", *fixture.cli_options()]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert junit.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    failures: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failures[simplify(case.get("name", ""))] = (problem.get("message") or "") + (problem.text or "")
    return failures, done.stdout


@pytest.mark.parametrize("fixture", SETS, ids=[s.name for s in SETS])
def test_set_fails_exactly_its_scenarios(fixture: FixtureSet, tmp_path: Path) -> None:
    failures, output = run_suite(fixture, tmp_path)
    want = expected_failures(fixture)
    unexpected = sorted(set(failures) - want)
    missing = sorted(want - set(failures))
    assert not unexpected and not missing, (
        f"unexpected failures: {unexpected}\nscenarios that should have failed: {missing}\n\n{output[-6000:]}"
    )
    for scenario, text in (fixture.raw.get("expect_messages") or {}).items():
        message = failures[simplify(scenario)]
        assert text in message, f"{scenario}: {text!r} not in\n{message[:3000]}"
