"""Every PromQL expression of the manifest set, with its owner document, field path and exact line.

- PrometheusRule `spec.groups[].rules[].expr` (alerting and recording rules);
- KEDA ScaledObject/ScaledJob triggers of type `prometheus` (`metadata.query`);
- Grafana dashboards shipped as ConfigMaps labelled `grafana_dashboard` (the label the Grafana Helm chart's
  dashboard sidecar watches, grafana/helm-charts charts/grafana values.yaml `sidecar.dashboards.label`):
  the `expr` of every panel target, panels nested in rows (`panels[].panels[]`) and legacy rows
  (`rows[].panels[]`) included, targets of non-Prometheus datasources (Loki, CloudWatch, ...) skipped. Only
  data keys ending in `.json` are dashboards: Grafana's file provisioner loads nothing else (grafana/grafana
  pkg/services/provisioning/dashboards/file_reader.go validateWalkablePath).

Built once per ResourceGraph (`promql_sources(graph)`), so every rule, step and promtool run shares the same
objects.

Grafana template variables are not PromQL; for a parser (`PromQLSource.parsed`) they are replaced by
placeholders of the type their position needs (Grafana docs, "Variable syntax": `$var`, `${var}`,
`${var:format}`, `[[var]]`; global variables `$__interval`, `$__rate_interval`, `$__range`, `$__interval_ms`,
`$__range_s`, `$__range_ms`):
- `$__interval`, `$__rate_interval`, `$__range`, `$__auto` -> `5m`; `$__interval_ms`, `$__range_ms` ->
  `300000`; `$__range_s` -> `300`;
- any variable inside a string literal (`pod=~"$pod"`) -> `gpu_policy_placeholder`;
- any variable inside `[...]` (a range or subquery) -> `5m`;
- anywhere else (a threshold, a `topk` parameter) -> `1`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document, FieldPath

DASHBOARD_LABEL = "grafana_dashboard"
QueryKind = Literal["rule", "keda", "dashboard"]


@dataclass(frozen=True, eq=False)
class PromQLSource:
    """One PromQL expression and where it is written."""

    doc: Document
    path: FieldPath
    """Field of `doc` holding the expression (for a dashboard: the ConfigMap data key holding the JSON)."""
    expr: str
    """The expression as written."""
    parsed: str
    """What a PromQL parser must read: Grafana variables substituted in dashboard queries, else `expr`."""
    kind: QueryKind
    where: str
    """`alert HighGPUUtilization`, `recording rule x:y`, `trigger 0 (gpu)`,
    `dashboard gpu.json panel "GPU utilization" target A`."""
    line: int
    """Manifest line of the expression (for a dashboard query: its line inside the ConfigMap's JSON)."""
    name: str = ""
    """The rule's alert or record name; the panel title for a dashboard query."""

    def line_of(self, inner_line: int) -> int:
        """Manifest line of line `inner_line` (1-based) of the expression, e.g. of a promtool error."""
        if self.kind == "dashboard":
            return self.line  # a JSON string holds no raw newline: the whole query is on one line
        return expression_line(self.doc, self.path, inner_line)


@dataclass
class Panel:
    title: str
    queries: list[PromQLSource] = field(default_factory=list)


@dataclass
class Dashboard:
    doc: Document
    key: str
    """ConfigMap data key holding the JSON."""
    panels: list[Panel] = field(default_factory=list)
    error: str | None = None
    error_line: int | None = None

    @property
    def path(self) -> FieldPath:
        return ("data", self.key)


@dataclass(frozen=True)
class PromQLSources:
    rules: tuple[PromQLSource, ...]
    keda: tuple[PromQLSource, ...]
    dashboards: tuple[Dashboard, ...]

    @property
    def dashboard_queries(self) -> tuple[PromQLSource, ...]:
        return tuple(q for board in self.dashboards for panel in board.panels for q in panel.queries)

    @property
    def all(self) -> tuple[PromQLSource, ...]:
        return (*self.rules, *self.keda, *self.dashboard_queries)

    @property
    def recorded(self) -> frozenset[str]:
        """Names of the recording rules of the set."""
        return frozenset(q.name for q in self.rules if q.where.startswith("recording rule "))


def promql_sources(graph: ResourceGraph) -> PromQLSources:
    """The PromQL of the manifest set, extracted once per graph."""
    return graph.derived(
        "promql-sources",
        lambda g: PromQLSources(
            rules=tuple(_rule_queries(g)), keda=tuple(_keda_queries(g)), dashboards=tuple(_dashboards(g))
        ),
    )


# -- PrometheusRules and KEDA triggers -------------------------------------------------------------------
def _rule_queries(graph: ResourceGraph) -> Iterator[PromQLSource]:
    for doc in graph.of_kind("PrometheusRule"):
        groups = doc.spec.get("groups")
        for gi, group in enumerate(groups if isinstance(groups, list) else []):
            rules = group.get("rules") if isinstance(group, dict) else None
            for ri, rule in enumerate(rules if isinstance(rules, list) else []):
                if not isinstance(rule, dict) or rule.get("expr") is None:
                    continue
                name = str(rule.get("alert") or rule.get("record") or f"rule {ri}")
                path: FieldPath = ("spec", "groups", gi, "rules", ri, "expr")
                expr = str(rule["expr"])  # IntOrString in the CRD
                yield PromQLSource(
                    doc=doc,
                    path=path,
                    expr=expr,
                    parsed=expr,
                    kind="rule",
                    where=f"alert {name}" if rule.get("alert") else f"recording rule {name}",
                    line=doc.line_of(path),
                    name=name,
                )


def _keda_queries(graph: ResourceGraph) -> Iterator[PromQLSource]:
    for doc in graph.of_kind("ScaledObject", "ScaledJob"):
        triggers = doc.spec.get("triggers")
        for i, trigger in enumerate(triggers if isinstance(triggers, list) else []):
            if not isinstance(trigger, dict) or trigger.get("type") != "prometheus":
                continue
            metadata = trigger.get("metadata")
            query = metadata.get("query") if isinstance(metadata, dict) else None
            if not isinstance(query, str) or not query.strip():
                continue
            name = trigger.get("name")
            path: FieldPath = ("spec", "triggers", i, "metadata", "query")
            yield PromQLSource(
                doc=doc,
                path=path,
                expr=query,
                parsed=query,
                kind="keda",
                where=f"trigger {i}" + (f" ({name})" if isinstance(name, str) and name else ""),
                line=doc.line_of(path),
                name=name if isinstance(name, str) else "",
            )


# -- Grafana dashboards ------------------------------------------------------------------------------------
def _dashboards(graph: ResourceGraph) -> Iterator[Dashboard]:
    for doc in graph.of_kind("ConfigMap"):
        if DASHBOARD_LABEL not in doc.labels:
            continue
        data = doc.obj.get("data")
        for key, value in data.items() if isinstance(data, dict) else []:
            if isinstance(value, str) and str(key).endswith(".json"):
                yield parse_dashboard(doc, str(key), value)


def parse_dashboard(doc: Document, key: str, raw: str) -> Dashboard:
    dashboard = Dashboard(doc, key)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        dashboard.error = f"{key} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno} of the JSON)"
        dashboard.error_line = expression_line(doc, ("data", key), exc.lineno)
        return dashboard
    if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
        data = data["dashboard"]  # the HTTP API's export wraps the model in {"dashboard": ...}
    if not isinstance(data, dict):
        dashboard.error = f"{key} is JSON but not a dashboard object"
        dashboard.error_line = doc.line_of(("data", key))
        return dashboard
    lines = _ExprLines(raw)
    for panel in _panels(data):
        title = str(panel.get("title") or "")
        entry = Panel(title)
        targets = panel.get("targets")
        for ti, target in enumerate(targets if isinstance(targets, list) else []):
            if not isinstance(target, dict) or not _is_prometheus(target.get("datasource", panel.get("datasource"))):
                continue
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                continue
            inner = lines.next_line(expr)
            ref = target.get("refId") or str(ti)
            entry.queries.append(
                PromQLSource(
                    doc=doc,
                    path=("data", key),
                    expr=expr,
                    parsed=substitute_variables(expr),
                    kind="dashboard",
                    where=f'dashboard {key} panel "{title}" target {ref}',
                    line=expression_line(doc, ("data", key), inner) if inner else doc.line_of(("data", key)),
                    name=title,
                )
            )
        dashboard.panels.append(entry)
    return dashboard


def _panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (`panels[].panels[]`, legacy `rows[].panels[]`)."""
    for key in ("panels", "rows"):
        items = container.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                if key == "panels":
                    yield item
                yield from _panels(item)


def _is_prometheus(datasource: Any) -> bool:
    """Targets of other datasources (Loki, CloudWatch, ...) are not PromQL; a datasource without a type (a
    name, a `${DS}` variable) is taken as Prometheus."""
    if isinstance(datasource, dict):
        kind = datasource.get("type")
        return not isinstance(kind, str) or kind in ("prometheus", "datasource", "")
    return True


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_EXPR_VALUE = re.compile(r'"expr"\s*:\s*("(?:[^"\\]|\\.)*")')


class _ExprLines:
    """1-based JSON line of each `"expr": "..."` value, matched on the decoded value, so any escaping the
    file uses (`\\u0022`, `\\/`) is found; repeated identical queries are taken in order."""

    def __init__(self, raw: str) -> None:
        self._lines: dict[str, list[int]] = defaultdict(list)
        self._used: dict[str, int] = defaultdict(int)
        for match in _EXPR_VALUE.finditer(raw):
            try:
                value = json.loads(match.group(1))
            except json.JSONDecodeError:
                continue
            self._lines[value].append(raw.count("\n", 0, match.start(1)) + 1)

    def next_line(self, expr: str) -> int | None:
        lines = self._lines.get(expr)
        if not lines:
            return None
        index = min(self._used[expr], len(lines) - 1)
        self._used[expr] += 1
        return lines[index]


# -- Grafana variables -------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_DURATION_VARS = {
    "__interval": "5m",
    "__rate_interval": "5m",
    "__range": "5m",
    "__auto": "5m",
    "__interval_ms": "300000",
    "__range_ms": "300000",
    "__range_s": "300",
}
STRING_PLACEHOLDER = "gpu_policy_placeholder"


def _context(text: str, end: int) -> str:
    """`string`, `range` or `expr`: where position `end` of `text` sits."""
    quote: str | None = None
    depth = 0
    i = 0
    while i < end:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(depth - 1, 0)
        i += 1
    if quote:
        return "string"
    return "range" if depth else "expr"


def substitute_variables(expr: str) -> str:
    out: list[str] = []
    last = 0
    for match in _VARIABLE.finditer(expr):
        name = match.group(1) or match.group(2) or match.group(3)
        where = _context(expr, match.start())
        if where == "string":
            replacement = STRING_PLACEHOLDER
        elif name in _DURATION_VARS:
            replacement = _DURATION_VARS[name]
        elif where == "range":
            replacement = "5m"
        else:
            replacement = "1"
        out.append(expr[last : match.start()])
        out.append(replacement)
        last = match.end()
    out.append(expr[last:])
    return "".join(out)


# -- lines inside multi-line values ----------------------------------------------------------------------
@cache
def _source_lines(source: str) -> tuple[str, ...]:
    path = Path(source)
    try:
        return tuple(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else ()
    except (OSError, UnicodeDecodeError):
        return ()


def expression_line(doc: Document, path: FieldPath, inner_line: int) -> int:
    """Manifest line of line `inner_line` (1-based) of the string value at `path`.

    A block scalar (`expr: |`) starts on the line after its key; any other style starts on the key's line.
    An error "at end of input" after a trailing newline is placed on the value's last line.
    """
    value = doc.get(path)
    if isinstance(value, str) and value.strip():
        inner_line = min(inner_line, len(value.rstrip().splitlines()))
    key_line = doc.line_of(path)
    lines = _source_lines(doc.source)
    if 0 < key_line <= len(lines):
        after_colon = lines[key_line - 1].split(":", 1)[-1].split("#", 1)[0].strip()
        if after_colon[:1] in ("|", ">"):
            return key_line + inner_line
    return key_line + max(inner_line - 1, 0)
