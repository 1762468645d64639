"""findings.json: the machine-readable result of a run, for CI annotations and dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_policy.engine import RunResult


def run_to_dict(run: RunResult) -> dict[str, Any]:
    return {
        "objects": len(run.graph.documents),
        "sources": run.load.sources,
        "findings": [f.to_dict() for f in run.findings],
        "exempted": [
            {"rule_id": u.exemption.rule_id, "resource": u.exemption.resource, "reason": u.exemption.reason,
             "declared_in": u.exemption.declared_in, "finding": u.finding.to_dict()}
            for u in run.exempted
        ],
        "not_checked": [{"source": n.source, "line": n.line, "reason": n.reason} for n in run.not_checked],
        "not_evaluated": [{"source": n.source, "line": n.line, "reason": n.reason} for n in run.not_evaluated],
        "rules": {r.id: {"title": r.title, "area": r.area, "severity": r.severity.value} for r in run.rules.values()},
    }


def write_json_report(run: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run_to_dict(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
