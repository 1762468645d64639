"""One verdict per run: the engine's findings and the scenarios' outcomes folded into one list.

Every output format, the summary and the exit code are computed from a `Verdict`, so they always agree:
- a rule scenario contributes its rule's findings;
- a behaviour scenario that fails (a simulation, an alert test) becomes a finding of its own, located at the
  object it names when the set holds one, else at the scenario;
- a scenario that crashes (an exception other than a failed check) is an internal error, never a finding;
- skipped scenarios, objects not checked and schema rules not evaluated are notes: counted, listed with -v.
Selection (`-k`, `-m`, `--only`, `--skip`) is honoured: a rule whose scenarios did not run contributes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_policy.findings import Finding, Severity
from gpu_policy.reporting.safety import Redactor, escape_control, is_noise, safe_finding

if TYPE_CHECKING:
    from gpu_policy.engine import InternalError, RunResult
    from gpu_policy.loading.document import Document, FieldPath
    from gpu_policy.suite.collector import ScenarioResult

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
FAIL_ON = ("error", "warning", "never")
SCENARIO_RULE_PREFIX = "scenario/"


@dataclass(frozen=True)
class Note:
    kind: str
    """not-checked, not-evaluated, skipped-scenario or exemption."""
    source: str | None
    line: int | None
    text: str


@dataclass
class Verdict:
    run: RunResult
    findings: list[Finding]
    scenarios: list[ScenarioResult]
    notes: list[Note]
    internal_errors: list[InternalError]
    fail_on: str = "error"
    scenario_findings: dict[str, list[Finding]] = field(default_factory=dict)
    """nodeid -> the findings that made that scenario fail."""

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def failing(self) -> list[Finding]:
        if self.fail_on == "never":
            return []
        levels = {Severity.ERROR} if self.fail_on == "error" else {Severity.ERROR, Severity.WARNING}
        return [f for f in self.findings if f.severity in levels]

    @property
    def exit_code(self) -> int:
        if self.internal_errors:
            return EXIT_INTERNAL
        return EXIT_FINDINGS if self.failing else EXIT_OK

    def notes_of(self, kind: str) -> list[Note]:
        return [n for n in self.notes if n.kind == kind]

    def summary(self) -> dict[str, Any]:
        statuses = [s.status for s in self.scenarios]
        return {
            "objects": len(self.run.load.documents),
            "sources": len(self.run.load.sources),
            "rules": len([r for r in self.run.rules if (not self.run.options.only or r in self.run.options.only)
                          and r not in self.run.options.skip]),
            "errors": self.count(Severity.ERROR),
            "warnings": self.count(Severity.WARNING),
            "infos": self.count(Severity.INFO),
            "exempted": len(self.run.exempted),
            "notChecked": len(self.notes_of("not-checked")),
            "notEvaluated": len(self.notes_of("not-evaluated")),
            "scenarios": {
                "passed": statuses.count("passed"), "failed": statuses.count("failed"),
                "skipped": statuses.count("skipped"), "error": statuses.count("error"),
            },
            "internalErrors": len(self.internal_errors),
            "failOn": self.fail_on,
            "exitCode": self.exit_code,
        }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-")


def scenario_rule_id(scenario: ScenarioResult) -> str:
    return f"{SCENARIO_RULE_PREFIX}{Path(scenario.feature_file).stem}/{_slug(scenario.name)}"


def _alert_locations(doc: Document) -> dict[str, FieldPath]:
    out: dict[str, FieldPath] = {}
    groups = doc.get(("spec", "groups"))
    if not isinstance(groups, list):
        return out
    for gi, group in enumerate(groups):
        rules = group.get("rules") if isinstance(group, dict) else None
        if isinstance(rules, list):
            for ri, item in enumerate(rules):
                if isinstance(item, dict) and isinstance(item.get("alert"), str):
                    out.setdefault(item["alert"], ("spec", "groups", gi, "rules", ri, "alert"))
    return out


def _named_object(run: RunResult, scenario: ScenarioResult) -> tuple[Document, FieldPath] | None:
    """The object a scenario is about, the first one named: in step order, a quoted name (or each name of a quoted
    list, `"HighGPUUtilization, GPUMemoryPressure"`) of an object of the set, or of an alert (its PrometheusRule's
    `- alert:` line); else the object whose Kind/namespace/name the failure message names first."""
    quoted = [name.strip() for step in scenario.steps for q in re.findall(r'"([^"]+)"', step.name)
              for name in q.split(",") if name.strip()]
    documents = [d for d in run.graph.documents if d.is_object]
    alerts = [(doc, _alert_locations(doc)) for doc in run.graph.of_kind("PrometheusRule")]
    for name in quoted:
        named = [d for d in documents if d.name == name]
        if named:
            return named[0], ()
        for doc, locations in alerts:
            if name in locations:
                return doc, locations[name]
    positions = [(scenario.message.find(d.ref), i) for i, d in enumerate(documents)
                 if d.ref and d.ref in scenario.message]
    if positions:
        return documents[min(positions)[1]], ()
    return None


def scenario_finding(run: RunResult, scenario: ScenarioResult, redact: Redactor) -> Finding:
    lines = [line.rstrip() for line in scenario.message.splitlines() if line.strip() and not is_noise(line)]
    message = lines[0] if lines else "the scenario failed"
    located = _named_object(run, scenario)
    where = f"{scenario.feature_file}:{scenario.line}"
    if located is not None:
        doc, path = located
        resource, file, line = doc.ref, doc.source, doc.line_of(path)
    else:
        doc, path = None, ()
        resource, file, line = f"scenario: {scenario.name}", scenario.feature_file, scenario.line
    finding = Finding(
        rule_id=scenario_rule_id(scenario), resource=resource, message=f"scenario failed: {message}",
        file=file, line=line,
        why=f'The scenario "{scenario.name}" ({where}) states how the platform must behave.',
        fix=f"Change the manifests so the scenario holds; its steps are at {where}.",
        severity=Severity.ERROR, details=tuple(lines[1:]),
    )
    return safe_finding(finding, redact, doc, path)


def build_verdict(run: RunResult, scenarios: Sequence[ScenarioResult], *, filtered: bool,
                  fail_on: str = "error", extra_internal: Iterable[InternalError] = ()) -> Verdict:
    """`filtered`: -k/-m narrowed the scenarios, so only the rules of the scenarios that ran count."""
    from gpu_policy.engine import InternalError

    redact: Redactor = run.context.memo("redactor", lambda: Redactor.from_documents(run.load.documents))
    ran_rules = {rid for s in scenarios for rid in s.rule_ids}
    included = ran_rules if filtered else set(run.rules)
    findings = [f for f in run.findings if f.rule_id in included]
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    internal = [*run.internal_errors, *extra_internal]
    per_scenario: dict[str, list[Finding]] = {}
    notes: list[Note] = []
    for scenario in scenarios:
        if scenario.status == "error":
            internal.append(InternalError(f"scenario {scenario.name!r} ({scenario.feature_file}:{scenario.line})",
                                          escape_control(redact(scenario.message.splitlines()[0]
                                                                if scenario.message else "crashed")),
                                          redact(scenario.traceback)))
        elif scenario.status == "failed":
            own = [f for rid in scenario.rule_ids for f in by_rule.get(rid, [])]
            if not own:
                own = [scenario_finding(run, scenario, redact)]
                findings.extend(own)
            per_scenario[scenario.nodeid] = own
        elif scenario.status == "skipped":
            notes.append(Note("skipped-scenario", scenario.feature_file, scenario.line,
                              escape_control(redact(f"{scenario.name}: {scenario.message}"))))
    notes += [Note("not-checked", n.source, n.line, escape_control(redact(n.reason))) for n in run.not_checked]
    notes += [Note("not-evaluated", n.source, n.line, escape_control(redact(n.reason))) for n in run.not_evaluated]
    findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule_id, f.resource))
    return Verdict(run=run, findings=findings, scenarios=list(scenarios), notes=notes, internal_errors=internal,
                   fail_on=fail_on, scenario_findings=per_scenario)


def engine_only_verdict(run: RunResult, fail_on: str = "error") -> Verdict:
    """The verdict without the scenario suite (tests, `--report` of the plugin)."""
    return build_verdict(run, [], filtered=False, fail_on=fail_on)
