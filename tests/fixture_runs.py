"""One `gpu-policy check` per fixture set and test process, shared by the tests that judge it.

`test_fixture_sets` (exactly the expected findings) and `test_fixture_exit_codes` (exit code, `file:line` output)
judged the same set with two engine runs: `run_engine(fixture.options())`, then `cli.main(["check", ...])`, which runs
the engine again before its feature suite. Both now read one `cli.main` call: its exit code and output, and the
`RunResult` of the engine run the command made (taken as `run_engine` returns it). The command's options must be
those of `fixture.options()` (checked below), so the findings judged are the ones the engine API gives for the set.
`test_fixture_scenarios` (exactly the expected scenarios fail) reads the same call's scenario results: the
`ScenarioResult`s the command's feature suite recorded, taken as they are handed to `build_verdict`. It ran the whole
suite again in a child `python -m pytest --manifests=SET` per set before, with the engine run and the interpreter's
start-up each time; the pytest plugin's route stays tested by tests/output/test_report_dir.py (the plugin writes the
same report files as the command), tests/test_cli.py and tests/output/test_plugin_options.py.

The root conftest.py groups the tests of a set (`shared_group`: `fixture-<set>`), so they run on the same xdist
worker one after the other (next to each other without xdist too), and the set is checked once per test run.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_policy import cli
from gpu_policy import engine as engine_module
from gpu_policy.engine import RunOptions, RunResult
from gpu_policy.reporting import verdict as verdict_module
from gpu_policy.suite.collector import ScenarioResult
from tests.fixture_sets import FixtureSet

ROOT = Path(__file__).resolve().parent.parent
COMPARED_OPTIONS = ("paths", "policies_dir", "profile", "complete", "config_path")
"""The fields `FixtureSet.options()` sets; every other field keeps its default in both paths."""


@dataclass(frozen=True)
class CheckedSet:
    code: int
    out: str
    err: str
    run: RunResult
    scenarios: tuple[ScenarioResult, ...]
    """Every scenario the command's feature suite ran or skipped on the set, with its status and message."""


_checked: OrderedDict[str, CheckedSet] = OrderedDict()
KEPT = 4
"""Runs kept (a RunResult holds the set's graph): a set's tests run one after the other (same group), so a few do."""


@contextlib.contextmanager
def _recording(into: list[RunResult], scenarios: list[tuple[ScenarioResult, ...]]) -> Iterator[None]:
    real = engine_module.run_engine
    real_verdict = verdict_module.build_verdict

    def recorded(options: RunOptions, *args: Any, **kwargs: Any) -> RunResult:
        result = real(options, *args, **kwargs)
        into.append(result)
        return result

    def recorded_verdict(run: RunResult, ran: Any, *args: Any, **kwargs: Any) -> Any:
        scenarios.append(tuple(ran))
        return real_verdict(run, ran, *args, **kwargs)

    engine_module.run_engine = recorded  # type: ignore[assignment]
    verdict_module.build_verdict = recorded_verdict
    try:
        yield
    finally:
        engine_module.run_engine = real  # type: ignore[assignment]
        verdict_module.build_verdict = real_verdict


def checked(fixture: FixtureSet) -> CheckedSet:
    """`gpu-policy check SET OPTIONS` run in this process from the repository root, once per set."""
    if fixture.name in _checked:
        return _checked[fixture.name]
    runs: list[RunResult] = []
    suites: list[tuple[ScenarioResult, ...]] = []
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        with _recording(runs, suites), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["check", str(fixture.manifests), *fixture.cli_options()])
    finally:
        os.chdir(cwd)
    assert len(runs) == 1, f"{fixture.name}: `gpu-policy check` ran the engine {len(runs)} times, expected once"
    assert len(suites) == 1, f"{fixture.name}: `gpu-policy check` judged {len(suites)} suite runs, expected one"
    want = fixture.options()
    for name in COMPARED_OPTIONS:
        got, expected = getattr(runs[0].options, name), getattr(want, name)
        if name == "paths":
            got, expected = [str(Path(p).resolve()) for p in got], [str(Path(p).resolve()) for p in expected]
        assert got == expected, f"{fixture.name}: the command's RunOptions.{name} is {got!r}, options() {expected!r}"
    result = CheckedSet(code, out.getvalue(), err.getvalue(), runs[0], suites[0])
    _checked[fixture.name] = result
    while len(_checked) > KEPT:
        _checked.popitem(last=False)
    return result
