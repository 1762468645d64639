"""PromQL living inside other objects: KEDA prometheus triggers and Grafana dashboards in ConfigMaps.

Grafana template variables are not PromQL; before parsing they are replaced by placeholders of the type their
position needs (Grafana docs, "Variable syntax": `$var`, `${var}`, `${var:format}`, `[[var]]`; global
variables
`$__interval`, `$__rate_interval`, `$__range`, `$__interval_ms`, `$__range_s`, `$__range_ms`):
- `$__interval`, `$__rate_interval`, `$__range`, `$__auto` -> `5m`; `$__interval_ms`, `$__range_ms` ->
`300000`;
  `$__range_s` -> `300`;
- any variable inside a string literal (`pod=~"$pod"`) -> `gpu_policy_placeholder`;
- any variable inside `[...]` (a range or subquery) -> `5m`;
- anywhere else (a threshold, a `topk` parameter) -> `1`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document
from gpu_policy.promql.extract import EmbeddedQuery, expression_line

DASHBOARD_LABEL = "grafana_dashboard"
"""The label the Grafana sidecar (kube-prometheus-stack default `sidecar.dashboards.label`) watches."""

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


def keda_queries(graph: ResourceGraph) -> list[EmbeddedQuery]:
    found: list[EmbeddedQuery] = []
    for doc in graph.of_kind("ScaledObject", "ScaledJob"):
        triggers = doc.spec.get("triggers")
        if not isinstance(triggers, list):
            continue
        for i, trigger in enumerate(triggers):
            if not isinstance(trigger, dict) or trigger.get("type") != "prometheus":
                continue
            metadata = trigger.get("metadata")
            query = metadata.get("query") if isinstance(metadata, dict) else None
            if not isinstance(query, str) or not query.strip():
                continue
            name = trigger.get("name")
            where = f"trigger {i}" + (f" ({name})" if isinstance(name, str) else "")
            found.append(
                EmbeddedQuery(
                    doc=doc,
                    path=("spec", "triggers", i, "metadata", "query"),
                    expr=query,
                    original=query,
                    kind="keda",
                    where=where,
                )
            )
    return found


def _panels(container: Any) -> Iterator[dict[str, Any]]:
    """Every panel, rows and collapsed rows included (`panels[].panels[]`, legacy `rows[].panels[]`)."""
    if not isinstance(container, dict):
        return
    for key in ("panels", "rows"):
        items = container.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict):
                if key == "panels":
                    yield item
                yield from _panels(item)


def _is_prometheus(datasource: Any) -> bool:
    """Targets of other datasources (Loki, CloudWatch, ...) are not PromQL."""
    if isinstance(datasource, dict):
        kind = datasource.get("type")
        return not isinstance(kind, str) or kind in ("prometheus", "datasource", "")
    return True


def _locate(text: str, expr: str, start: int) -> int | None:
    for needle in (json.dumps(expr, ensure_ascii=False), json.dumps(expr)):
        index = text.find(needle, start)
        if index < 0:
            index = text.find(needle)
        if index >= 0:
            return index
    return None


def dashboard_queries(graph: ResourceGraph) -> tuple[list[EmbeddedQuery], list[tuple[Document, str, str]]]:
    """Queries of every Grafana dashboard ConfigMap, and (doc, key, error) for dashboards that are not
    JSON."""
    found: list[EmbeddedQuery] = []
    broken: list[tuple[Document, str, str]] = []
    for doc in graph.of_kind("ConfigMap"):
        if DASHBOARD_LABEL not in doc.labels:
            continue
        data = doc.obj.get("data")
        if not isinstance(data, dict):
            continue
        for key, text in data.items():
            if not isinstance(text, str) or not str(key).endswith(".json"):
                continue
            try:
                dashboard = json.loads(text)
            except json.JSONDecodeError as exc:
                broken.append((doc, str(key), f"line {exc.lineno} column {exc.colno}: {exc.msg}"))
                continue
            if isinstance(dashboard, dict) and isinstance(dashboard.get("dashboard"), dict):
                dashboard = dashboard["dashboard"]
            cursor = 0
            for panel in _panels(dashboard):
                title = panel.get("title", "")
                targets = panel.get("targets")
                if not isinstance(targets, list):
                    continue
                for target in targets:
                    if not isinstance(target, dict) or not _is_prometheus(
                        target.get("datasource", panel.get("datasource"))
                    ):
                        continue
                    expr = target.get("expr")
                    if not isinstance(expr, str) or not expr.strip():
                        continue
                    offset = _locate(text, expr, cursor)
                    line = None
                    if offset is not None:
                        cursor = offset + 1
                        line = expression_line(doc, ("data", key), text.count("\n", 0, offset) + 1)
                    ref = target.get("refId", "")
                    where = f'dashboard {key}, panel "{title}"' + (f", target {ref}" if ref else "")
                    found.append(
                        EmbeddedQuery(
                            doc=doc,
                            path=("data", key),
                            expr=substitute_variables(expr),
                            original=expr,
                            kind="dashboard",
                            where=where,
                            line=line,
                        )
                    )
    return found, broken
