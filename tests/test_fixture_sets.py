"""Every fixture set produces exactly its expected findings: proof that each rule can fail, and only when it should.

The findings are those of the engine run `gpu-policy check` makes on the set (tests/fixture_runs.py: one run per set,
shared with test_fixture_exit_codes, with the options of `FixtureSet.options()`)."""

from __future__ import annotations

import pytest

from tests.fixture_runs import checked
from tests.fixture_sets import FixtureSet, compare, discover

SETS = discover()


@pytest.mark.parametrize("fixture", SETS, ids=[s.name for s in SETS])
def test_fixture_set_produces_exactly_its_expected_findings(fixture: FixtureSet) -> None:
    run = checked(fixture).run
    problems = compare(fixture, run)
    if problems:
        rendered = "\n\n".join(f.render() for f in run.findings)
        pytest.fail("\n".join(problems) + "\n\nall findings:\n" + rendered, pytrace=False)


def test_fixture_sets_exist() -> None:
    assert len(SETS) > 0, "fixtures/*/expected.yaml: no fixture sets found"
