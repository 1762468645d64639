"""Edge cases of the monitoring rules: node labels Karpenter sets, collectors files, Prometheus selection."""

from __future__ import annotations

import dataclasses

import pytest

from gpu_policy.metrics import dcgm
from gpu_policy.promql.text import dcgm_metric_names, metric_names
from tests.rules._helpers import POLICY, run_rule

POOL = """
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: gpu}
spec:
  template:
    metadata:
      labels: {node-type: gpu}
    spec:
      requirements:
        - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.12xlarge, p5.48xlarge]}
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot]}
      taints:
        - {key: nvidia.com/gpu, value: "true", effect: NoSchedule}
        - {key: dedicated, value: gpu, effect: NoExecute}
"""


def exporter(
    spec_extra: str = "", env: str = "", image: str = "dcgm-exporter:4.5.3-4.8.2-ubuntu22.04"
) -> str:
    return f"""
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: dcgm, namespace: mon}}
spec:
  selector: {{matchLabels: {{app: dcgm}}}}
  template:
    metadata: {{labels: {{app: dcgm}}}}
    spec:
{spec_extra}
      containers:
        - name: exporter
          image: nvcr.io/nvidia/k8s/{image}
{env}
"""


TOLERATE_ALL = """      tolerations:
        - {operator: Exists}"""


@pytest.mark.parametrize(
    ("selector", "ok"),
    [
        ("karpenter.k8s.aws/instance-gpu-manufacturer: nvidia", True),
        ("node-type: gpu", True),
        ("karpenter.sh/capacity-type: spot", True),
        ('nvidia.com/gpu.present: "true"', False),  # GFD's label, not Karpenter's
        ('karpenter.k8s.aws/instance-gpu-count: "8"', False),  # g5.12xlarge has 4
        ("node.kubernetes.io/instance-type: p5.48xlarge", False),
    ],
)
def test_node_selector_must_hold_on_every_instance_type_of_the_pool(selector: str, ok: bool) -> None:
    text = POOL + exporter(TOLERATE_ALL + f"\n      nodeSelector:\n        {selector}")
    found = run_rule("dcgm-exporter-selects-gpu-nodes", text)
    assert (found == []) is ok, found
    if not ok:
        assert found[0][0] == "DaemonSet/mon/dcgm" and "NodePool gpu" in found[0][1]


def test_gfd_label_is_accepted_when_the_policy_says_gfd_is_installed() -> None:
    policy = dataclasses.replace(
        POLICY, cluster={**POLICY.cluster, "gpuFeatureDiscovery": {"installed": True}}
    )
    text = POOL + exporter(TOLERATE_ALL + '\n      nodeSelector:\n        nvidia.com/gpu.present: "true"')
    assert run_rule("dcgm-exporter-selects-gpu-nodes", text, policy) == []


def test_required_affinity_with_gt_on_gpu_count() -> None:
    affinity = """      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["0"]}"""
    assert run_rule("dcgm-exporter-selects-gpu-nodes", POOL + exporter(TOLERATE_ALL + "\n" + affinity)) == []
    too_many = affinity.replace('values: ["0"]', 'values: ["4"]')
    found = run_rule("dcgm-exporter-selects-gpu-nodes", POOL + exporter(TOLERATE_ALL + "\n" + too_many))
    assert found and "g5.12xlarge" in found[0][1]


def test_noexecute_taint_must_be_tolerated_and_gpu_requests_do_not_help_the_exporter() -> None:
    only_gpu = """      tolerations:
        - {key: nvidia.com/gpu, operator: Exists}"""
    found = run_rule("dcgm-exporter-tolerates-gpu-taints", POOL + exporter(only_gpu))
    assert len(found) == 1 and "dedicated=gpu:NoExecute" in found[0][1]
    found = run_rule("dcgm-exporter-tolerates-gpu-taints", POOL + exporter(""))
    assert "nvidia.com/gpu=true:NoSchedule" in found[0][1]


def test_collectors_flag_wins_over_env_and_default_applies() -> None:
    container = {
        "args": ["-f", "/etc/x/a.csv"],
        "env": [{"name": dcgm.COLLECTORS_ENV, "value": "/etc/x/b.csv"}],
    }
    assert dcgm.configured_collectors(("c",), container)[0] == "/etc/x/a.csv"
    assert dcgm.configured_collectors(("c",), {"args": ["--collectors=/x/c.csv"]})[0] == "/x/c.csv"
    assert dcgm.configured_collectors(("c",), {})[0] == dcgm.DEFAULT_COLLECTORS


def test_commented_rows_are_not_collected() -> None:
    fields = dcgm.parse_collectors_csv(
        "# c\nDCGM_FI_DEV_GPU_UTIL, gauge, x\n# DCGM_FI_DEV_FB_TOTAL, gauge, y\n"
        "DCGM_FI_DEV_DEC_UTIL ,     gauge, z\n"
    )
    assert fields == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_DEC_UTIL"}


def test_unreadable_collector_file_is_a_finding_not_a_pass() -> None:
    env = """          env:
            - {name: DCGM_EXPORTER_COLLECTORS, value: /etc/dcgm-exporter/custom.csv}"""
    found = run_rule("dcgm-metrics-are-collected", exporter(env=env))
    assert len(found) == 1 and "custom.csv could not be read" in found[0][1]


def test_collectors_from_a_mounted_configmap_are_read() -> None:
    text = (
        exporter(
            spec_extra="""      volumes:
        - {name: csv, configMap: {name: counters}}""",
            env="""          env:
            - {name: DCGM_EXPORTER_COLLECTORS, value: /etc/custom/c.csv}
          volumeMounts:
            - {name: csv, mountPath: /etc/custom}""",
        )
        + """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: counters, namespace: mon}
data:
  c.csv: |
    DCGM_FI_DEV_GPU_UTIL, gauge, util
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: mon}
spec:
  groups:
    - name: g
      rules:
        - {alert: A, expr: DCGM_FI_DEV_GPU_UTIL > 90 and DCGM_FI_DEV_FB_USED > 0}
"""
    )
    found = run_rule("dcgm-metrics-are-collected", text)
    assert found == [("PrometheusRule/mon/r", found[0][1])] and "DCGM_FI_DEV_FB_USED" in found[0][1]
    assert "GPU_UTIL" not in found[0][1].split("queries")[1].split(",")[0]


PROM = """
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: p, namespace: monitoring}
spec:
  ruleSelector: {}
"""
RULE = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: other, labels: {team: gpu}}
spec: {groups: []}
"""


def test_null_rule_namespace_selector_means_own_namespace_only() -> None:
    found = run_rule("prometheusrule-selected-by-prometheus", PROM + RULE)
    assert found and "only looks in its own namespace monitoring" in found[0][1]
    assert (
        run_rule("prometheusrule-selected-by-prometheus", PROM + "  ruleNamespaceSelector: {}\n" + RULE) == []
    )


def test_null_rule_selector_selects_nothing() -> None:
    found = run_rule(
        "prometheusrule-selected-by-prometheus",
        PROM.replace("  ruleSelector: {}\n", "  ruleNamespaceSelector: {}\n") + RULE,
    )
    assert found and "null selector selects nothing" in found[0][1]


def test_no_prometheus_in_the_set_is_a_partial_set() -> None:
    assert run_rule("prometheusrule-selected-by-prometheus", RULE) == []


def test_metric_names_skip_functions_labels_and_grouping() -> None:
    expr = (
        'sum by (nodepool) (increase(karpenter_nodeclaims_created_total{nodepool=~"gpu-.*"}[15m]))'
        " / on(pod) x"
    )
    assert metric_names(expr) == ("karpenter_nodeclaims_created_total", "x")
    assert metric_names("rate(a[$__rate_interval]) offset 5m + ${b}") == ("a",)
    assert dcgm_metric_names('DCGM_FI_DEV_FB_USED{pod="DCGM_FI_X"} / DCGM_FI_DEV_FB_FREE') == [
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
    ]
