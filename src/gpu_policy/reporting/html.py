"""`--report DIR` also writes `report.html`: the run for people, viewable offline (no script, no external
resource): the summary, every finding, every scenario with its pass/fail mark and, for the scaling scenarios, their
simulation charts inline.

Everything read from the input is escaped (html.escape, quotes included); the charts are the SVGs this tool wrote,
which escape their own text. A Content-Security-Policy in the page allows nothing but its own style sheet (by hash):
no script, no image, font, frame, form or connection, even if a manifest smuggled markup past the escaping.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from gpu_policy.reporting.text import rule_doc_link
from gpu_policy.reporting.wording import summary_sentence

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left;font-size:13px}
.error{color:#b00}.warning{color:#a60}.passed{color:#080}.failed{color:#b00}.skipped{color:#777}
.error-status{color:#b00;font-weight:bold}figure{margin:1em 0}"""
_MARK = {"passed": "✔ passed", "failed": "✘ failed", "skipped": "– skipped", "error": "‼ internal error"}


def content_security_policy() -> str:
    digest = base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"


def _charts(report_dir: Path, feature_file: str, scenario: str) -> list[str]:
    from gpu_policy.simulation.report import chart_prefix

    folder = report_dir / "simulation"
    if not folder.is_dir() or folder.is_symlink():
        return []
    prefix = chart_prefix(feature_file, scenario)
    return [p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())
            if p.name.startswith(prefix) and p.suffix == ".svg" and p.is_file() and not p.is_symlink()]


def render_html(verdict: Verdict, report_dir: Path) -> str:
    s = verdict.summary()
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">',
           '<meta name="referrer" content="no-referrer"><title>gpu-policy report</title>',
           f"<style>{_STYLE}</style></head><body>", "<h1>gpu-policy report</h1>",
           f"<p>{escape(summary_sentence(verdict))}. Exit code {s['exitCode']} "
           f"(--fail-on {escape(s['failOn'])}).</p>", "<h2>Findings</h2>"]
    if verdict.findings:
        out.append("<table><tr><th>where</th><th>severity</th><th>rule</th><th>resource</th><th>what</th>"
                   "<th>fix</th></tr>")
        for f in verdict.findings:
            rule = escape(f.rule_id)
            if not f.rule_id.startswith("scenario/"):
                rule = f'<a href="{escape(rule_doc_link(f.rule_id))}">{rule}</a>'
            details = "".join(f"<br><code>{escape(d)}</code>" for d in f.details)
            out.append(f"<tr><td>{escape(f.location)}</td><td class=\"{f.severity.value}\">{f.severity.value}</td>"
                       f"<td>{rule}</td><td>{escape(f.resource)}<br><small>{escape(f.path)}</small></td>"
                       f"<td>{escape(f.message)}{details}</td><td>{escape(f.fix)}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No findings.</p>")
    if verdict.internal_errors:
        out.append("<h2>Internal errors</h2><ul>")
        out += [f"<li class=\"error-status\">{escape(e.where)}: {escape(e.error)}</li>"
                for e in verdict.internal_errors]
        out.append("</ul>")
    out.append("<h2>Scenarios</h2>")
    for scenario in verdict.scenarios:
        mark = _MARK.get(scenario.status, scenario.status)
        out.append(f"<h3 class=\"{escape(scenario.status)}\">{mark}: {escape(scenario.name)}</h3>")
        out.append(f"<p><small>{escape(scenario.feature_file)}:{scenario.line}</small></p>")
        if scenario.status == "skipped" and scenario.message:
            out.append(f"<p class=\"skipped\">{escape(scenario.message.splitlines()[0])}</p>")
        for finding in verdict.scenario_findings.get(scenario.nodeid, []):
            out.append(f"<p class=\"failed\">{escape(finding.location)}: {escape(finding.message)}</p>")
        for chart in _charts(report_dir, scenario.feature_file, scenario.name):
            out.append(f"<figure>{chart}<figcaption>{mark}</figcaption></figure>")
    notes = [n for n in verdict.notes if n.kind != "skipped-scenario"]
    if notes:
        out.append("<h2>Not checked / not evaluated</h2><ul>")
        out += [f"<li>{escape(n.source or '')}:{n.line}: {escape(n.text)}</li>" for n in notes]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
