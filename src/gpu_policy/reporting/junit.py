"""JUnit XML (`--format junit`): one testsuite, one testcase per scenario (classname = the feature), a
`<failure>` listing the findings that made it fail, `<skipped>` with the reason, `<error>` for an internal error.
Read by CI test reporters (GitLab, Jenkins, junitparser). When no scenario ran (engine only), one testcase per
rule with findings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from gpu_policy.findings import Finding
from gpu_policy.reporting.safety import escape_control
from gpu_policy.reporting.text import finding_line

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict


def _failure_text(findings: list[Finding]) -> str:
    lines: list[str] = []
    for f in findings:
        lines.append(finding_line(f))
        lines.extend(f"  | {d}" for d in f.details)
        if f.fix:
            lines.append(f"  fix: {f.fix}")
    return "\n".join(lines)


def render_junit(verdict: Verdict) -> str:
    suite = ET.Element("testsuite", name="gpu-policy")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    if verdict.scenarios:
        for s in verdict.scenarios:
            case = ET.SubElement(suite, "testcase", classname=escape_control(s.feature_name or s.feature_file),
                                 name=escape_control(s.name), file=s.feature_file, line=str(s.line),
                                 time=f"{s.duration_s:.3f}")
            total_time += s.duration_s
            counts["tests"] += 1
            findings = verdict.scenario_findings.get(s.nodeid, [])
            if s.status == "failed":
                counts["failures"] += 1
                first = findings[0].message if findings else escape_control(s.message.splitlines()[0]
                                                                             if s.message else "failed")
                failure = ET.SubElement(case, "failure", message=first, type="finding")
                failure.text = _failure_text(findings)
            elif s.status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=escape_control(s.message.splitlines()[0]
                                                                      if s.message else "skipped"))
            elif s.status == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=escape_control(s.message.splitlines()[0]
                                                                    if s.message else "internal error"),
                              type="internal-error")
    else:
        by_rule: dict[str, list[Finding]] = {}
        for f in verdict.findings:
            by_rule.setdefault(f.rule_id, []).append(f)
        for rule_id, findings in by_rule.items():
            case = ET.SubElement(suite, "testcase", classname="gpu-policy", name=rule_id, time="0")
            counts["tests"] += 1
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", message=findings[0].message, type="finding")
            failure.text = _failure_text(findings)
    for error in verdict.internal_errors:
        if not any(s.status == "error" for s in verdict.scenarios):
            case = ET.SubElement(suite, "testcase", classname="gpu-policy", name=escape_control(error.where))
            counts["tests"] += 1
            counts["errors"] += 1
            ET.SubElement(case, "error", message=escape_control(error.error), type="internal-error")
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total_time:.3f}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
