"""`--report DIR` (issue 10): findings.json, report.html with the scenarios' pass/fail marks and the simulation
charts inline, charts with a readable title, axis titles and units, fallback shading."""

from __future__ import annotations

import json
from pathlib import Path

from tests.output.helpers import gpu_policy


def test_report_folder_holds_json_html_and_readable_charts(tmp_path: Path) -> None:
    done = gpu_policy("check", "--report", str(tmp_path), "-k", "model_a_absorbs or falls_back")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["summary"]["scenarios"]["passed"] == 2
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http://" not in html.split("<svg")[0]
    assert "✔ passed: Model A absorbs a traffic surge" in html
    assert html.count("<svg") == 2
    charts = {p.name: p.read_text() for p in (tmp_path / "simulation").glob("*.svg")}
    surge = charts["test_model_a_absorbs_a_traffic_surge-model-a-gpu-scaler.svg"]
    assert ">Model a absorbs a traffic surge (model-a-gpu-scaler): " in surge
    for axis in ("replicas (pods)", "time since the trace started (seconds)", "metric: the trigger"):
        assert axis in surge
    fallback = charts["test_model_a_falls_back_to_3_replicas_during_a_metric_outage-model-a-gpu-scaler.svg"]
    assert "<title>KEDA fallback replicas in force</title>" in fallback
    assert "<title>metric outage</title>" in fallback
