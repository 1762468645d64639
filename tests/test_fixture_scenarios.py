"""Fixture sets that must fail behaviour scenarios (simulation, promtool) fail exactly those, and nothing else.

The whole bundled suite runs on each such set, as a user runs it: `gpu-policy check SET` (in this process, shared with
the set's findings and exit-code tests: tests/fixture_runs.py), its scenario results as the command recorded them.
A set that declares `expect_scenarios_fail` (an empty list too) is judged: a scenario is expected to fail when it is
listed there, or when its step is the title of a rule
the set's `expect` lists; every other scenario must pass (or skip, when the set holds nothing it applies to).
"""

from __future__ import annotations

import re

import pytest

from gpu_policy.rules.registry import all_rules
from tests.feature_catalogue import scenarios
from tests.fixture_runs import checked
from tests.fixture_sets import FixtureSet, discover

#: Sets that say which scenarios fail, an empty list included ("none but their rules' own").
SETS = [s for s in discover() if "expect_scenarios_fail" in s.raw]


def simplify(name: str) -> str:
    """Scenario names as `expected.yaml` and the feature files spell them, compared by their letters and digits."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def expected_failures(fixture: FixtureSet) -> set[str]:
    rule_ids = {e.rule for e in fixture.expect}
    titles = {" ".join(r.title.lower().split()) for r in all_rules().values() if r.id in rule_ids}
    by_rule = {s.name for s in scenarios() if any(" ".join(step.lower().split()) in titles for step in s.steps)}
    return {simplify(name) for name in set(fixture.expect_scenarios_fail) | by_rule}


def failed_scenarios(fixture: FixtureSet) -> tuple[dict[str, str], str]:
    """{scenario name, simplified: its failure message} of every scenario that failed or errored, and the output."""
    done = checked(fixture)
    failures = {simplify(s.name): s.message for s in done.scenarios if s.status in ("failed", "error")}
    return failures, done.out + done.err


@pytest.mark.parametrize("fixture", SETS, ids=[s.name for s in SETS])
def test_set_fails_exactly_its_scenarios(fixture: FixtureSet) -> None:
    failures, output = failed_scenarios(fixture)
    want = expected_failures(fixture)
    unexpected = sorted(set(failures) - want)
    missing = sorted(want - set(failures))
    assert not unexpected and not missing, (
        f"unexpected failures: {unexpected}\nscenarios that should have failed: {missing}\n\n{output[-6000:]}"
    )
    for scenario, text in (fixture.raw.get("expect_messages") or {}).items():
        message = failures[simplify(scenario)]
        assert text in message, f"{scenario}: {text!r} not in\n{message[:3000]}"
