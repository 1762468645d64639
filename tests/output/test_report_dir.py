"""`--report DIR` (issue 10): findings.json, report.html (escaped, a strict CSP, the charts inline, nothing fetched)
and the scaling charts: the scenario's name as title, axis titles with units, what the scenario expected drawn over
the trajectory, the scenario's PASSED/FAILED mark, written when the scenario has ended."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from gpu_policy.reporting.html import content_security_policy
from gpu_policy.resources import reference_manifests_dir
from tests.output.helpers import SEED_ARGS, gpu_policy

SURGE = "scaling-behavior.model-a-absorbs-a-traffic-surge.model-a-gpu-scaler.svg"
FALLBACK = "scaling-behavior.model-a-falls-back-to-3-replicas-during-a-metric-outage.model-a-gpu-scaler.svg"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _html_is_self_contained(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "img", "link", "iframe", "object", "embed", "form"}, names
    csp = [a["content"] for tag, a in parser.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [content_security_policy()] and csp[0].startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in csp[0]
    for _, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), name  # no event handler
            assert not (name in ("href", "src") and value and re.match(r"[a-z]+:", value)), value  # nothing remote


def _charts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (folder / "simulation").glob("*.svg")}


def test_report_folder_holds_json_html_and_readable_charts(tmp_path: Path) -> None:
    done = gpu_policy("check", "--report", str(tmp_path), "-k", "model_a_absorbs or falls_back")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["summary"]["scenarios"]["passed"] == 2
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    _html_is_self_contained(html)
    assert "✔ passed: Model A absorbs a traffic surge" in html
    assert html.count("<svg") == 2
    charts = _charts(tmp_path)
    assert sorted(charts) == sorted([SURGE, FALLBACK])
    # each trajectory as CSV beside its chart (tests/test_cli.py checked this in a run of its own before)
    assert sorted(p.name for p in (tmp_path / "simulation").iterdir()) == sorted(
        [SURGE, FALLBACK, SURGE.removesuffix(".svg") + ".csv", FALLBACK.removesuffix(".svg") + ".csv"])
    csv = (tmp_path / "simulation" / (SURGE.removesuffix(".svg") + ".csv")).read_text().splitlines()
    assert csv[0].startswith("time_s,metric,desired,replicas")
    assert csv[-1].split(",")[3] == "10"  # model A ends the surge at its maximum
    surge = charts[SURGE]
    # the title is the scenario's name, whole; what ran below it
    assert '<text x="64" y="22" font-size="14" font-weight="bold">Model A absorbs a traffic surge</text>' in surge
    assert "ScaledObject inference/model-a-gpu-scaler scaling inference/model-a-serving, from 2 replicas" in surge
    for axis in ("replicas (pods)", "time since the trace started (s)", "metric: the trigger's value as KEDA reads it"):
        assert axis in surge
    assert 'class="status">PASSED</text>' in surge
    assert "expected: &gt;= 10 replicas within 60 s (held)" in surge  # the window the Then step judged
    fallback = charts[FALLBACK]
    assert "<title>KEDA fallback replicas in force</title>" in fallback
    assert "<title>metric outage</title>" in fallback
    assert "expected: fallback to 3 replicas within 60 s of the outage (held)" in fallback
    assert "expected: no scale-down during the outage (held)" in fallback


def test_a_failed_scenario_chart_is_marked_failed_with_the_expectation_not_met(tmp_path: Path) -> None:
    done = gpu_policy("check", *SEED_ARGS, "--report", str(tmp_path), "-k", "model_a_absorbs")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    surge = _charts(tmp_path)[SURGE]
    assert 'class="status">FAILED</text>' in surge and "PASSED" not in surge
    assert "expected: &gt;= 10 replicas within 60 s (NOT met)" in surge
    html = (tmp_path / "report.html").read_text()
    assert "✘ failed: Model A absorbs a traffic surge" in html and html.count("<svg") == 1


def test_html_escapes_what_the_input_says(tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                      "  name: '<script>alert(1)</script>'\n  namespace: default\ndata: {}\n")
    report = tmp_path / "report"
    gpu_policy("check", str(manifests), "--report", str(report), "--only", "manifest-has-no-unrendered-variables")
    html = (report / "report.html").read_text()
    _html_is_self_contained(html)
    assert "ConfigMap/default/&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the finding is there, escaped
    assert "<script>alert(1)</script>" not in html


def test_pytest_report_writes_the_same_files_as_the_cli(tmp_path: Path) -> None:
    """`pytest --report DIR` (the option named as in the CLI) writes findings.json and report.html too."""
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--manifests={reference_manifests_dir()}",
         f"--report={report}", "-k", "model_a_absorbs or declared_once"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    data = json.loads((report / "findings.json").read_text())
    assert data["schemaVersion"] == 1 and data["summary"]["scenarios"]["passed"] == 2
    assert sorted(s["name"] for s in data["scenarios"]) == sorted(
        ["Model A absorbs a traffic surge", "objects are declared once"]), data["scenarios"]
    html = (report / "report.html").read_text()
    _html_is_self_contained(html)
    assert html.count("<svg") == 1 and 'class="status">PASSED</text>' in html
