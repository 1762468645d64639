"""Crash is not findings (issue 9): objects whose fields have the wrong type are reported by the schema rule and
withheld from every other rule and scenario, so nothing crashes on them."""

from __future__ import annotations

from pathlib import Path

from tests.output.helpers import DATA, check_json

WRONG = DATA / "wrong-types"
EXPECTED = {
    "NodePool/limits-string", "NodePool/requirements-map", "NodePool/template-list", "EC2NodeClass/nc",
    "ScaledObject/inference/triggers-map", "ScaledObject/inference/metadata-list",
    "HorizontalPodAutoscaler/inference/policy-value-string", "Deployment/inference/model",
    "Deployment/inference/resources-string", "PrometheusRule/monitoring/groups-string",
    "PrometheusRule/monitoring/rules-map", "ServiceMonitor/monitoring/endpoints-string",
    "PodDisruptionBudget/inference/pdb", "DaemonSet/gpu-monitoring/dcgm-exporter",
}


def test_wrong_types_are_schema_findings_and_never_a_crash(tmp_path: Path) -> None:
    done, data = check_json(tmp_path, str(WRONG))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert data["internal_errors"] == [] and data["summary"]["scenarios"]["error"] == 0
    typed = {f["resource"] for f in data["findings"]
             if f["rule_id"] == "schema-valid" and f["message"].startswith("must be of type")}
    assert typed == EXPECTED
    others = [f"{f['rule_id']} {f['resource']}" for f in data["findings"] if f["rule_id"] != "schema-valid"]
    assert [o for o in others if o.split(" ", 1)[1] in EXPECTED] == [], others
    assert not any("crashed" in f["message"] for f in data["findings"])
    withheld = {n["reason"].split(": not judged")[0] for n in data["not_checked"] if "not judged" in n["reason"]}
    assert withheld == EXPECTED
