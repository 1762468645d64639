"""promtool check rules on PrometheusRules and embedded queries: every error lands on the manifest's line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.promql import promtool
from gpu_policy.promql.check import CheckRun, check_rule_files, extract_all
from gpu_policy.promql.sources import promql_sources, substitute_variables

RULES = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: broken, namespace: monitoring}
spec:
  groups:
    - name: g
      partial_response_strategy: warn
      rules:
        - alert: A
          expr: |
            sum by (gpu) (
              DCGM_FI_DEV_GPU_UTIL >
          for: 5x
        - alert: B
          expr: rate(DCGM_FI_DEV_GPU_UTIL)
        - alert: C
          expr: up == 0
          annotations:
            summary: "{{ $labels.pod "
        - alert: D
          expr: up
          for: 1y2
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.strip("\n").splitlines(), 1) if needle in line)


def test_every_error_points_at_its_manifest_line(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(RULES)
    run = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), []))
    got = sorted((p.line, p.path[-1]) for p in run.problems)
    text = RULES.lstrip()
    assert got == sorted(
        [
            (
                _line_of(text, "DCGM_FI_DEV_GPU_UTIL >"),
                "expr",
            ),  # unclosed parenthesis, last line of the block
            (_line_of(text, "for: 5x"), "for"),  # found in a first round
            (_line_of(text, "rate(DCGM"), "expr"),  # type error: rate of an instant vector
            (_line_of(text, "summary:"), "summary"),  # template error in an annotation
            (_line_of(text, "for: 1y2"), "for"),  # found in a second round, after 5x was set aside
        ]
    ), run.problems
    assert not run.unattributed
    messages = " | ".join(p.message for p in run.problems)
    assert "unclosed left parenthesis" in messages and "expected type range vector" in messages


def test_rules_with_the_same_name_and_labels_load(graph_of: Callable[[str], ResourceGraph]) -> None:
    # kube-prometheus' kube-apiserver-availability.rules: one record name, no static labels, the series told apart
    # by the `code` label each expression keeps. promtool's duplicate-rules lint (name and static labels only,
    # cmd/promtool/main.go checkDuplicates) flags them; Prometheus and the operator (rulefmt.Parse) load them.
    text = """
    apiVersion: monitoring.coreos.com/v1
    kind: PrometheusRule
    metadata: {name: apiserver, namespace: monitoring}
    spec:
      groups:
        - name: kube-apiserver-availability.rules
          rules:
            - record: code_verb:apiserver_request_total:increase1h
              expr: sum by (cluster, code, verb) (increase(apiserver_request_total{code=~"2.."}[1h]))
            - record: code_verb:apiserver_request_total:increase1h
              expr: sum by (cluster, code, verb) (increase(apiserver_request_total{code=~"5.."}[1h]))
        - name: gpu
          rules:
            - alert: GPUHot
              expr: DCGM_FI_DEV_GPU_TEMP > 85
              labels: {severity: warning}
            - alert: GPUHot
              expr: DCGM_FI_DEV_GPU_TEMP > 90
              labels: {severity: warning}
    """
    graph = graph_of(text)
    run = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), []))
    assert run.problems == [] and run.unattributed == []


def test_valid_rules_pass(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(
        RULES.replace("5x", "5m")
        .replace("1y2", "1y")
        .replace(">\n", "> 90)\n")
        .replace("rate(DCGM_FI_DEV_GPU_UTIL)", "rate(DCGM_FI_DEV_GPU_UTIL[5m])")
        .replace("{{ $labels.pod ", "{{ $labels.pod }}")
    )
    run = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), []))
    assert run.problems == [] and run.unattributed == []


EMBEDDED = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: model-a-gpu-scaler, namespace: inference}
spec:
  scaleTargetRef: {name: model-a-serving}
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: prometheus
      metadata:
        query: sum(DCGM_FI_DEV_GPU_UTIL{pod=~"model-a-.*"}
        threshold: "70"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: gpu-dashboard
  namespace: monitoring
  labels: {grafana_dashboard: "1"}
data:
  gpu.json: |
    {"panels": [
      {"title": "utilisation", "targets": [
        {"refId": "A", "expr": "avg(rate(x{pod=~\\"$pod\\"}[$__rate_interval])) > $threshold"}]},
      {"type": "row", "title": "memory", "panels": [
        {"title": "fb", "targets": [{"refId": "B", "expr": "sum(DCGM_FI_DEV_FB_USED) by"}]}]},
      {"title": "logs", "datasource": {"type": "loki"}, "targets": [{"expr": "{app=\\"x\\"} |= \\"error\\""}]}
    ]}
"""


def test_keda_and_dashboard_queries_are_parsed(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(EMBEDDED)
    sources = promql_sources(graph)
    keda, dashboards = list(sources.keda), list(sources.dashboard_queries)
    assert [q.where for q in keda] == ["trigger 1"]
    assert [q.where for q in dashboards] == [
        'dashboard gpu.json panel "utilisation" target A',
        'dashboard gpu.json panel "fb" target B',
    ]  # loki target skipped
    assert [d.error for d in sources.dashboards] == [None]
    run = check_rule_files(extract_all([], keda + dashboards))
    text = EMBEDDED.lstrip()
    assert sorted((p.query.kind, p.line) for p in run.problems if p.query) == [
        ("dashboard", _line_of(text, '"refId": "B"')),
        ("keda", _line_of(text, "query: sum(")),
    ]


def _seen(run: CheckRun) -> list[tuple[str, int, str, str]]:
    return [(p.doc.ref, p.line, p.rule_name, p.message) for p in run.problems]


def test_the_prometheusrule_part_of_a_run_with_queries_is_a_run_over_the_prometheusrules_alone(
    graph_of: Callable[[str], ResourceGraph],
) -> None:
    # The alert scenarios read the rules' shared run this way instead of running promtool a second time.
    graph = graph_of(RULES + "---\n" + EMBEDDED)
    sources = promql_sources(graph)
    shared = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), [*sources.keda, *sources.dashboard_queries]))
    alone = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), []))
    view = shared.prometheus_rules_only()
    assert view is not None
    assert any(p.query is not None for p in shared.problems)  # the queries' errors are in the shared run...
    assert len(alone.problems) == 5 and _seen(view) == _seen(alone)  # ...and not in its PrometheusRule part
    assert [f.name for f in view.files] == [f.name for f in alone.files]
    assert view.unattributed == alone.unattributed == []


def test_output_no_file_owns_leaves_the_prometheusrule_part_unknown(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(RULES + "---\n" + EMBEDDED)
    run = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), list(promql_sources(graph).keda)))
    run.unattributed.append("panic: runtime error")
    run.unattributed_origins.append(None)
    assert run.prometheus_rules_only() is None
    alone = check_rule_files(extract_all(graph.of_kind("PrometheusRule"), []))
    assert alone.prometheus_rules_only() is alone  # nothing to take out


def test_grafana_variables_become_typed_placeholders() -> None:
    assert (
        substitute_variables('rate(x{pod=~"$pod"}[$__rate_interval]) > ${threshold}')
        == 'rate(x{pod=~"gpu_policy_placeholder"}[5m]) > 1'
    )
    assert substitute_variables("x[[[range]]] offset $__range") == "x[5m] offset 5m"


def test_missing_promtool_is_an_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GPU_POLICY_PROMTOOL", str(tmp_path / "no-promtool"))
    promtool.promtool_path.cache_clear()
    try:
        with pytest.raises(
            promtool.PromtoolMissing, match=r"apt-get install -y --no-install-recommends prometheus"
        ):
            promtool.run_promtool(["--version"])
    finally:
        monkeypatch.delenv("GPU_POLICY_PROMTOOL")
        promtool.promtool_path.cache_clear()


def test_promtool_scratch_folders_go_to_shared_memory_only_when_no_temporary_folder_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(promtool, "SHARED_MEMORY", str(shm))
    monkeypatch.setattr(promtool, "SHARED_MEMORY_MIN_FREE", 0)
    assert promtool.scratch_root() == str(shm)
    with promtool.scratch_folder("gpu-policy-test-") as folder:
        assert Path(folder).parent == shm and (Path(folder).stat().st_mode & 0o777) == 0o700
    assert list(shm.iterdir()) == []  # removed on exit
    monkeypatch.setattr(promtool, "SHARED_MEMORY_MIN_FREE", 1 << 62)  # not that much room
    assert promtool.scratch_root() is None
    monkeypatch.setattr(promtool, "SHARED_MEMORY_MIN_FREE", 0)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the user's choice wins
    assert promtool.scratch_root() is None
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(promtool, "SHARED_MEMORY", str(tmp_path / "absent"))
    assert promtool.scratch_root() is None
