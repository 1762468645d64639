"""gpu_policy.promql.sources: every PromQL expression of a manifest set, with its exact manifest line."""

from __future__ import annotations

from collections.abc import Callable

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.promql.sources import promql_sources

MANIFESTS = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: m}
spec:
  groups:
    - name: g
      rules:
        - record: "gpu:util:avg"
          expr: avg(DCGM_FI_DEV_GPU_UTIL)
        - alert: Hot
          expr: |
            avg by (gpu) (
              DCGM_FI_DEV_GPU_UTIL
            ) > 90
        - alert: NoExpr
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: so, namespace: m}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: prometheus
      name: gpu
      metadata:
        query: >-
          sum(DCGM_FI_DEV_GPU_UTIL{pod=~"web-.*"})
        threshold: "70"
    - type: prometheus
      metadata: {query: "   "}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: dash
  namespace: m
  labels: {grafana_dashboard: "1"}
data:
  README.md: "not a dashboard: Grafana loads only *.json"
  gpu.json: |
    {"dashboard": {
      "panels": [
        {"title": "util", "targets": [{"refId": "A", "expr": "avg(DCGM_FI_DEV_GPU_UTIL{pod=~\\"$pod\\"})"}]},
        {"type": "row", "title": "r", "panels": [
          {"title": "nested", "datasource": {"type": "prometheus"},
           "targets": [{"refId": "B", "expr": "sum(x) \\u003e 1"}]}]},
        {"title": "logs", "datasource": {"type": "loki"}, "targets": [{"expr": "{app=\\"x\\"}"}]}
      ],
      "rows": [{"panels": [{"title": "legacy", "targets": [{"expr": "up[$__rate_interval]"}]}]}]
    }}
"""


def _line(needle: str) -> int:
    return next(i for i, line in enumerate(MANIFESTS.strip("\n").splitlines(), 1) if needle in line)


def test_every_expression_with_its_owner_path_and_line(graph_of: Callable[[str], ResourceGraph]) -> None:
    sources = promql_sources(graph_of(MANIFESTS))
    got = [(q.kind, q.doc.name, q.where, q.line) for q in sources.all]
    assert got == [
        ("rule", "r", "recording rule gpu:util:avg", _line("expr: avg(")),
        ("rule", "r", "alert Hot", _line("expr: |")),
        ("keda", "so", "trigger 1 (gpu)", _line("query: >-")),  # the blank query of trigger 2 is no query
        ("dashboard", "dash", 'dashboard gpu.json panel "util" target A', _line('"title": "util"')),
        ("dashboard", "dash", 'dashboard gpu.json panel "nested" target B', _line('"refId": "B"')),
        ("dashboard", "dash", 'dashboard gpu.json panel "legacy" target 0', _line('"title": "legacy"')),
    ]  # the Loki target and the README.md key are skipped
    assert sources.recorded == frozenset({"gpu:util:avg"})
    assert [d.key for d in sources.dashboards] == ["gpu.json"]


def test_lines_inside_multi_line_expressions(graph_of: Callable[[str], ResourceGraph]) -> None:
    sources = promql_sources(graph_of(MANIFESTS))
    hot = sources.rules[1]
    assert hot.line_of(1) == _line("avg by (gpu) (")  # a block scalar starts below its key
    assert hot.line_of(2) == _line("      DCGM_FI_DEV_GPU_UTIL")
    assert hot.line_of(99) == _line(") > 90")  # past the end: the last line of the block
    keda = sources.keda[0]
    assert keda.line_of(1) == _line('sum(DCGM_FI_DEV_GPU_UTIL{pod=~"web-.*"})')


def test_grafana_variables_are_substituted_only_for_the_parser(graph_of: Callable[[str], ResourceGraph]) -> None:
    util, nested, legacy = promql_sources(graph_of(MANIFESTS)).dashboard_queries
    assert util.expr == 'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"$pod"})'
    assert util.parsed == 'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"gpu_policy_placeholder"})'
    assert nested.expr == nested.parsed == "sum(x) > 1"  # found although the JSON escapes `>` as \u003e
    assert legacy.parsed == "up[5m]"


def test_extracted_once_per_graph(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(MANIFESTS)
    assert promql_sources(graph) is promql_sources(graph)
    assert promql_sources(graph).keda[0] is promql_sources(graph).keda[0]


def test_a_dashboard_that_is_not_json_is_reported_once_at_its_line(
    graph_of: Callable[[str], ResourceGraph],
) -> None:
    text = MANIFESTS.replace('"panels": [\n', '"panels" [\n', 1)
    (board,) = promql_sources(graph_of(text)).dashboards
    assert board.error is not None and board.error.startswith("gpu.json is not valid JSON: Expecting ':'")
    assert board.error_line == _line('"panels": [') and board.panels == []
