"""Exemptions: a rule may be waived for one resource, never silently: a reason is required and every use is listed.

Two ways to declare one:
- the annotation `gpu-policy.io/exempt` on the resource or its pod template: one `<rule-id>: <reason>` per line;
- `policies/exemptions.yaml`: `{rule, resource: Kind/namespace/name, reason, expires?: YYYY-MM-DD}`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.workloads import pod_template_of
from gpu_policy.loading.document import Document
from gpu_policy.policy.loader import PolicySet

if TYPE_CHECKING:
    from gpu_policy.rules.context import CheckContext

ANNOTATION = "gpu-policy.io/exempt"


@dataclass(frozen=True)
class Exemption:
    rule_id: str
    resource: str
    reason: str
    declared_in: str
    """`file:line` of the annotation or the exemptions.yaml entry."""
    expires: dt.date | None = None


@dataclass(frozen=True)
class ExemptionProblem:
    resource: str
    file: str
    line: int
    message: str
    fix: str | None = None
    """What to change where the exemption is declared (None: the rule's fix, written for annotations)."""


def _entry_lines(path: str) -> dict[tuple[str, str], int]:
    """(rule, resource) -> line of each exemption entry in the file it came from (exemptions.yaml, or a config
    file holding the policies inline); empty when the file cannot be read (the entries came from elsewhere)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    found: dict[tuple[str, str], int] = {}
    pending: list[yaml.Node] = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            scalars = {k.value: v.value for k, v in node.value
                       if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)}
            if "rule" in scalars and "resource" in scalars:
                found.setdefault((scalars["rule"], scalars["resource"]), node.start_mark.line + 1)
            pending.extend(v for _, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
    return found


def _parse_annotation(value: Any, doc: Document, line: int) -> tuple[list[Exemption], list[ExemptionProblem]]:
    found: list[Exemption] = []
    problems: list[ExemptionProblem] = []
    for entry in str(value).splitlines():
        entry = entry.strip()
        if not entry:
            continue
        rule_id, _, reason = entry.partition(":")
        if not reason.strip():
            problems.append(ExemptionProblem(doc.ref, doc.source, line,
                                             f"exemption {entry!r} has no reason (`<rule-id>: <reason>`)"))
            continue
        found.append(Exemption(rule_id.strip(), doc.ref, reason.strip(), f"{doc.source}:{line}"))
    return found, problems


def annotation_exemptions(doc: Document) -> tuple[list[Exemption], list[ExemptionProblem]]:
    """Exemptions declared on the object itself and on its pod template."""
    exemptions: list[Exemption] = []
    problems: list[ExemptionProblem] = []
    if ANNOTATION in doc.annotations:
        line = doc.line_of(("metadata", "annotations", ANNOTATION))
        e, p = _parse_annotation(doc.annotations[ANNOTATION], doc, line)
        exemptions += e
        problems += p
    template = pod_template_of(doc)
    if template is not None and template.path and ANNOTATION in template.annotations:
        line = doc.line_of((*template.path, "metadata", "annotations", ANNOTATION))
        e, p = _parse_annotation(template.annotations[ANNOTATION], doc, line)
        exemptions += e
        problems += p
    return exemptions, problems


def file_exemptions(entries: list[dict[str, Any]], source: str, today: dt.date) -> tuple[
    list[Exemption], list[ExemptionProblem]
]:
    """Entries of policies/exemptions.yaml (already schema-checked: rule, resource and reason are present)."""
    exemptions: list[Exemption] = []
    problems: list[ExemptionProblem] = []
    lines = _entry_lines(source) if entries else {}
    for i, entry in enumerate(entries):
        expires = entry.get("expires")  # a YAML date or its ISO text: the policy loader keeps both as text
        expiry = dt.date.fromisoformat(str(expires)) if expires else None
        line = lines.get((str(entry["rule"]), str(entry["resource"])), 0)
        where = f"{source}:{line}" if line else f"{source} entry {i + 1}"
        if not str(entry.get("reason", "")).strip():
            problems.append(ExemptionProblem(entry["resource"], source, line, f"exemption {where} has no reason",
                                             fix=f"Add a `reason:` to the entry in {source} (why the rule does "
                                                 "not apply to this resource)."))
            continue
        if expiry is not None and expiry < today:
            problems.append(ExemptionProblem(
                entry["resource"], source, line,
                f"exemption {where} for rule {entry['rule']} on {entry['resource']} expired on "
                f"{expiry.isoformat()}",
                fix=f"Fix what rule {entry['rule']} reports and remove the entry from {source}, or, if the waiver "
                    "still holds, set a later `expires:` date on it (YYYY-MM-DD).",
            ))
            continue
        exemptions.append(Exemption(entry["rule"], entry["resource"], str(entry["reason"]), where, expiry))
    return exemptions, problems


class ExemptionIndex:
    """Every declared exemption by resource and rule, and the declarations refused (no reason, expired)."""

    def __init__(self, graph: ResourceGraph, policy: PolicySet, today: dt.date) -> None:
        self.by_resource: dict[str, dict[str, Exemption]] = defaultdict(dict)
        self.problems: list[ExemptionProblem] = []
        for doc in graph.documents:
            exemptions, problems = annotation_exemptions(doc)
            self.problems += problems
            for e in exemptions:
                self.by_resource[e.resource][e.rule_id] = e
        source = policy.origins.get("exemptions") or str(policy.directory / "exemptions.yaml")
        exemptions, problems = file_exemptions(policy.exemptions.get("exemptions", []), source, today)
        self.problems += problems
        for e in exemptions:
            self.by_resource[e.resource][e.rule_id] = e

    def lookup(self, rule_id: str, docs: list[Document | None], resource: str) -> Exemption | None:
        refs = [d.ref for d in docs if d is not None] or [resource]
        for ref in refs:
            found = self.by_resource.get(ref, {}).get(rule_id)
            if found is not None:
                return found
        return None


def exemption_index(ctx: CheckContext) -> ExemptionIndex:
    """Built once per run: the engine looks exemptions up in it, and `exemptions-are-valid` reports its problems."""
    today = ctx.options.get("today") or dt.date.today()
    return ctx.memo("exemptions", lambda: ExemptionIndex(ctx.graph, ctx.policy, today))
