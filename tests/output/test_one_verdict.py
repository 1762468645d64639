"""One verdict (issue 8 item 9): every failing scenario is a finding; the summary, the exit code and every format
agree, and honour -k, --only, --skip and --fail-on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.output.helpers import SEED_ARGS, shared_check, shared_check_json


@pytest.fixture(scope="module")
def seed() -> tuple[int, dict[str, Any], str]:
    done, data = shared_check_json(*SEED_ARGS)
    text = shared_check(*SEED_ARGS)
    assert text.returncode == done.returncode
    return done.returncode, data, text.stdout


def test_every_failed_scenario_is_at_least_one_finding(seed: tuple[int, dict[str, Any], str]) -> None:
    code, data, _ = seed
    failed = [s for s in data["scenarios"] if s["status"] == "failed"]
    assert failed, "the seed set fails scenarios"
    assert [s["name"] for s in failed if not s["findings"]] == []
    listed = {f"{f['rule_id']} {f['resource']}" for f in data["findings"]}
    for scenario in failed:
        assert set(scenario["findings"]) <= listed, scenario["name"]
    assert code == 1 and data["summary"]["exitCode"] == 1


def test_a_failed_simulation_is_a_finding_at_its_scaledobject(seed: tuple[int, dict[str, Any], str]) -> None:
    _, data, _ = seed
    surge = [f for f in data["findings"] if f["rule_id"] == "scenario/scaling_behavior/model-a-absorbs-a-traffic-surge"]
    assert len(surge) == 1
    assert surge[0]["resource"] == "ScaledObject/inference/model-a-gpu-scaler"
    assert surge[0]["file"].endswith("scaledobject-model-a-gpu-scaler.yaml") and surge[0]["line"] == 1
    assert "never reached 10 replicas" in surge[0]["message"]


def test_an_alert_test_failure_is_a_finding_at_the_alert(seed: tuple[int, dict[str, Any], str]) -> None:
    _, data, _ = seed
    found = [f for f in data["findings"] if f["rule_id"].startswith("scenario/alerts/highgpuutilization")]
    assert len(found) == 1
    assert found[0]["resource"] == "PrometheusRule/monitoring/gpu-alerts"
    assert found[0]["line"] == 10  # the `- alert: HighGPUUtilization` line
    for finding in data["findings"]:
        for text in [finding["message"], *finding["details"]]:
            assert text.strip() not in ("SUCCESS", "| SUCCESS"), finding
            assert "During handling of the above exception" not in text, finding


def test_summary_counts_are_the_findings_listed(seed: tuple[int, dict[str, Any], str]) -> None:
    _, data, text = seed
    errors = sum(1 for f in data["findings"] if f["severity"] == "error")
    warnings = sum(1 for f in data["findings"] if f["severity"] == "warning")
    assert (data["summary"]["errors"], data["summary"]["warnings"]) == (errors, warnings)
    assert f": {errors} errors, {warnings} warnings;" in text
    assert "result: FAILED (exit 1)" in text
    # pytest's own report is not printed
    assert "FAILURES" not in text and "short test summary" not in text and "passed in" not in text


def test_keyword_selection_is_honoured_by_findings_and_summary() -> None:
    done, data = shared_check_json(*SEED_ARGS, "-k", "model_a_absorbs")
    assert done.returncode == 1, done.stderr
    assert [f["rule_id"] for f in data["findings"]] == ["scenario/scaling_behavior/model-a-absorbs-a-traffic-surge"]
    assert data["summary"]["errors"] == 1 and len(data["scenarios"]) == 1


def test_a_rule_id_given_to_k_selects_its_scenario() -> None:
    done, data = shared_check_json(*SEED_ARGS, "-k", "lost-metric-is-not-zero")
    assert done.returncode == 1, done.stderr
    assert {f["rule_id"] for f in data["findings"]} == {"lost-metric-is-not-zero"}
    assert "pytest exit code" not in done.stderr


def test_a_selection_matching_nothing_is_a_clear_usage_error() -> None:
    done = shared_check(*SEED_ARGS, "-k", "no_scenario_is_called_like_this")
    assert done.returncode == 2
    assert "no scenario matches the selection -k 'no_scenario_is_called_like_this'" in done.stderr
    assert "pytest exit code" not in done.stderr and "Traceback" not in done.stderr


def test_only_and_skip_take_rule_ids_and_tags() -> None:
    _, skipped = shared_check_json(*SEED_ARGS, "--skip", "lost-metric-is-not-zero", "@alerts")
    rules = {f["rule_id"] for f in skipped["findings"]}
    assert "lost-metric-is-not-zero" not in rules and "keda-no-dead-fields" in rules
    assert not any(r.startswith("scenario/alerts/") for r in rules)
    assert not any(s["feature"].endswith("alerts.feature") for s in skipped["scenarios"])
    _, only = shared_check_json(*SEED_ARGS, "--only", "@security")
    assert {f["rule_id"] for f in only["findings"]} == {"security-no-root-user", "security-no-added-capabilities"}
    assert only["summary"]["errors"] == 2
    unknown = shared_check(*SEED_ARGS, "--only", "no-such-rule")
    assert unknown.returncode == 2 and "unknown rule id 'no-such-rule'" in unknown.stderr


def test_fail_on_decides_whether_warnings_fail() -> None:
    done, data = shared_check_json(*SEED_ARGS, "--only", "keda-no-dead-fields")
    assert (done.returncode, data["summary"]["warnings"], data["summary"]["errors"]) == (0, 3, 0)
    assert shared_check(*SEED_ARGS, "--only", "keda-no-dead-fields", "--fail-on", "warning").returncode == 1
    assert shared_check(*SEED_ARGS, "--only", "lost-metric-is-not-zero", "--fail-on", "never").returncode == 0
