"""Text for people: each finding on one line (where, severity, rule, resource, what); each rule's why and fix
once per run, under its first finding; identical findings grouped; notes counted, listed with -v.

    file:line: error: [rule-id] Kind/ns/name (field.path): what is wrong
      why: ... (first finding of this rule only)
      fix: ...

`--compact` prints the finding lines only; `-v` adds details, sources, the rule page and every note.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpu_policy.findings import Finding, Severity
from gpu_policy.reporting.safety import escape_control
from gpu_policy.reporting.wording import counted, summary_sentence
from gpu_policy.rules.registry import Rule

if TYPE_CHECKING:
    from gpu_policy.engine import RunResult
    from gpu_policy.reporting.verdict import Verdict

_COLORS = {Severity.ERROR: "\x1b[31m", Severity.WARNING: "\x1b[33m", Severity.INFO: "\x1b[36m"}
_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
DOCS_DIR = "docs/rules"


def rule_doc_link(rule_id: str) -> str:
    """The rule's reference page, relative to the repository root (`gpu-policy docs --out docs/rules`)."""
    return f"{DOCS_DIR}/{rule_id}.md"


def render_rule_failure(rule: Rule, findings: Sequence[Finding]) -> str:
    """A rule scenario's failure message (pytest output): the rule's why/fix once, then each finding."""
    noun = "resource violates" if len(findings) == 1 else "resources violate"
    lines = [f"{len(findings)} {noun} [{rule.id}] {rule.title}:"]
    for finding in findings:
        lines.append(finding_line(finding))
        lines.extend(f"  | {d}" for d in finding.details)
        if finding.fix and finding.fix != rule.fix:
            lines.append(f"  fix: {finding.fix}")
    lines.append(f"why: {rule.rationale}")
    lines.append(f"fix: {rule.fix}")
    return "\n".join(lines)


LINE_WIDTH = 240
"""Default and --compact output: a finding line, a why or a fix is cut (at a word, marked `...`) to about this many
characters; -v prints every text in full."""
MIN_MESSAGE = 120
"""However long the location and resource, at least this much of the message is shown."""
CUT_MARK = " ..."
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)(?<!\bcf)\.\s+(?=[A-Z])")


def cut(text: str, limit: int) -> str:
    """`text` when it fits in `limit` characters, else its words up to the limit and ` ...`."""
    if len(text) <= limit:
        return text
    room = max(1, limit - len(CUT_MARK))
    head = text[:room + 1]
    head = head[:head.rfind(" ")] if " " in head[1:] else text[:room]
    return head.rstrip(" ,;:(") + CUT_MARK


def first_sentence(text: str, limit: int) -> str:
    """The first sentence of a rationale (cut to `limit`), followed by ` ...` when more follows."""
    match = _SENTENCE_END.search(text)
    if match is None or match.start() + 1 > limit:
        return cut(text, limit)
    return text[:match.start() + 1] + CUT_MARK


def finding_line(f: Finding, color: bool = False, count: int = 1, limit: int | None = None) -> str:
    """`limit`: cut the message so that the line stays within about `limit` characters (None: the full text)."""
    severity = f.severity.value
    if color:
        severity = f"{_COLORS.get(f.severity, '')}{severity}{_RESET}"
    where = f" ({f.path})" if f.path else ""
    times = f" (x{count})" if count > 1 else ""
    head = f"{f.location}: {severity}: [{f.rule_id}] {f.resource}{where}: "
    message = f.message
    if limit is not None:
        message = cut(message, max(MIN_MESSAGE, limit - len(head) - len(times)))
    return f"{head}{message}{times}"


def _grouped(findings: Sequence[Finding]) -> list[tuple[Finding, int]]:
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        key = (f.file or "", str(f.line or 0), f.rule_id, f.resource, f.path, f.message, f.severity.value, f.fix)
        groups.setdefault(key, []).append(f)
    return [(items[0], len(items)) for items in groups.values()]


def _summary_line(verdict: Verdict) -> str:
    return summary_sentence(verdict)


def _verdict_line(verdict: Verdict) -> str:
    code = verdict.exit_code
    if code == 3:
        return "result: internal error (exit 3): a rule or scenario crashed; see stderr"
    if code == 1:
        return (f"result: FAILED (exit 1): {counted(len(verdict.failing), 'finding')} at or above --fail-on "
                f"{verdict.fail_on}")
    ignored = len(verdict.findings)
    return "result: passed (exit 0)" + (f"; {counted(ignored, 'finding')} below --fail-on {verdict.fail_on}"
                                        if ignored else "")


def _wrapped(label: str, text: str, width: int | None) -> list[str]:
    """`  why: text` on one line, or wrapped to the terminal's width (a TTY) with a hanging indent."""
    head = f"  {label}: "
    if not width or len(head) + len(text) <= width:
        return [head + text]
    return textwrap.wrap(text, width=max(40, width), initial_indent=head, subsequent_indent=" " * len(head),
                         break_on_hyphens=False)


def render_verdict(verdict: Verdict, *, verbose: bool = False, compact: bool = False, color: bool = False,
                   width: int | None = None) -> str:
    """`width`: wrap why/fix to it (a terminal); None keeps one line each (files, pipes, CI logs)."""
    lines: list[str] = []
    rules = verdict.run.rules
    explained: set[str] = set()
    limit = None if verbose else LINE_WIDTH
    shortened = False
    shown: set[str] = set()
    for finding, count in _grouped(verdict.findings):
        line = finding_line(finding, color, count, limit)
        if line in shown:  # two findings that differ after the cut: both in full
            line = finding_line(finding, color, count)
        shown.add(line)
        lines.append(line)
        shortened |= CUT_MARK in line and CUT_MARK not in finding.message
        if compact:
            continue
        rule = rules.get(finding.rule_id)
        if verbose:
            lines.extend(f"  | {d}" for d in finding.details)
        elif finding.details:
            lines[-1] += f" [{counted(len(finding.details), 'more line')} with -v]"
        if finding.rule_id not in explained:
            explained.add(finding.rule_id)
            if finding.why:
                why = finding.why if verbose else first_sentence(finding.why, LINE_WIDTH - 8)
                shortened |= why != finding.why
                lines.extend(_wrapped("why", why, width))
            if finding.fix:
                fix = finding.fix if verbose else cut(finding.fix, LINE_WIDTH - 8)
                shortened |= fix != finding.fix
                lines.extend(_wrapped("fix", fix, width))
            if verbose and rule is not None:
                if rule.sources:
                    lines.append("  sources: " + "; ".join(rule.sources))
                lines.append(f"  rule: {rule_doc_link(rule.id)}")
        elif rule is not None and finding.fix and finding.fix != rule.fix:
            lines.extend(_wrapped("fix", finding.fix if verbose else cut(finding.fix, LINE_WIDTH - 8), width))
    if verbose:
        lines.extend(_notes(verdict))
    elif not compact and (verdict.notes or shortened):
        more = ["the full texts ('...' marks a cut)"] if shortened else []
        if verdict.notes:
            more.append("the notes: objects not checked, schema rules not evaluated, scenarios skipped")
        lines.append(f"(-v prints {' and '.join(more)})")
    lines.append(_summary_line(verdict))
    lines.append(_verdict_line(verdict))
    if color:
        lines[-1] = f"{_BOLD}{lines[-1]}{_RESET}"
    return "\n".join(lines) + "\n"


def _notes(verdict: Verdict) -> list[str]:
    lines: list[str] = []
    titles = {
        "not-checked": "not checked:",
        "not-evaluated": "schema rules not evaluated offline (neither passed nor failed):",
        "skipped-scenario": "scenarios skipped:",
    }
    if verdict.run.exempted:
        lines.append("exemptions used:")
        for used in verdict.run.exempted:
            e = used.exemption
            lines.append(escape_control(f"  [{e.rule_id}] {e.resource}: {e.reason} ({e.declared_in})"))
    for kind, title in titles.items():
        notes = verdict.notes_of(kind)
        if notes:
            lines.append(title)
            lines.extend(f"  {escape_control(n.source or '')}:{n.line}: {n.text}" for n in notes)
    if verdict.scenarios:
        lines.append("scenarios:")
        lines.extend(f"  {s.status.upper():7} {s.feature_file}:{s.line}: {escape_control(s.name)}"
                     for s in verdict.scenarios)
    return lines


def render_accounting(run: RunResult) -> str:
    """What a run (engine only) waived, skipped or could not judge, and the totals."""
    from gpu_policy.reporting.verdict import engine_only_verdict

    verdict = engine_only_verdict(run)
    return "\n".join([*_notes(verdict), _summary_line(verdict)])
