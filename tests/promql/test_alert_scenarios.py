"""Alert behaviour judged by promtool, and features/alerts.feature run against the alert fixture sets."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.promql.alerts import AlertBehaviour, alert_names
from gpu_policy.promql.coverage import exercised_by_features, exercised_by_test_files, unexercised
from gpu_policy.promql.extract import prometheus_rule_file
from gpu_policy.promql.promtool import promtool_path
from gpu_policy.promql.testrun import SeriesTable
from gpu_policy.resources import features_dir, fixtures_dir

SEED_FIXTURE = fixtures_dir() / "alert-seed-memory-pressure"
RULE = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: gpu-alerts, namespace: monitoring}
spec:
  groups:
    - name: gpu-alerts
      rules:
        - alert: GPUMemoryPressure
          expr: EXPR
          for: 2m
          labels: {severity: critical}
          annotations: {summary: "GPU {{ $labels.gpu }} of {{ $labels.pod }}"}
"""
HALF_FULL = SeriesTable(
    "1m",
    [
        ('DCGM_FI_DEV_FB_USED{gpu="1",pod="p"}', "12000x10"),
        ('DCGM_FI_DEV_FB_FREE{gpu="1",pod="p"}', "12000x10"),
    ],
)


def _behaviour(graph_of: Callable[[str], ResourceGraph], expr: str) -> AlertBehaviour:
    doc = graph_of(RULE.replace("EXPR", expr)).of_kind("PrometheusRule")[0]
    files = [prometheus_rule_file(doc, "rules.yaml")]
    return AlertBehaviour(files, set(alert_names(files)), HALF_FULL)


def test_seed_memory_rule_fires_at_half_use_and_promtool_says_so(
    graph_of: Callable[[str], ResourceGraph],
) -> None:
    verdict = _behaviour(graph_of, "DCGM_FI_DEV_FB_USED / DCGM_FI_DEV_FB_FREE > 0.9").expect(
        "GPUMemoryPressure", "5m", firing=False, labels={"gpu": "1"}
    )
    assert not verdict.ok
    assert "exp:[]" in verdict.message and "got:[" in verdict.message  # promtool's own diff
    assert 'summary="GPU 1 of p"' in verdict.message


def test_fraction_of_framebuffer_stays_silent_at_half_use(graph_of: Callable[[str], ResourceGraph]) -> None:
    behaviour = _behaviour(
        graph_of, "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9"
    )
    assert behaviour.expect("GPUMemoryPressure", "5m", firing=False, labels={"gpu": "1"}).ok
    firing = behaviour.expect("GPUMemoryPressure", "5m", firing=True, labels={"gpu": "1"})
    assert not firing.ok and 'Labels:{alertname="GPUMemoryPressure", gpu="1"}' in firing.message


def test_coverage_lists_alerts_nothing_exercises(tmp_path: Path) -> None:
    feature = tmp_path / "a.feature"
    feature.write_text('Feature: x\n  Scenario: y\n    Then "HighGPUUtilization" is firing at 5m\n')
    test_file = tmp_path / "t.yaml"
    test_file.write_text(
        yaml.safe_dump({"tests": [{"alert_rule_test": [{"alertname": "GPUMemoryPressure"}]}]})
    )
    assert unexercised(
        {"HighGPUUtilization", "GPUMemoryPressure", "DCGMExporterDown"},
        exercised_by_features([feature]),
        exercised_by_test_files([test_file]),
    ) == ["DCGMExporterDown"]


def _run_alerts_feature(
    tmp_path: Path, manifests: Path, reference: bool = True
) -> tuple[dict[str, str], str, int]:
    """features/alerts.feature on `manifests` in a child pytest: scenario name -> outcome, the output, and how many
    times promtool ran (through a wrapper that counts its invocations, then runs the real one)."""
    calls = tmp_path / "promtool-calls"
    wrapper = tmp_path / "promtool"
    wrapper.write_text(f'#!/bin/sh\necho x >> {shlex.quote(str(calls))}\nexec {shlex.quote(promtool_path())} "$@"\n')
    wrapper.chmod(0o755)
    module = tmp_path / "test_alerts_feature.py"
    module.write_text(
        f"from pytest_bdd import scenarios\n\nscenarios({str(features_dir() / 'alerts.feature')!r})\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-bundled-features",
            f"--manifests={manifests}",
            # the reference organisation's sets: its profile, and the set is the whole system
            *(["--profile=reference", "--complete"] if reference else []),
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit2",
            "-o",
            "junit_logging=all",
            str(module),
        ],
        cwd=tmp_path,
        env={**os.environ, "GPU_POLICY_PROMTOOL": str(wrapper)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[case.get("name", "")] = "failed" if failed else "skipped" if skipped else "passed"
    runs = len(calls.read_text().splitlines()) if calls.is_file() else 0
    return outcomes, done.stdout + done.stderr, runs


def _test_name(scenario: str) -> str:
    # pytest-bdd's test name: `test_` + the scenario name, lower-cased, non-word characters dropped
    return "test_" + re.sub(r"\W", "", re.sub(r"\s+", "_", scenario.lower()))


def test_seed_rule_fails_exactly_the_expected_scenarios_with_promtools_diff(tmp_path: Path) -> None:
    expected = yaml.safe_load((SEED_FIXTURE / "expected.yaml").read_text())["expect_scenarios_fail"]
    outcomes, output, _ = _run_alerts_feature(tmp_path, SEED_FIXTURE / "manifests")
    assert outcomes, output
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    assert failed == {_test_name(s) for s in expected}, output
    # the memory-pressure failure is promtool's own diff: the seed rule fires for the half-full GPU 1
    assert re.search(
        r'alertname: GPUMemoryPressure, time: 5m,.*?got:\[.*?Labels:\{alertname="GPUMemoryPressure", '
        r'gpu="1"',
        output,
        re.S,
    ), output


def test_a_prometheusrule_that_does_not_load_skips_the_alert_scenarios_naming_it(tmp_path: Path) -> None:
    """One finding for one defect: the PrometheusRule is reported by prometheusrule-passes-promtool-check; the alert
    scenarios skip, naming it and the line, as the operator leaves its alerts: never evaluated. (They all failed,
    repeating it, and the feature's KEDA query scenarios with them.)"""
    fixture = fixtures_dir() / "alert-invalid-promql" / "manifests"
    outcomes, output, _ = _run_alerts_feature(tmp_path, fixture)
    assert outcomes and not [n for n, o in outcomes.items() if o == "failed"], output
    skips = {case.get("name", ""): skipped.get("message", "")
             for case in ET.parse(tmp_path / "report.xml").getroot().iter("testcase")
             if (skipped := case.find("skipped")) is not None}  # fmt: skip
    alert_scenarios = [n for n in outcomes if "keda" not in n and "exercised" not in n]
    assert alert_scenarios and set(alert_scenarios) <= set(skips), outcomes
    for name in alert_scenarios:
        assert "prometheusrule-passes-promtool-check" in skips[name], (name, skips[name])
    assert "prometheus-rules.yaml:24" in skips[_test_name(
        "Hand-written promtool tests pass against the manifests' alert rules")]
    assert outcomes[_test_name("Every KEDA GPU query reads exactly its target's pods")] != "failed"


@pytest.mark.skipif(
    not (features_dir().parent / "manifests" / "monitoring").is_dir(), reason="no reference set"
)
def test_reference_passes_the_alert_scenarios_with_a_bounded_number_of_promtool_runs(tmp_path: Path) -> None:
    """Not a timed test (benchmarks are scripts, no test asserts on wall time): the work is bounded by counting
    promtool's runs, whatever the machine's speed: one `check rules` of the set, then every alert step of the
    session (and the hand-written promtool tests) in two `promtool test rules` runs of many files (what fired, then
    the confirmations: `alerts.prepare_alert_runs`), never one per step, series, time point or alert (main a2d47e6
    ran 26)."""
    outcomes, output, runs = _run_alerts_feature(tmp_path, features_dir().parent / "manifests")
    failed = sorted(n for n, o in outcomes.items() if o == "failed")
    assert failed == [], output
    assert 0 < runs <= 3, runs


def test_another_teams_rules_skip_the_reference_systems_alert_scenarios(tmp_path: Path) -> None:
    """Issue 8 class 9: rules without HighGPUUtilization & co. used to fail six scenarios with no finding."""
    outcomes, output, runs = _run_alerts_feature(tmp_path, fixtures_dir() / "alert-other-team-rules" / "manifests",
                                                 reference=False)
    assert outcomes and not [n for n, o in outcomes.items() if o == "failed"], output
    skipped = {n for n, o in outcomes.items() if o == "skipped"}
    assert any("highgpuutilization" in n for n in skipped) and any("exercised" in n for n in skipped), outcomes
    # Nothing of the skipped scenarios is run ahead either: only the rules' `check rules`. (Planning every step
    # regardless ran an all-alerts test of a 20k-object monorepo's 6,666 alerts: 18 s of promtool CPU.)
    assert runs == 1, runs
