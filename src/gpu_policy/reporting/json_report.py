"""findings.json (`--format json`): the machine-readable verdict of a run.

Its shape is documented by `reporting/schemas/findings.schema.json` (`schemaVersion` 1): every finding, every
exemption used, every object not checked and schema rule not evaluated, every scenario, the rules and the summary
(the same counts and exit code the text output prints). A new field is added without changing the version; a
field removed or changed in meaning increments it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_policy.reporting.text import rule_doc_link

if TYPE_CHECKING:
    from gpu_policy.engine import RunResult
    from gpu_policy.findings import Finding
    from gpu_policy.reporting.verdict import Verdict

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "findings.schema.json"


def _finding(f: Finding) -> dict[str, Any]:
    data = f.to_dict()
    data["docs"] = None if f.rule_id.startswith("scenario/") else rule_doc_link(f.rule_id)
    return data


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    from gpu_policy.reporting.safety import escape_control

    run = verdict.run
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "gpu-policy", "version": _version()},
        "summary": verdict.summary(),
        "sources": [escape_control(s) for s in run.load.sources],
        "findings": [_finding(f) for f in verdict.findings],
        "exempted": [
            {"rule_id": u.exemption.rule_id, "resource": escape_control(u.exemption.resource),
             "reason": escape_control(u.exemption.reason), "declared_in": escape_control(u.exemption.declared_in),
             "finding": _finding(u.finding)}
            for u in run.exempted
        ],
        "not_checked": [_note(n) for n in verdict.notes_of("not-checked")],
        "not_evaluated": [_note(n) for n in verdict.notes_of("not-evaluated")],
        "scenarios": [
            {"feature": s.feature_file, "name": escape_control(s.name), "line": s.line, "tags": s.tags,
             "status": s.status, "rules": s.rule_ids,
             "message": escape_control(s.message.splitlines()[0]) if s.message and s.status == "skipped" else "",
             "findings": [f"{f.rule_id} {f.resource}" for f in verdict.scenario_findings.get(s.nodeid, [])]}
            for s in verdict.scenarios
        ],
        "internal_errors": [{"where": escape_control(e.where), "error": escape_control(e.error)}
                            for e in verdict.internal_errors],
        "rules": {
            r.id: {"title": r.title, "area": r.area, "severity": r.severity.value,
                   "class": getattr(r, "rule_class", None), "docs": rule_doc_link(r.id)}
            for r in run.rules.values()
        },
    }


def _note(n: Any) -> dict[str, Any]:
    from gpu_policy.reporting.safety import escape_control

    return {"source": escape_control(n.source) if n.source else None, "line": n.line, "reason": n.text}


def _version() -> str:
    from gpu_policy import __version__

    return __version__


def render_json(verdict: Verdict) -> str:
    return json.dumps(verdict_to_dict(verdict), indent=2, ensure_ascii=False) + "\n"


def run_to_dict(run: RunResult) -> dict[str, Any]:
    """The engine's result alone (no scenarios), in the same schema."""
    from gpu_policy.reporting.verdict import engine_only_verdict

    return verdict_to_dict(engine_only_verdict(run))


def write_json_report(run: RunResult, path: Path) -> Path:
    from gpu_policy.reporting.files import write_report_file
    from gpu_policy.reporting.verdict import engine_only_verdict

    return write_report_file(path.parent, path.name, render_json(engine_only_verdict(run)))
