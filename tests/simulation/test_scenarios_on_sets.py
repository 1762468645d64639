"""The scaling feature run on manifest sets: the reference-shaped set passes every scenario, each sim-* fixture set
fails exactly its `expect_scenarios_fail` scenarios, with the message that explains why."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FEATURE_SUITE = ROOT / "src" / "gpu_policy" / "suite" / "test_features.py"
REFERENCE = Path(__file__).resolve().parent / "reference"
SIM_SETS = sorted(p.parent for p in (ROOT / "fixtures").glob("sim-*/expected.yaml"))
FEATURE = ROOT / "features" / "scaling_behavior.feature"
SCENARIOS = [
    line.split(":", 1)[1].strip() for line in FEATURE.read_text().splitlines() if line.strip().startswith("Scenario:")
]
SCENARIO_KEYWORDS = "model_a_ or model_b_ or gpu_nodes_are_not_voluntarily"  # narrows the run; results filtered


def _python_name(scenario: str) -> str:
    return "test_" + scenario


def run_feature(manifests: Path, tmp_path: Path) -> dict[str, str]:
    """{test name: failure message or ''} for the scaling scenarios run on `manifests`."""
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--manifests={manifests}",
            "--no-bundled-features",
            str(FEATURE_SUITE),
            "-k",
            SCENARIO_KEYWORDS,
            f"--junitxml={junit}",
            f"--rootdir={ROOT}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert junit.exists(), proc.stdout + proc.stderr
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        error = case.find("error")
        problem = failure if failure is not None else error
        if _simplify(case.get("name", "")) not in {_simplify(_python_name(s)) for s in SCENARIOS}:
            continue  # a scenario of another feature that the keyword filter also matched
        results[case.get("name", "")] = (
            "" if problem is None else (problem.get("message", "") + (problem.text or ""))
        )
    return results


def _simplify(name: str) -> str:
    """pytest-bdd turns a scenario name into a test name by dropping or replacing punctuation: compare letters."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def test_reference_shaped_set_passes_every_scaling_scenario(tmp_path: Path) -> None:
    results = run_feature(REFERENCE, tmp_path)
    assert len(results) == len(SCENARIOS), results
    failed = {name: msg for name, msg in results.items() if msg}
    assert not failed, failed


@pytest.mark.parametrize("fixture", SIM_SETS, ids=[p.name for p in SIM_SETS])
def test_sim_fixture_set_fails_exactly_its_scenarios(fixture: Path, tmp_path: Path) -> None:
    expected = yaml.safe_load((fixture / "expected.yaml").read_text())
    results = run_feature(fixture / "manifests", tmp_path)
    failed = {_simplify(name) for name, msg in results.items() if msg}
    want = {_simplify(_python_name(s)) for s in expected["expect_scenarios_fail"]}
    assert failed == want, f"failed: {sorted(failed)}\nexpected: {sorted(want)}"
    for scenario, text in (expected.get("expect_messages") or {}).items():
        message = next(
            msg for name, msg in results.items() if _simplify(name) == _simplify(_python_name(scenario))
        )
        assert text in message, f"{scenario}: {text!r} not in\n{message}"
