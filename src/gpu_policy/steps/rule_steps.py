"""The generic steps: a scenario names a rule by its title, the engine holds the logic.

    Scenario: spot pods tolerate the capacity-type taint
      Given the manifests under test
      Then spot pods tolerate the capacity-type taint

`Then <title>` matches only the exact title of a registered rule, so it never shadows other steps.
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from gpu_policy.engine import RunResult
from gpu_policy.live.state import unmet_requirement
from gpu_policy.reporting.text import render_rule_failure
from gpu_policy.rules.registry import Rule, all_rules


def _normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


class RuleTitle(parsers.StepParser):
    """Matches a step whose text is the title of a registered rule."""

    def __init__(self) -> None:
        super().__init__("<rule title>")
        self._by_title: dict[str, Rule] | None = None

    def _titles(self) -> dict[str, Rule]:
        if self._by_title is None:
            self._by_title = {_normalise(r.title): r for r in all_rules().values()}
        return self._by_title

    def is_matching(self, name: str) -> bool:
        return _normalise(name) in self._titles()

    def parse_arguments(self, name: str) -> dict[str, Any] | None:
        found = self._titles().get(_normalise(name))
        return None if found is None else {"rule_id": found.id}


@given("the manifests under test", target_fixture="manifests_run")
def manifests_under_test(gpu_policy_run: RunResult) -> RunResult:
    return gpu_policy_run


def assert_rule_holds(run: RunResult, rule_id: str) -> None:
    rule = run.rules[rule_id]
    unmet = unmet_requirement(rule.tags, run.context.live)
    if unmet is not None:  # a runtime rule in a static run judges nothing: skipped, never counted as passed
        pytest.skip(unmet)
    findings = run.findings_for(rule_id)
    if findings:
        pytest.fail(render_rule_failure(rule, findings), pytrace=False)


@then(RuleTitle())
def rule_holds(manifests_run: RunResult, rule_id: str) -> None:
    assert_rule_holds(manifests_run, rule_id)


@then(parsers.parse('the rule "{rule_id}" holds'))
def named_rule_holds(manifests_run: RunResult, rule_id: str) -> None:
    if rule_id not in manifests_run.rules:
        pytest.fail(f"no rule with id {rule_id!r}; see `gpu-policy rules`", pytrace=False)
    assert_rule_holds(manifests_run, rule_id)
