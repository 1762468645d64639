"""Cucumber JSON (`--format cucumber`), the shape cucumber-js's `json` formatter writes: a list of features,
each with `elements` (scenarios, type "scenario") whose `steps` carry `result.status` (passed, failed,
skipped, undefined), `result.duration` in nanoseconds and `result.error_message` on failure. Cucumber report
viewers (cucumber-html-reporter, Jenkins cucumber-reports) read it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from gpu_policy.reporting.safety import escape_control, is_noise

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict


def _id(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip().lower())


def _error(verdict: Verdict, nodeid: str, fallback: str) -> str:
    from gpu_policy.reporting.text import finding_line

    findings = verdict.scenario_findings.get(nodeid, [])
    if findings:
        return "\n".join(finding_line(f) for f in findings)
    return "\n".join(escape_control(line) for line in fallback.splitlines() if not is_noise(line))


def render_cucumber(verdict: Verdict) -> str:
    features: dict[str, dict[str, Any]] = {}
    for s in verdict.scenarios:
        feature = features.setdefault(s.feature_file, {
            "keyword": "Feature", "name": s.feature_name, "description": s.feature_description,
            "id": _id(s.feature_name or s.feature_file), "line": s.feature_line, "uri": s.feature_file,
            "tags": [], "elements": [],
        })
        steps: list[dict[str, Any]] = []
        for step in s.steps:
            result: dict[str, Any] = {"status": step.status, "duration": step.duration_ns}
            if step.status == "failed":
                result["error_message"] = _error(verdict, s.nodeid, step.error or s.message)
            steps.append({"keyword": f"{step.keyword} ", "name": escape_control(step.name), "line": step.line,
                          "match": {"location": f"{s.feature_file}:{step.line}"}, "result": result})
        if s.status == "skipped" and steps and all(st["result"]["status"] != "failed" for st in steps):
            steps[-1]["result"]["message"] = escape_control(s.message)
        feature["elements"].append({
            "keyword": "Scenario", "type": "scenario", "name": escape_control(s.name),
            "id": f"{feature['id']};{_id(s.name)}", "line": s.line, "description": "",
            "tags": [{"name": f"@{t}", "line": s.line - 1} for t in s.tags], "steps": steps,
        })
    return json.dumps(list(features.values()), indent=2, ensure_ascii=False) + "\n"
