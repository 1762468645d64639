"""The output formats of `gpu-policy check --format`: each renders the same `Verdict`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict

FORMATS = ("text", "json", "sarif", "junit", "github", "cucumber")


def render(fmt: str, verdict: Verdict, *, verbose: bool = False, compact: bool = False, color: bool = False,
           width: int | None = None) -> str:
    if fmt == "text":
        from gpu_policy.reporting.text import render_verdict

        return render_verdict(verdict, verbose=verbose, compact=compact, color=color, width=width)
    if fmt == "json":
        from gpu_policy.reporting.json_report import render_json

        return render_json(verdict)
    if fmt == "sarif":
        from gpu_policy.reporting.sarif import render_sarif

        return render_sarif(verdict)
    if fmt == "junit":
        from gpu_policy.reporting.junit import render_junit

        return render_junit(verdict)
    if fmt == "github":
        from gpu_policy.reporting.github import render_github

        return render_github(verdict)
    if fmt == "cucumber":
        from gpu_policy.reporting.cucumber import render_cucumber

        return render_cucumber(verdict)
    raise ValueError(f"unknown format {fmt!r}")
