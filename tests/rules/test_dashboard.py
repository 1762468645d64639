"""Edge cases of the dashboard rules."""

from __future__ import annotations

import json

from gpu_policy.policy.loader import PolicySet
from tests.rules._helpers import run_rule


def configmap(dashboard: str) -> str:
    body = "\n".join("    " + line for line in dashboard.splitlines())
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: d
  namespace: m
  labels: {{grafana_dashboard: "1"}}
data:
  d.json: |
{body}
"""


def panel(title: str, *exprs: str) -> dict[str, object]:
    return {"title": title, "targets": [{"refId": chr(65 + i), "expr": e} for i, e in enumerate(exprs)]}


def test_invalid_json_reports_the_manifest_line() -> None:
    text = configmap('{\n  "title": "x"\n  "panels": []\n}')
    found = run_rule("dashboard-json-is-valid", text)
    assert found and "Expecting ',' delimiter (line 3" in found[0][1]


def test_panels_match_by_title_and_metric_and_rows_are_searched() -> None:
    board = {
        "panels": [
            panel("GPU utilization", "DCGM_FI_DEV_GPU_UTIL"),
            {"type": "row", "panels": [panel("GPU memory", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE")]},
            panel("Replicas", "kube_horizontalpodautoscaler_status_current_replicas"),
            panel("Nodes", "sum by (nodepool) (karpenter_nodeclaims_created_total)"),
            panel("Cost", "sum(karpenter_nodepools_cost_total)"),
        ]
    }
    assert run_rule("dashboard-has-design-panels", configmap(json.dumps(board, indent=2))) == []
    board["panels"][4] = panel("Cost", "sum(kube_pod_info)")  # type: ignore[index]
    found = run_rule("dashboard-has-design-panels", configmap(json.dumps(board, indent=2)))
    assert len(found) == 1 and "no cost panel" in found[0][1] and "['Cost']" in found[0][1]


def test_unknown_metrics_histogram_suffixes_and_recording_rules() -> None:
    board = {
        "panels": [
            panel(
                "x",
                "histogram_quantile(0.9, karpenter_pods_startup_duration_seconds_bucket)",
                "my:recorded + typo_metric",
            )
        ]
    }
    rule = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: m}
spec:
  groups: [{name: g, rules: [{record: "my:recorded", expr: "up"}]}]
"""
    found = run_rule("dashboard-queries-known-metrics", configmap(json.dumps(board)) + rule)
    assert len(found) == 1 and "queries typo_metric, which is not among the knownMetrics" in found[0][1]
    assert "policies/dashboard.yaml" in found[0][1]


def test_dashboard_policy_rules_judge_nothing_without_a_dashboard_policy() -> None:
    """Another team's dashboard (node-exporter, vLLM metrics, no design panels): only the reference profile's
    choices would flag it, and the defaults make none."""
    board = {"panels": [panel("vLLM queue", "sum(vllm:num_requests_waiting)"), panel("CPU", "node_load1")]}
    text = configmap(json.dumps(board))
    assert run_rule("dashboard-queries-known-metrics", text, PolicySet.defaults()) == []
    assert run_rule("dashboard-has-design-panels", text, PolicySet.defaults()) == []
    assert run_rule("dashboard-queries-known-metrics", text) != []
