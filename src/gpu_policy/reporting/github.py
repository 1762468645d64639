"""GitHub Actions workflow commands (`--format github`): one `::error file=F,line=L,title=RULE::message` per
finding, shown as an annotation on the pull request.

Nothing read from the input can start a command of its own: data is escaped as the runner's toolkit does
(`%` -> %25, CR -> %0D, LF -> %0A; in properties also `:` -> %3A and `,` -> %2C), so a `metadata.name` holding
a newline plus `::add-mask::` stays inside its annotation.
See https://docs.github.com/actions/reference/workflow-commands-for-github-actions and
actions/toolkit packages/core/src/command.ts (escapeData, escapeProperty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_policy.findings import Severity
from gpu_policy.reporting.sarif import located_file, relative_uri
from gpu_policy.reporting.wording import counted

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(verdict: Verdict) -> str:
    lines: list[str] = []
    for f in verdict.findings:
        props = []
        file, template = located_file(f.file) if f.file else (None, None)
        if file:
            props.append(f"file={escape_property(relative_uri(file))}")
            if f.line:
                props.append(f"line={f.line}")
        props.append(f"title={escape_property(f.rule_id)}")
        body = (f"{f.resource}" + (f" ({f.path})" if f.path else "")
                + (f" [template {template}]" if template else "") + f": {f.message}")
        if f.fix:
            body += f"\nfix: {f.fix}"
        lines.append(f"::{_COMMANDS[f.severity]} {','.join(props)}::{escape_data(body)}")
    for error in verdict.internal_errors:
        lines.append(f"::error title=gpu-policy internal error::{escape_data(error.where + ': ' + error.error)}")
    s = verdict.summary()
    lines.append(escape_data(f"gpu-policy: {counted(s['errors'], 'error')}, {counted(s['warnings'], 'warning')}, "
                             f"{s['notChecked']} not checked (exit {s['exitCode']})"))
    return "\n".join(lines) + "\n"
