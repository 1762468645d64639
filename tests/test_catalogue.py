"""The rule catalogue is complete: every rule is documented in a feature and proven by a failing fixture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gpu_policy.rules.registry import all_rules
from tests.feature_catalogue import scenarios
from tests.fixture_sets import discover

RULES = all_rules()


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def test_every_rule_explains_itself() -> None:
    incomplete = [r.id for r in RULES.values() if len(r.rationale) < 20 or len(r.fix) < 10 or not r.title]
    assert incomplete == [], f"rules without rationale/fix/title: {incomplete}"


def test_rule_titles_are_unique() -> None:
    counts = Counter(_normalise(r.title) for r in RULES.values())
    assert [t for t, n in counts.items() if n > 1] == []


def test_every_rule_is_a_scenario_step() -> None:
    steps = {_normalise(step) for s in scenarios() for step in s.steps}
    named = {step.split('"')[1] for step in steps if step.startswith("the rule \"")}
    missing = [r.id for r in RULES.values() if _normalise(r.title) not in steps and r.id not in named]
    assert missing == [], f"rules no feature scenario runs: {missing}"


def test_every_rule_has_a_fixture_that_fails_it() -> None:
    """Static fixture sets prove the static rules; live rules (tag `live`) judge a cluster, which no manifest set can
    hold: tests/live proves them, on API-shaped status and against the testbed's API server."""
    expected = {e.rule for s in discover() for e in s.expect}
    live_tests = "".join(p.read_text(encoding="utf-8") for p in (Path(__file__).parent / "live").glob("test_*.py"))
    expected |= {rid for rid, r in RULES.items() if "live" in r.tags and f'"{rid}"' in live_tests}
    missing = sorted(set(RULES) - expected)
    assert missing == [], f"rules that no fixture set proves can fail: {missing}"


def test_every_behaviour_scenario_has_a_fixture_that_fails_it() -> None:
    titles = {_normalise(r.title) for r in RULES.values()}
    # @drill scenarios are proven by tests/drills (every drill fails on each of its broken variants), not by sets
    behaviour = {s.name for s in scenarios()
                 if not any(_normalise(step) in titles for step in s.steps) and "drill" not in s.tags}
    failing = {name for s in discover() for name in s.expect_scenarios_fail}
    assert sorted(behaviour - failing) == [], "scenarios no fixture set makes fail"
