"""PrometheusRule -> plain rule file, written so that every line maps back to the manifest's field.

Mirrors what the Prometheus Operator renders into the rule ConfigMap (prometheus-operator
pkg/operator/rules.go,
`generateRulesConfiguration` / `sanitizePrometheusRulesSpec` / `ValidateRule`): the file is `spec` itself,
with
`partial_response_strategy` dropped (Thanos only), `query_offset` (Prometheus >= 2.53) and group `labels`
(Prometheus >= 3.0) dropped because the promtool here is 2.42, and empty `interval` / `for` omitted.

Embedded queries (KEDA triggers, Grafana panels) become recording rules of one synthetic group, so the same
single
`promtool check rules` run parses them with Prometheus' own parser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.promql.sources import PromQLSource

GROUP_FIELDS = ("name", "interval", "limit")
RULE_FIELDS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")
DURATION_FIELDS = ("interval", "for", "keep_firing_for")
QUERY_GROUP = "gpu-policy-embedded-queries"


@dataclass
class RuleFile:
    """One extracted rule file and the manifest field of each of its lines."""

    name: str
    doc: Document | None
    """The PrometheusRule it came from; None for the file of embedded queries."""
    lines: list[str] = field(default_factory=list)
    origins: dict[int, FieldPath] = field(default_factory=dict)
    """1-based line of the extracted file -> field path in `doc`."""
    queries: list[PromQLSource] = field(default_factory=list)
    """For the embedded-query file: rule i (0-based) is queries[i]."""
    group_names: list[str] = field(default_factory=list)
    rejected_durations: frozenset[str] = frozenset()
    group_indexes: list[int] = field(default_factory=list)
    """Manifest index of each written group (non-mapping groups are written too, so they align)."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def emit(self, text: str, origin: FieldPath | None = None) -> None:
        self.lines.append(text)
        if origin is not None:
            self.origins[len(self.lines)] = origin

    def write(self, folder: Path) -> Path:
        target = folder / self.name
        target.write_text(self.text, encoding="utf-8")
        return target


def _scalar(value: Any) -> str:
    """A YAML-safe rendering of one value on one line (JSON is valid YAML flow syntax)."""
    return json.dumps(value, ensure_ascii=False)


def _emit_mapping(out: RuleFile, indent: str, key: str, value: Any, path: FieldPath) -> None:
    if not isinstance(value, dict):
        out.emit(f"{indent}{key}: {_scalar(value)}", path)
        return
    out.emit(f"{indent}{key}:", path)
    for k, v in value.items():
        out.emit(f"{indent}  {_scalar(str(k))}: {_scalar(v)}", (*path, k))
    if not value:
        out.lines[-1] += " {}"


def prometheus_rule_file(
    doc: Document, name: str, rejected_durations: frozenset[str] = frozenset()
) -> RuleFile:
    """`rejected_durations`: values promtool already reported as invalid durations. promtool stops reading
    a file at the first invalid duration (a YAML decoding error), so they are left out to let it report the
    rest."""
    out = RuleFile(name=name, doc=doc, rejected_durations=rejected_durations)
    groups = doc.spec.get("groups")
    base: FieldPath = ("spec", "groups")
    if not isinstance(groups, list):
        out.emit(f"groups: {_scalar(groups if groups is not None else [])}", base)
        return out
    out.emit("groups:", base)
    if not groups:
        out.lines[-1] += " []"
    for gi, group in enumerate(groups):
        gpath = (*base, gi)
        out.group_indexes.append(gi)
        if not isinstance(group, dict):
            out.emit(f"- {_scalar(group)}", gpath)
            out.group_names.append("")
            continue
        out.group_names.append(str(group.get("name", "")))
        first = True
        for key in GROUP_FIELDS:
            if key not in group or (
                key == "interval" and (group[key] in ("", None) or str(group[key]) in rejected_durations)
            ):
                continue
            out.emit(f"{'- ' if first else '  '}{key}: {_scalar(group[key])}", (*gpath, key))
            first = False
        rules = group.get("rules")
        lead = "- " if first else "  "
        if not isinstance(rules, list):
            out.emit(f"{lead}rules: {_scalar(rules if rules is not None else [])}", (*gpath, "rules"))
            continue
        out.emit(f"{lead}rules:{' []' if not rules else ''}", (*gpath, "rules"))
        for ri, rule in enumerate(rules):
            rpath = (*gpath, "rules", ri)
            if not isinstance(rule, dict):
                out.emit(f"  - {_scalar(rule)}", rpath)
                continue
            written = False
            for key in RULE_FIELDS:
                if key not in rule:
                    continue
                value = rule[key]
                if key == "for" and value in ("", None):
                    continue
                if key in DURATION_FIELDS and str(value) in rejected_durations:
                    continue
                if key == "expr" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = str(value)  # IntOrString in the CRD
                indent = "    " if written else "  - "
                if key in ("labels", "annotations"):
                    _emit_mapping(out, indent, key, value, (*rpath, key))
                else:
                    out.emit(f"{indent}{key}: {_scalar(value)}", (*rpath, key))
                written = True
            if not written:
                out.emit("  - {}", rpath)
    return out


def queries_file(queries: list[PromQLSource], name: str) -> RuleFile:
    """Each query as a recording rule `gpu_policy:embedded_query:<i>` of one group."""
    out = RuleFile(name=name, doc=None, queries=list(queries))
    out.emit("groups:")
    out.emit(f"- name: {QUERY_GROUP}")
    out.group_names.append(QUERY_GROUP)
    out.group_indexes.append(0)
    out.emit(f"  rules:{' []' if not queries else ''}")
    for i, query in enumerate(queries):
        out.emit(f"  - record: gpu_policy:embedded_query:{i}")
        out.emit(f"    expr: {_scalar(query.parsed)}")
    return out
