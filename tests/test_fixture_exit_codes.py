"""`gpu-policy check` on every fixture set: exit 1 when the set must fail something, 0 for the sets that prove a
pass (helm output, kustomize, an exempted privilege) or only warn, and every expected finding printed as
`file:line`. Run in this process (`cli.main`, the function the `gpu-policy` script calls), not one child process
per set: the interpreter and import start-up was most of each test's time. The run is shared with
test_fixture_sets (tests/fixture_runs.py: once per set); tests/test_cli.py runs the script itself."""

from __future__ import annotations

import pytest

from gpu_policy.findings import Severity
from gpu_policy.rules.registry import all_rules
from tests.fixture_runs import checked
from tests.fixture_sets import FixtureSet, discover

SETS = discover()


@pytest.mark.parametrize("fixture", SETS, ids=[s.name for s in SETS])
def test_check_exit_code_and_findings(fixture: FixtureSet) -> None:
    done = checked(fixture)
    code, out, err = done.code, done.out, done.err
    # warnings are reported but do not fail the run (--fail-on error is the default)
    rules = all_rules()
    must_fail = bool(fixture.expect_scenarios_fail) or any(
        rules[e.rule].severity is Severity.ERROR for e in fixture.expect
    )
    assert code == (1 if must_fail else 0), out[-5000:] + err[-2000:]
    for expected in fixture.expect:
        assert f"error: [{expected.rule}] {expected.resource}" in out or (
            f"warning: [{expected.rule}] {expected.resource}" in out
        ), f"[{expected.rule}] {expected.resource} not reported as file:line: severity: [rule] resource"
