"""A pytest plugin object that records every scenario of a run, step by step, for the one verdict.

`gpu-policy check` passes a `ScenarioCollector` to `pytest.main(plugins=[...])`; the pytest plugin registers one
too. It records what ran (and what `--only`/`--skip` deselected), each step's outcome and duration, the failure
or skip reason, and the rule ids a scenario's steps run. An exception other than a failed assertion inside a step
is an internal error (a bug of the tool), never a finding.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.suite.selection import Selection, rule_ids_of_steps


@dataclass
class StepResult:
    keyword: str
    name: str
    line: int
    status: str = "skipped"
    """passed, failed, skipped or undefined (cucumber's statuses)."""
    duration_ns: int = 0
    error: str | None = None


@dataclass
class ScenarioResult:
    nodeid: str
    feature_file: str
    feature_name: str
    feature_line: int
    feature_description: str
    name: str
    line: int
    tags: list[str]
    rule_ids: list[str]
    steps: list[StepResult] = field(default_factory=list)
    status: str = "passed"
    """passed, failed, skipped or error (an internal error)."""
    message: str = ""
    """The failure or skip reason, as the step gave it."""
    traceback: str = ""
    duration_s: float = 0.0


def _failure_text(exc: BaseException) -> tuple[bool, str]:
    """(is an assertion-style failure, text). `pytest.fail` and assert are failures; anything else a crash."""
    if isinstance(exc, pytest.fail.Exception):
        return True, str(exc.msg or "")
    if isinstance(exc, AssertionError):
        return True, str(exc) or "assertion failed"
    return False, f"{type(exc).__name__}: {exc}"


def _template_of(item: pytest.Item) -> Any:
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    obj = getattr(item, "obj", None)
    try:
        return scenario_wrapper_template_registry.get(obj) if obj is not None else None
    except TypeError:
        return None


class ScenarioCollector:
    def __init__(self, selection: Selection | None = None, progress: bool = False) -> None:
        self.selection = selection or Selection()
        self.progress = progress
        self._done = 0
        self.results: dict[str, ScenarioResult] = {}
        self.deselected: list[str] = []
        self.collection_errors: list[str] = []
        self.collected = 0
        self._step_started: dict[str, int] = {}

    # -- collection -----------------------------------------------------------------------------------------
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not self.selection:
            return
        keep: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            template = _template_of(item)
            if template is None:
                keep.append(item)
                continue
            ids = rule_ids_of_steps(s.name for s in template.steps)
            tags = set(template.tags) | set(template.feature.tags)
            (keep if self.selection.scenario_selected(ids, tags) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            self.deselected.extend(i.nodeid for i in dropped)
            items[:] = keep

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid or 'collection'}: {report.longreprtext}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)

    # -- scenarios and steps (pytest-bdd hooks) ---------------------------------------------------------------
    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        feature_path = Path(feature.filename)
        try:
            shown = str(feature_path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            shown = str(feature_path)
        self.results[request.node.nodeid] = ScenarioResult(
            nodeid=request.node.nodeid, feature_file=shown, feature_name=feature.name,
            feature_line=feature.line_number, feature_description=feature.description or "",
            name=scenario.name, line=scenario.line_number,
            tags=sorted(set(scenario.tags) | set(feature.tags)),
            rule_ids=list(rule_ids_of_steps(s.name for s in scenario.steps)),
            steps=[StepResult(s.keyword.strip(), s.name, s.line_number) for s in scenario.steps],
        )

    def _step(self, request: pytest.FixtureRequest, step: Any) -> StepResult | None:
        result = self.results.get(request.node.nodeid)
        if result is None:
            return None
        for candidate in result.steps:
            if candidate.line == step.line_number and candidate.name == step.name:
                return candidate
        return None

    def pytest_bdd_before_step_call(self, request: pytest.FixtureRequest, step: Any) -> None:
        self._step_started[request.node.nodeid] = time.perf_counter_ns()

    def _elapsed(self, request: pytest.FixtureRequest) -> int:
        started = self._step_started.pop(request.node.nodeid, None)
        return time.perf_counter_ns() - started if started is not None else 0

    def pytest_bdd_after_step(self, request: pytest.FixtureRequest, step: Any) -> None:
        found = self._step(request, step)
        if found is not None:
            found.status, found.duration_ns = "passed", self._elapsed(request)

    def pytest_bdd_step_error(self, request: pytest.FixtureRequest, step: Any, exception: Exception) -> None:
        found = self._step(request, step)
        result = self.results.get(request.node.nodeid)
        if isinstance(exception, pytest.skip.Exception):
            if found is not None:
                found.status = "skipped"
            return
        failure, text = _failure_text(exception)
        if found is not None:
            found.status, found.duration_ns, found.error = "failed", self._elapsed(request), text
        if result is not None:
            result.status = "failed" if failure else "error"
            result.message = text
            if not failure:
                result.traceback = "".join(traceback.format_exception(exception))

    def pytest_bdd_step_func_lookup_error(self, request: pytest.FixtureRequest, step: Any,
                                          exception: Exception) -> None:
        found = self._step(request, step)
        result = self.results.get(request.node.nodeid)
        if found is not None:
            found.status = "undefined"
        if result is not None:
            result.status, result.message = "failed", f"no step definition matches: {step.keyword} {step.name}"

    # -- outcomes ------------------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            if (report.failed and report.when != "teardown") or report.skipped:
                # a test that never reached its scenario (a fixture failed or skipped during setup)
                self.results[report.nodeid] = ScenarioResult(
                    nodeid=report.nodeid, feature_file=report.location[0], feature_name="", feature_line=0,
                    feature_description="", name=report.nodeid.rsplit("::", 1)[-1], line=(report.location[1] or 0) + 1,
                    tags=[], rule_ids=[], status="skipped" if report.skipped else "error",
                    message=_skip_reason(report) if report.skipped else report.longreprtext,
                )
            return
        result.duration_s += report.duration
        if report.skipped and result.status == "passed":
            result.status, result.message = "skipped", _skip_reason(report)
        elif report.failed and result.status == "passed":
            result.status, result.message = "failed", report.longreprtext

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self._done += 1
        if self.progress:
            result = self.results.get(nodeid)
            name = (result.name if result else nodeid)[:60]
            sys.stderr.write(f"\r\x1b[K[{self._done}/{self.collected}] {name}")
            sys.stderr.flush()

    def end_progress(self) -> None:
        if self.progress and self._done:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    # -- summary ---------------------------------------------------------------------------------------------
    def scenarios(self) -> list[ScenarioResult]:
        return list(self.results.values())


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")

