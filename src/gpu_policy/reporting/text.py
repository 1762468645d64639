"""Plain-text reports: one block per finding with file:line, what, why and fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpu_policy.findings import Finding, Severity
from gpu_policy.rules.registry import Rule

if TYPE_CHECKING:
    from gpu_policy.engine import RunResult


def render_rule_failure(rule: Rule, findings: Sequence[Finding]) -> str:
    noun = "resource violates" if len(findings) == 1 else "resources violate"
    lines = [f"{len(findings)} {noun} [{rule.id}] {rule.title}:"]
    for finding in findings:
        lines.append("")
        lines.append(finding.render())
    if rule.sources:
        lines.append("")
        lines.append("sources: " + "; ".join(rule.sources))
    return "\n".join(lines)


def render_run(run: RunResult) -> str:
    lines: list[str] = []
    for finding in run.findings:
        lines.append(finding.render())
        lines.append("")
    if run.exempted:
        lines.append("Exemptions used:")
        for used in run.exempted:
            e = used.exemption
            lines.append(f"  {e.rule_id} on {e.resource}: {e.reason} ({e.declared_in})")
        lines.append("")
    if run.not_checked:
        lines.append("Not checked:")
        lines.extend(f"  {n.source}:{n.line}: {n.reason}" for n in run.not_checked)
        lines.append("")
    errors = sum(1 for f in run.findings if f.severity is Severity.ERROR)
    warnings = sum(1 for f in run.findings if f.severity is Severity.WARNING)
    lines.append(
        f"{len(run.graph.documents)} objects from {len(run.load.sources)} sources, {len(run.rules)} rules: "
        f"{errors} errors, {warnings} warnings, {len(run.exempted)} exempted, {len(run.not_checked)} not checked"
    )
    return "\n".join(lines)
