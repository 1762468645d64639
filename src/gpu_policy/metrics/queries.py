"""Every PromQL query the manifests send to Prometheus, with the manifest line it is written on.

- PrometheusRule `spec.groups[].rules[].expr` (alerting and recording rules);
- KEDA ScaledObject/ScaledJob triggers of type `prometheus` (`metadata.query`);
- Grafana dashboards shipped as ConfigMaps labelled `grafana_dashboard` (the Grafana Helm chart's sidecar
label,
  grafana/helm-charts charts/grafana values.yaml `sidecar.dashboards.label`): `panels[].targets[].expr`, rows'
  nested `panels` included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.promql.extract import expression_line

DASHBOARD_LABEL = "grafana_dashboard"


@dataclass(frozen=True)
class Query:
    doc: Document
    path: FieldPath
    expr: str
    kind: str
    """`rule`, `keda` or `dashboard`."""
    where: str
    """`alert HighGPUUtilization`, `trigger 0`, `dashboard gpu.json panel "GPU utilization" target A`."""
    line: int | None = None


@dataclass
class Panel:
    title: str
    queries: list[Query] = field(default_factory=list)
    line: int | None = None


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


def rule_queries(graph: ResourceGraph) -> Iterator[Query]:
    for doc in graph.of_kind("PrometheusRule"):
        for gi, group in enumerate(doc.spec.get("groups") or []):
            if not isinstance(group, dict):
                continue
            for ri, rule in enumerate(group.get("rules") or []):
                if not isinstance(rule, dict) or rule.get("expr") is None:
                    continue
                name = rule.get("alert") or rule.get("record") or f"rule {ri}"
                label = f"alert {name}" if rule.get("alert") else f"recording rule {name}"
                yield Query(
                    doc, ("spec", "groups", gi, "rules", ri, "expr"), str(rule["expr"]), "rule", label
                )


def keda_queries(graph: ResourceGraph) -> Iterator[Query]:
    for doc in graph.of_kind("ScaledObject", "ScaledJob"):
        for ti, trigger in enumerate(doc.spec.get("triggers") or []):
            if not isinstance(trigger, dict) or trigger.get("type") != "prometheus":
                continue
            query = (trigger.get("metadata") or {}).get("query")
            if isinstance(query, str):
                name = trigger.get("name")
                where = f"trigger {ti}" + (f" ({name})" if name else "")
                yield Query(doc, ("spec", "triggers", ti, "metadata", "query"), query, "keda", where)


def _line_in_json(raw: str, needle: str, start: int) -> tuple[int | None, int]:
    """1-based line of `needle` in the JSON text at or after `start`, and where the search may resume."""
    index = raw.find(needle, start)
    if index < 0:
        index = raw.find(needle)
        if index < 0:
            return None, start
    return raw.count("\n", 0, index) + 1, index + len(needle)


def _walk_panels(panels: Any) -> Iterator[dict[str, Any]]:
    for panel in panels if isinstance(panels, list) else []:
        if isinstance(panel, dict):
            yield panel
            yield from _walk_panels(panel.get("panels"))


def parse_dashboard(doc: Document, key: str, raw: str) -> Dashboard:
    dashboard = Dashboard(doc, key)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        dashboard.error = (
            f"{key} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno} of the JSON)"
        )
        dashboard.error_line = expression_line(doc, ("data", key), exc.lineno)
        return dashboard
    if not isinstance(data, dict):
        dashboard.error = f"{key} is JSON but not a dashboard object"
        dashboard.error_line = doc.line_of(("data", key))
        return dashboard
    # Old dashboards keep panels under rows[].panels.
    roots = list(_walk_panels(data.get("panels")))
    for row in data.get("rows") or []:
        if isinstance(row, dict):
            roots += list(_walk_panels(row.get("panels")))
    cursor = 0
    for panel in roots:
        title = str(panel.get("title") or "")
        inner, cursor = _line_in_json(raw, json.dumps(title), cursor) if title else (None, cursor)
        entry = Panel(title, line=expression_line(doc, ("data", key), inner) if inner else None)
        for ti, target in enumerate(panel.get("targets") or []):
            if not isinstance(target, dict) or not isinstance(target.get("expr"), str):
                continue
            expr = target["expr"]
            inner, cursor = _line_in_json(raw, json.dumps(expr), cursor)
            ref = target.get("refId") or str(ti)
            entry.queries.append(
                Query(
                    doc,
                    ("data", key),
                    expr,
                    "dashboard",
                    f'dashboard {key} panel "{title}" target {ref}',
                    line=expression_line(doc, ("data", key), inner) if inner else None,
                )
            )
        dashboard.panels.append(entry)
    return dashboard


def dashboards(graph: ResourceGraph) -> list[Dashboard]:
    found: list[Dashboard] = []
    for doc in graph.of_kind("ConfigMap"):
        if DASHBOARD_LABEL not in doc.labels:
            continue
        for key, value in (doc.obj.get("data") or {}).items():
            if isinstance(value, str):
                found.append(parse_dashboard(doc, str(key), value))
    return found


def dashboard_queries(graph: ResourceGraph) -> Iterator[Query]:
    for dashboard in dashboards(graph):
        for panel in dashboard.panels:
            yield from panel.queries


def all_queries(graph: ResourceGraph) -> list[Query]:
    return [*rule_queries(graph), *keda_queries(graph), *dashboard_queries(graph)]
