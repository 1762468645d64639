"""SARIF 2.1.0 (`--format sarif`) for GitHub code scanning and other SARIF viewers.

One run; `tool.driver.rules` holds the metadata of every rule that has a result (id, name, shortDescription = the
title, fullDescription = the rationale, help = fix and the rule's page, properties: class, severity, tags) plus a
rule per failed behaviour scenario. Each result has the rule's level, a message (what, with the resource) and a
physicalLocation whose uri is relative to the working directory (GitHub resolves it against the checkout).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_policy.findings import Finding, Severity
from gpu_policy.loading.document import source_prefixes
from gpu_policy.reporting.text import rule_doc_link

if TYPE_CHECKING:
    from gpu_policy.reporting.verdict import Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def located_file(file: str) -> tuple[str, str | None]:
    """(the file a finding's location names, the helm template its object came from, or None).

    The loader names an object of `helm template` output `rendered.yaml (chart/templates/x.yaml)` (loader.load_stream),
    its line counted in rendered.yaml: a code-scanning location needs the file, which exists, and the template goes
    into the message instead. Anything else (a real file, `<stdin>`, kustomize output) is returned as it is."""
    if os.path.isfile(file):
        return file, None
    for prefix in source_prefixes(file)[1:]:
        if os.path.isfile(prefix):
            return prefix, file[len(prefix) + 2:-1]
    return file, None


def relative_uri(file: str) -> str:
    """A path relative to the working directory, with forward slashes; absolute when outside it."""
    path = Path(file)
    try:
        rel = os.path.relpath(path.resolve(), Path.cwd().resolve())
    except ValueError:
        return path.as_posix()
    return path.resolve().as_uri() if rel.startswith("..") else Path(rel).as_posix()


def _rule_descriptor(verdict: Verdict, rule_id: str, sample: Finding) -> dict[str, Any]:
    from gpu_policy.suite.selection import rule_tags

    rule = verdict.run.rules.get(rule_id)
    if rule is None:  # a behaviour scenario
        return {
            "id": rule_id, "name": rule_id.rsplit("/", 1)[-1],
            "shortDescription": {"text": sample.why or rule_id},
            "fullDescription": {"text": sample.why or rule_id},
            "help": {"text": sample.fix, "markdown": sample.fix},
            "defaultConfiguration": {"level": _LEVELS[sample.severity]},
            "properties": {"class": "correctness", "severity": sample.severity.value, "tags": ["scenario"]},
        }
    link = rule_doc_link(rule.id)
    tags = sorted(rule_tags().get(rule.id, {rule.area}))
    properties: dict[str, Any] = {"severity": rule.severity.value, "tags": tags}
    rule_class = getattr(rule, "rule_class", None)
    if rule_class:
        properties["class"] = rule_class
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale},
        "help": {"text": f"{rule.fix} See {link}.", "markdown": f"{rule.fix}\n\nSee [{rule.id}]({link})."},
        "helpUri": link,
        "defaultConfiguration": {"level": _LEVELS[rule.severity]},
        "properties": properties,
    }


def _result(f: Finding, index: int) -> dict[str, Any]:
    file, template = located_file(f.file) if f.file else (None, None)
    text = (f"{f.resource}" + (f" ({f.path})" if f.path else "") + (f" [template {template}]" if template else "")
            + f": {f.message}")
    result: dict[str, Any] = {
        "ruleId": f.rule_id, "ruleIndex": index, "level": _LEVELS[f.severity], "message": {"text": text},
        "partialFingerprints": {"gpuPolicyFinding/v1": f"{f.rule_id}|{f.resource}|{f.path}|{f.message}"},
    }
    if file:
        region: dict[str, Any] = {"startLine": f.line} if f.line else {}
        physical: dict[str, Any] = {"artifactLocation": {"uri": relative_uri(file)}}
        if region:
            physical["region"] = region
        result["locations"] = [{"physicalLocation": physical,
                                "logicalLocations": [{"name": f.resource, "kind": "resource"}]}]
    if f.details:
        result["properties"] = {"details": list(f.details)}
    return result


def verdict_to_sarif(verdict: Verdict) -> dict[str, Any]:
    from gpu_policy import __version__

    order: dict[str, int] = {}
    descriptors: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for finding in verdict.findings:
        if finding.rule_id not in order:
            order[finding.rule_id] = len(descriptors)
            descriptors.append(_rule_descriptor(verdict, finding.rule_id, finding))
        results.append(_result(finding, order[finding.rule_id]))
    notifications = [{"level": "error", "message": {"text": f"internal error in {e.where}: {e.error}"}}
                     for e in verdict.internal_errors]
    invocation: dict[str, Any] = {"executionSuccessful": not verdict.internal_errors,
                                  "exitCode": verdict.exit_code}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "gpu-policy", "version": __version__, "semanticVersion": __version__,
                                "rules": descriptors}},
            "invocations": [invocation],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def render_sarif(verdict: Verdict) -> str:
    return json.dumps(verdict_to_sarif(verdict), indent=2, ensure_ascii=False) + "\n"
