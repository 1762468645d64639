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


def render_accounting(run: RunResult) -> str:
    """What a run waived, skipped or could not judge, and the totals: printed after the scenarios."""
    lines: list[str] = []
    if run.exempted:
        lines.append("exemptions used:")
        for used in run.exempted:
            e = used.exemption
            lines.append(f"  [{e.rule_id}] {e.resource}: {e.reason} ({e.declared_in})")
    if run.not_checked:
        lines.append("not checked:")
        lines.extend(f"  {n.source}:{n.line}: {n.reason}" for n in run.not_checked)
    if run.not_evaluated:
        lines.append("schema rules not evaluated offline (neither passed nor failed):")
        lines.extend(f"  {n.source}:{n.line}: {n.reason}" for n in run.not_evaluated)
    errors = sum(1 for f in run.findings if f.severity is Severity.ERROR)
    warnings = sum(1 for f in run.findings if f.severity is Severity.WARNING)
    lines.append(
        f"{len(run.graph.documents)} objects from {len(run.load.sources)} sources, {len(run.rules)} rules: "
        f"{errors} errors, {warnings} warnings, {len(run.exempted)} exempted, {len(run.not_checked)} not checked, "
        f"{len(run.not_evaluated)} schema rules not evaluated"
    )
    return "\n".join(lines)
