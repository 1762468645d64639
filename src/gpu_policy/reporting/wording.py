"""Counts in words ("1 finding", "2 findings") and the one-sentence summary of a run, shared by the text, HTML
and GitHub outputs so that they say the same thing the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """`counted(1, "finding")` -> "1 finding"; `counted(2, "finding")` -> "2 findings"."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def summary_sentence(verdict: Verdict) -> str:
    s = verdict.summary()
    sc = s["scenarios"]
    run_part = (f"{counted(s['objects'], 'object')} from {counted(s['sources'], 'source')}, "
                f"{counted(s['rules'], 'rule')}")
    if verdict.scenarios:
        run_part += (f", {counted(len(verdict.scenarios), 'scenario')} ({sc['passed']} passed, {sc['failed']} "
                     f"failed, {sc['skipped']} skipped)")
    notes = (f"{s['exempted']} exempted, {s['notChecked']} not checked, "
             f"{counted(s['notEvaluated'], 'schema rule')} not evaluated")
    text = f"{run_part}: {counted(s['errors'], 'error')}, {counted(s['warnings'], 'warning')}; {notes}"
    if s["internalErrors"]:
        text += f"; {counted(s['internalErrors'], 'internal error')}"
    return text
