"""Alert tests run ahead in batched `promtool test rules` runs give exactly what one run per file gives."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gpu_policy.promql.testrun as testrun
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.promql.alerts import (
    AlertBehaviour,
    AlertPlan,
    AlertTestError,
    AllFiring,
    Expect,
    Resolves,
    alert_names,
    prepare_alert_runs,
)
from gpu_policy.promql.extract import RuleFile, prometheus_rule_file
from gpu_policy.promql.promtool import PromtoolResult, run_promtool
from gpu_policy.promql.testrun import (
    SeriesTable,
    run_test_batch,
    run_test_files,
    split_batch_output,
    unit_test_text,
    user_test_files,
)

RULES = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: gpu-alerts, namespace: monitoring}
spec:
  groups:
    - name: gpu-alerts
      rules:
        - alert: GPUMemoryPressure
          expr: DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9
          for: 2m
          labels: {severity: critical}
          annotations: {summary: "GPU {{ $labels.gpu }} of {{ $labels.pod }}"}
        - alert: HighGPUUtilization
          expr: DCGM_FI_DEV_GPU_UTIL > 90
          for: 5m
          labels: {severity: warning}
          annotations: {summary: "GPU {{ $labels.gpu }} of {{ $labels.pod }} busy"}
"""
FULL_THEN_FREE = SeriesTable(
    "1m",
    [
        ('DCGM_FI_DEV_FB_USED{gpu="0",pod="p"}', "23000x5 1000x5"),
        ('DCGM_FI_DEV_FB_FREE{gpu="0",pod="p"}', "1000x5 23000x5"),
        ('DCGM_FI_DEV_FB_USED{gpu="1",pod="q"}', "12000x10"),
        ('DCGM_FI_DEV_FB_FREE{gpu="1",pod="q"}', "12000x10"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",pod="p"}', "99x10"),
    ],
)
BAD_NOTATION = SeriesTable("1m", [('DCGM_FI_DEV_FB_USED{gpu="0",pod="p"}', "12000x10 oops")])


@pytest.fixture
def rule_files(graph_of: Callable[[str], ResourceGraph]) -> list[RuleFile]:
    return [prometheus_rule_file(graph_of(RULES).of_kind("PrometheusRule")[0], "rules.yaml")]


@pytest.fixture
def promtool_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    """Every promtool process the test files start (their arguments)."""
    runs: list[tuple[str, ...]] = []

    def counted(args: list[str], cwd: Path | str | None = None, timeout: float = 120) -> PromtoolResult:
        runs.append(tuple(args))
        return run_promtool(args, cwd=cwd, timeout=timeout)

    monkeypatch.setattr(testrun, "run_promtool", counted)
    yield runs


def _single(rule_files: list[RuleFile], name: str, text: str, folder: Path) -> PromtoolResult:
    """`promtool test rules <name>` of this file alone, next to the rule files."""
    folder.mkdir()
    for rule_file in rule_files:
        rule_file.write(folder)
    (folder / name).write_text(text, encoding="utf-8")
    return run_promtool(["test", "rules", name], cwd=folder)


def test_a_batch_gives_each_file_exactly_what_its_own_run_gives(rule_files: list[RuleFile], tmp_path: Path) -> None:
    not_loading = RuleFile(name="broken.yaml", doc=None, lines=["groups:", "- name: g", "  rules:",
                                                                 "  - alert: Broken", "    expr: sum(up"])
    table = FULL_THEN_FREE
    files = [
        # passes: nothing fires at 1m (promtool: SUCCESS)
        ("test.yaml", unit_test_text(rule_files, table, [("GPUMemoryPressure", "1m", [])])),
        # fails: GPU 0 fires at 3m and 4m, nothing expected (promtool's exp/got diff, labels and annotations)
        ("test.yaml", unit_test_text(rule_files, table, [("GPUMemoryPressure", "3m", []),
                                                          ("GPUMemoryPressure", "4m", []),
                                                          ("HighGPUUtilization", "6m", [])])),
        # does not load: bad series notation
        ("test.yaml", unit_test_text(rule_files, BAD_NOTATION, [("GPUMemoryPressure", "1m", [])])),
        # does not load: a rule file whose expression does not parse
        ("test.yaml", unit_test_text([*rule_files, not_loading], table, [("GPUMemoryPressure", "1m", [])])),
        # passes again after the failures, under another name (a hand-written file keeps its own)
        ("user-test-0.yaml", unit_test_text(rule_files, table, [("HighGPUUtilization", "2m", [])])),
    ]
    batched = run_test_batch([*rule_files, not_loading], files)
    singles = [_single([*rule_files, not_loading], name, text, tmp_path / f"single-{i}")
               for i, (name, text) in enumerate(files)]
    assert [r.returncode for r in singles] == [0, 1, 1, 1, 0]  # the cases above are what they say
    assert "got:[" in singles[1].output and "broken.yaml" in singles[3].output
    assert batched == singles
    assert batched[1] is not None and batched[1].output.startswith("Unit Testing:  test.yaml\n  FAILED:\n")


def test_an_output_that_is_not_one_section_per_file_answers_nothing() -> None:
    names, singles = ["b-0.yaml", "b-1.yaml"], ["test.yaml", "test.yaml"]
    ok = "Unit Testing:  b-0.yaml\n  SUCCESS\n\nUnit Testing:  b-1.yaml\n  FAILED:\n    err\n\n\n"
    answered = split_batch_output(PromtoolResult(("test", "rules", *names), 1, ok), names, singles)
    assert [(r.returncode, r.output) for r in answered if r] == [
        (0, "Unit Testing:  test.yaml\n  SUCCESS\n\n"), (1, "Unit Testing:  test.yaml\n  FAILED:\n    err\n\n\n")]
    for returncode, output in [
        (2, ok),  # a crash (a Go panic exits 2)
        (0, ok),  # a file failed but promtool says all passed
        (1, ok.replace("Unit Testing:  b-1.yaml\n", "")),  # a header missing
        (1, "panic: runtime error\n" + ok),  # something before the first header
        (0, ok.replace("  FAILED:\n    err\n\n\n", "  SUCCESS\nextra\n\n")),  # a section that is neither
    ]:
        assert split_batch_output(PromtoolResult(("test",), returncode, output), names, singles) == [None, None]


def _calls_of_a_scenario() -> list[Expect | Resolves | AllFiring]:
    return [
        Expect("GPUMemoryPressure", "1m", False, {"gpu": "0"}),
        Expect("GPUMemoryPressure", "3m", True, {"gpu": "0", "pod": "p"}),
        Expect("GPUMemoryPressure", "3m", False, {"gpu": "1"}),
        Expect("GPUMemoryPressure", "4m", False),  # fails: GPU 0 is firing
        Resolves("GPUMemoryPressure", "9m", {"gpu": "0"}),
        Resolves("HighGPUUtilization", "9m"),  # fails: still firing
        AllFiring(),
        Expect("NoSuchAlert", "1m", True),  # fails before promtool: no such alert
    ]


def _outcome(behaviour: AlertBehaviour, call: Expect | Resolves | AllFiring) -> object:
    try:
        return call.run(behaviour)
    except AlertTestError as exc:
        return ("AlertTestError", str(exc))


def test_prepared_runs_give_every_step_the_verdict_of_its_own_runs_in_two_promtool_runs(
    rule_files: list[RuleFile], promtool_runs: list[tuple[str, ...]]
) -> None:
    names = set(alert_names(rule_files))
    calls = _calls_of_a_scenario()
    direct = AlertBehaviour(rule_files, names, FULL_THEN_FREE)
    expected = [_outcome(direct, call) for call in calls]
    direct_runs = len(promtool_runs)
    promtool_runs.clear()

    prepared = prepare_alert_runs(rule_files, names, [AlertPlan(FULL_THEN_FREE, list(calls))])
    assert len(promtool_runs) == 2  # what fired, then the confirmations
    assert direct_runs > 2
    promtool_runs.clear()
    ahead = AlertBehaviour(rule_files, names, FULL_THEN_FREE, prepared=prepared.tests)
    assert [_outcome(ahead, call) for call in calls] == expected
    assert promtool_runs == []  # every step found its run
    assert [v for v in expected if not getattr(v, "ok", True)]  # failures (promtool's diff) were compared too


def test_a_table_that_does_not_load_fails_its_scenario_only_with_todays_error(
    rule_files: list[RuleFile], promtool_runs: list[tuple[str, ...]]
) -> None:
    names = set(alert_names(rule_files))
    bad = [Expect("GPUMemoryPressure", "1m", False), Expect("GPUMemoryPressure", "2m", True)]
    good = [Expect("GPUMemoryPressure", "3m", True, {"gpu": "0"})]
    today_bad = _outcome(AlertBehaviour(rule_files, names, BAD_NOTATION), bad[0])
    today_good = _outcome(AlertBehaviour(rule_files, names, FULL_THEN_FREE), good[0])
    assert isinstance(today_bad, tuple) and "could not run the alert test" in today_bad[1]
    promtool_runs.clear()

    prepared = prepare_alert_runs(rule_files, names, [AlertPlan(BAD_NOTATION, bad), AlertPlan(FULL_THEN_FREE, good)])
    assert len(promtool_runs) == 2
    promtool_runs.clear()
    assert _outcome(AlertBehaviour(rule_files, names, BAD_NOTATION, prepared=prepared.tests), bad[0]) == today_bad
    assert _outcome(AlertBehaviour(rule_files, names, FULL_THEN_FREE, prepared=prepared.tests), good[0]) == today_good
    assert promtool_runs == []


def test_a_step_the_plan_did_not_foresee_runs_promtool_itself(
    rule_files: list[RuleFile], promtool_runs: list[tuple[str, ...]]
) -> None:
    names = set(alert_names(rule_files))
    prepared = prepare_alert_runs(rule_files, names, [AlertPlan(FULL_THEN_FREE, [Expect("GPUMemoryPressure", "3m",
                                                                                         True)])])
    promtool_runs.clear()
    behaviour = AlertBehaviour(rule_files, names, FULL_THEN_FREE, prepared=prepared.tests)
    unforeseen = Expect("HighGPUUtilization", "7m", True, {"gpu": "0"})
    verdict = unforeseen.run(behaviour)
    assert len(promtool_runs) == 2  # its own what-fired and confirmation runs, as without a plan
    assert verdict == unforeseen.run(AlertBehaviour(rule_files, names, FULL_THEN_FREE))


def test_hand_written_files_run_ahead_give_their_own_runs(
    rule_files: list[RuleFile], promtool_runs: list[tuple[str, ...]], tmp_path: Path
) -> None:
    passing = tmp_path / "a.yaml"
    passing.write_text(json.dumps({"tests": [{"interval": "1m", "input_series": [], "alert_rule_test": [
        {"alertname": "GPUMemoryPressure", "eval_time": "1m", "exp_alerts": []}]}]}))
    failing = tmp_path / "b.yaml"
    failing.write_text(json.dumps({"tests": [{"interval": "1m", "input_series": [
        {"series": 'DCGM_FI_DEV_GPU_UTIL{gpu="0",pod="p"}', "values": "99x10"}], "alert_rule_test": [
        {"alertname": "HighGPUUtilization", "eval_time": "6m", "exp_alerts": []}]}]}))
    direct = run_test_files([passing, failing], rule_files)
    assert [r.returncode for r in direct.values()] == [0, 1] and len(promtool_runs) == 2
    promtool_runs.clear()
    prepared = prepare_alert_runs(rule_files, set(alert_names(rule_files)), [],
                                  also=user_test_files([passing, failing], rule_files))
    assert len(promtool_runs) == 1
    assert run_test_files([passing, failing], rule_files, prepared.files) == direct
    assert len(promtool_runs) == 1
