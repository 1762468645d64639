"""The live Prometheus checks against a real Prometheus (Debian's /usr/bin/prometheus) scraping synthetic DCGM
exporters, configured from the reference manifests as the Prometheus Operator would configure it. No Kubernetes:
the exporter pods are the testbed's processes, one per GPU node.

Two stacks per module: the reference set, and the reference set plus two test-only PrometheusRules (one the operator
would reject for an invalid expression, one copy of GPUMemoryPressure without `for` so that firing is observable
within the test's time). Each takes about 6 s to its first scrape (Prometheus' discovery manager hands targets to
the scrapers every 5 s); they start together.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.live import prometheus_checks as checks
from gpu_policy.live.prometheus import PrometheusClient, PrometheusError
from gpu_policy.loading.loader import load_manifests
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed.metrics_stack import MetricsStack, gpu
from gpu_policy.testbed.prometheus import prometheus_binary

pytestmark = pytest.mark.skipif(
    prometheus_binary() is None, reason="needs /usr/bin/prometheus (Debian package `prometheus`, see .ci/setup)"
)

A0, A1 = "model-a-serving-6d8f9c7b5-x0k2m", "model-a-serving-6d8f9c7b5-x1k2m"
B0, B1 = "model-b-serving-7c9d8e6f4-b0q7z", "model-b-serving-7c9d8e6f4-b1q7z"
FRAMEBUFFER = 40960
NODES = {
    "gpu-node-a": [
        gpu(0, ("inference", A0, "vllm"), DCGM_FI_DEV_GPU_UTIL=40, DCGM_FI_DEV_FB_USED=20000),
        gpu(1, ("inference", A1, "vllm"), DCGM_FI_DEV_GPU_UTIL=60, DCGM_FI_DEV_FB_USED=20000),
    ],
    "gpu-node-b": [
        gpu(0, ("inference", B0, "vllm"), DCGM_FI_DEV_GPU_UTIL=30, DCGM_FI_DEV_FB_USED=10000),
        gpu(1, ("inference", B1, "vllm"), DCGM_FI_DEV_GPU_UTIL=20, DCGM_FI_DEV_FB_USED=10000),
        gpu(2, None, DCGM_FI_DEV_GPU_UTIL=0),  # idle GPU: no pod labels from the exporter
    ],
}
EXTRA_RULES = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gpu-broken-rules
  namespace: monitoring
  labels:
    prometheus: gpu-prometheus
spec:
  groups:
    - name: gpu-broken
      rules:
        - alert: BrokenGPUAlert
          expr: sum(DCGM_FI_DEV_GPU_UTIL > 90
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gpu-alerts-immediate
  namespace: monitoring
  labels:
    prometheus: gpu-prometheus
spec:
  groups:
    - name: gpu-alerts-immediate
      rules:
        - alert: GPUMemoryPressureImmediate
          expr: DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9
          labels:
            severity: critical
          annotations:
            summary: "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has over 90% of its memory in use"
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gpu-ratio-rules
  namespace: monitoring
  labels:
    prometheus: gpu-prometheus
spec:
  groups:
    - name: gpu-ratios
      rules:
        # valid PromQL that fails at every evaluation: gpu="0" exists on both nodes (many-to-many matching)
        - record: gpu:fb_used_per_util:ratio
          expr: DCGM_FI_DEV_FB_USED / on(gpu) DCGM_FI_DEV_GPU_UTIL
"""


def _graph(*folders: Path) -> ResourceGraph:
    return ResourceGraph(load_manifests([str(f) for f in folders]).documents)


@pytest.fixture(scope="module")
def reference_graph() -> ResourceGraph:
    return _graph(reference_manifests_dir())


@pytest.fixture(scope="module")
def extra_graph(tmp_path_factory: pytest.TempPathFactory) -> ResourceGraph:
    folder = tmp_path_factory.mktemp("extra-rules")
    (folder / "rules.yaml").write_text(EXTRA_RULES, encoding="utf-8")
    return _graph(reference_manifests_dir(), folder)


def _variant(tmp_path: Path, file: str, old: str, new: str) -> ResourceGraph:
    """The reference set with one text replacement in one file."""
    folder = tmp_path / "manifests"
    shutil.copytree(reference_manifests_dir(), folder)
    text = (folder / file).read_text(encoding="utf-8")
    assert old in text
    (folder / file).write_text(text.replace(old, new), encoding="utf-8")
    return _graph(folder)


@pytest.fixture(scope="module")
def stacks(
    reference_graph: ResourceGraph, extra_graph: ResourceGraph, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MetricsStack, MetricsStack]]:
    reference = MetricsStack(reference_graph, NODES, tmp_path_factory.mktemp("reference-stack"))
    extra = MetricsStack(extra_graph, NODES, tmp_path_factory.mktemp("extra-stack"))
    try:
        reference.start()
        extra.start()
        reference.wait_scraped()
        extra.wait_scraped()
        yield reference, extra
    finally:
        reference.close()
        extra.close()


@pytest.fixture
def stack(stacks: tuple[MetricsStack, MetricsStack]) -> MetricsStack:
    return stacks[0]


@pytest.fixture
def extra_stack(stacks: tuple[MetricsStack, MetricsStack]) -> MetricsStack:
    return stacks[1]


def _refs(stack: MetricsStack) -> list[checks.PodRef]:
    return [checks.PodRef(p.namespace, p.name, p.node) for p in stack.pods]


def _wait_rules_evaluated(client: PrometheusClient, timeout: float = 30.0) -> None:
    """Every loaded rule evaluated once (health no longer `unknown`); bounded, generous for a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.health != "unknown" for g in client.rule_groups() for r in g.rules):
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus did not evaluate every rule within {timeout:.0f} s")


def test_reference_setup_passes_every_check(stack: MetricsStack, reference_graph: ResourceGraph) -> None:
    client = stack.client
    _wait_rules_evaluated(client)
    assert checks.exporter_target_problems(client, reference_graph, _refs(stack)) == []
    assert checks.rule_group_problems(client, reference_graph) == []
    assert checks.keda_query_problems(client, reference_graph) == []
    assert checks.firing_alert_problems(client, reference_graph) == []
    # What the checks stand on: the operator's relabelling gave the exporter targets these labels...
    node_a_pod = next(p for p in stack.pods if p.node == "gpu-node-a")
    target = next(t for t in client.targets() if t.labels.get("pod") == node_a_pod.name)
    assert target.scrape_pool == "serviceMonitor/gpu-monitoring/dcgm-exporter/0"
    assert {k: target.labels[k] for k in ("job", "namespace", "service", "endpoint", "node", "container")} == {
        "job": "dcgm-exporter",  # jobLabel app.kubernetes.io/name
        "namespace": "gpu-monitoring",
        "service": "dcgm-exporter",
        "endpoint": "metrics",
        "node": "gpu-node-a",  # the ServiceMonitor's own relabeling from __meta_kubernetes_pod_node_name
        "container": "dcgm-exporter",
    }
    # ...honorLabels kept the exporter's pod labels, and the KEDA query sums model A's two GPUs
    [total] = client.query('sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-a-serving-.*"})')
    assert total.value == 100
    idle = client.query('DCGM_FI_DEV_GPU_UTIL{Hostname="gpu-node-b", gpu="2"}')
    assert [s.labels["pod"] for s in idle] == [next(p.name for p in stack.pods if p.node == "gpu-node-b")]


def test_a_stopped_exporter_is_a_down_target_naming_its_pod(stack: MetricsStack, reference_graph: ResourceGraph
                                                            ) -> None:
    pod = next(p for p in stack.pods if p.node == "gpu-node-b")
    stack.stop_exporter("gpu-node-b")
    try:
        stack.wait_scraped(after=time.time())
        problems = checks.exporter_target_problems(stack.client, reference_graph, _refs(stack))
        assert [(p.check, p.doc.ref if p.doc else None) for p in problems] == [
            ("exporter-target-up", "DaemonSet/gpu-monitoring/dcgm-exporter")
        ]
        assert f"exporter pod gpu-monitoring/{pod.name} on node gpu-node-b" in problems[0].message
        assert "is down (up == 0)" in problems[0].message and "connection refused" in problems[0].message
        # a pod Prometheus does not scrape at all is named too
        ghost = [*_refs(stack), checks.PodRef("gpu-monitoring", "dcgm-exporter-zzzzz", "gpu-node-c")]
        missing = checks.exporter_target_problems(stack.client, reference_graph, ghost)
        assert any("dcgm-exporter-zzzzz on node gpu-node-c is not a target" in p.message for p in missing)
    finally:
        stack.start_exporter("gpu-node-b")
        stack.wait_scraped(after=time.time())


def test_a_query_returning_two_series_names_the_scaled_object(stack: MetricsStack, tmp_path: Path) -> None:
    graph = _variant(
        tmp_path, "inference/model-a.yaml",
        'query: sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-a-serving-.*"})',
        'query: DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-a-serving-.*"}',
    )
    problems = checks.keda_query_problems(stack.client, graph)
    assert [(p.check, p.doc.ref if p.doc else None, p.path) for p in problems] == [
        ("keda-query-one-series", "ScaledObject/inference/model-a-gpu-scaler",
         ("spec", "triggers", 0, "metadata", "query"))
    ]
    assert "returns 2 series" in problems[0].message and A0 in problems[0].message and A1 in problems[0].message


def test_a_query_reading_other_pods_names_them(stack: MetricsStack, tmp_path: Path) -> None:
    graph = _variant(
        tmp_path, "inference/model-a.yaml",
        'query: sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-a-serving-.*"})',
        'query: sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-.*"})',
    )
    problems = checks.keda_query_problems(stack.client, graph)
    assert [(p.check, p.doc.ref if p.doc else None) for p in problems] == [
        ("keda-query-reads-own-pods", "ScaledObject/inference/model-a-gpu-scaler")
    ]
    assert B0 in problems[0].message and B1 in problems[0].message and A0 not in problems[0].message


def test_an_idle_gpu_carries_the_exporter_pod_and_is_not_the_targets(stack: MetricsStack, tmp_path: Path) -> None:
    """With honorLabels the exporter's pod labels win where it sets them; an idle GPU has none, so its series take
    the target's pod/namespace (the exporter pod): a node-scoped query for model B reads it too."""
    graph = _variant(
        tmp_path, "inference/model-b.yaml",
        'query: sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-b-serving-.*"})',
        'query: sum(DCGM_FI_DEV_GPU_UTIL{Hostname="gpu-node-b"})',
    )
    problems = checks.keda_query_problems(stack.client, graph)
    assert [(p.check, p.doc.ref if p.doc else None) for p in problems] == [
        ("keda-query-reads-own-pods", "ScaledObject/inference/model-b-gpu-scaler")
    ]
    exporter_b = next(p.name for p in stack.pods if p.node == "gpu-node-b")
    assert f"namespace=gpu-monitoring, pod={exporter_b}, gpu=2" in problems[0].message
    assert B0 not in problems[0].message


def test_memory_pressure_at_92_percent_is_pending_with_the_real_rule(
    stack: MetricsStack, reference_graph: ResourceGraph
) -> None:
    """GPUMemoryPressure has `for: 2m`: within the test it is pending (firing is the next test, on a copy
    without `for`, and the alerts drill of the behaviour drills)."""
    stack.set_values("gpu-node-a", 0, DCGM_FI_DEV_FB_USED=round(FRAMEBUFFER * 0.92))
    try:
        pending = stack.wait_for(
            lambda client: [a for a in checks.firing_gpu_alerts(client, reference_graph, ("pending", "firing"))
                            if a.name == "GPUMemoryPressure"],
            what="GPUMemoryPressure pending",
        )
        assert [(a.state, a.labels["pod"], a.labels["gpu"], a.labels["Hostname"]) for a in pending] == [
            ("pending", A0, "0", "gpu-node-a")
        ]
        assert pending[0].rule.ref == "PrometheusRule/monitoring/gpu-alerts"
        assert checks.firing_alert_problems(stack.client, reference_graph) == []  # pending is not firing
    finally:
        stack.set_values("gpu-node-a", 0, DCGM_FI_DEV_FB_USED=20000)


def test_a_firing_gpu_alert_is_listed(extra_stack: MetricsStack, extra_graph: ResourceGraph) -> None:
    extra_stack.set_values("gpu-node-a", 1, DCGM_FI_DEV_FB_USED=round(FRAMEBUFFER * 0.92))
    try:
        problems = extra_stack.wait_for(
            lambda client: [p for p in checks.firing_alert_problems(client, extra_graph) if f"pod={A1}" in p.message],
            what="GPUMemoryPressureImmediate firing",
        )
        assert [(p.check, p.doc.ref if p.doc else None, p.path) for p in problems] == [
            ("gpu-alerts-firing", "PrometheusRule/monitoring/gpu-alerts-immediate",
             ("spec", "groups", 0, "rules", 0))
        ]
        assert "GPUMemoryPressureImmediate is firing" in problems[0].message
        assert f"pod={A1}" in problems[0].message and "Hostname=gpu-node-a" in problems[0].message
    finally:
        extra_stack.set_values("gpu-node-a", 1, DCGM_FI_DEV_FB_USED=20000)


def test_a_rule_group_prometheus_could_not_load_names_the_rule_and_group(
    extra_stack: MetricsStack, extra_graph: ResourceGraph
) -> None:
    assert extra_stack.prometheus is not None
    # the operator's validation rejected it; Prometheus runs with every other group
    assert list(extra_stack.prometheus.rules.rejected) == ["PrometheusRule/monitoring/gpu-broken-rules"]
    assert "unclosed left parenthesis" in extra_stack.prometheus.rules.rejected[
        "PrometheusRule/monitoring/gpu-broken-rules"]
    _wait_rules_evaluated(extra_stack.client)
    problems = checks.rule_group_problems(extra_stack.client, extra_graph)
    assert sorted((p.check, p.doc.ref if p.doc else None, p.path) for p in problems) == [
        ("rule-group-loaded", "PrometheusRule/monitoring/gpu-broken-rules", ("spec", "groups", 0, "name")),
        ("rule-group-loaded", "PrometheusRule/monitoring/gpu-ratio-rules", ("spec", "groups", 0, "rules", 0, "expr")),
    ]
    by_rule = {p.doc.ref: p.message for p in problems if p.doc}
    assert "group 'gpu-broken' of PrometheusRule/monitoring/gpu-broken-rules is not loaded" in by_rule[
        "PrometheusRule/monitoring/gpu-broken-rules"]
    assert "many-to-many matching not allowed" in by_rule["PrometheusRule/monitoring/gpu-ratio-rules"]


def test_unreachable_prometheus_is_one_clear_error() -> None:
    client = PrometheusClient("http://127.0.0.1:1")
    with pytest.raises(PrometheusError, match=r"^Prometheus at http://127.0.0.1:1 is unreachable: ConnectionError"):
        client.targets()


def test_a_query_error_is_prometheus_own_message(stack: MetricsStack) -> None:
    with pytest.raises(PrometheusError, match=r"refused /api/v1/query: bad_data: .*parse error"):
        stack.client.query("sum(")


def _pod(namespace: str, name: str, node: str, owner: tuple[str, str], labels: dict[str, str] | None = None
         ) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels or {},
                     "ownerReferences": [{"kind": owner[0], "name": owner[1]}]},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "podIP": "127.0.0.10"},
    }


def _live_items(stack: MetricsStack, extra_exporter: str | None = None) -> list[dict[str, object]]:
    items = [_pod(p.namespace, p.name, p.node, ("DaemonSet", "dcgm-exporter")) for p in stack.pods]
    if extra_exporter:
        items.append(_pod("gpu-monitoring", extra_exporter, "gpu-node-c", ("DaemonSet", "dcgm-exporter")))
    for name, deployment, template_hash in ((A0, "model-a-serving", "6d8f9c7b5"), (A1, "model-a-serving", "6d8f9c7b5"),
                                            (B0, "model-b-serving", "7c9d8e6f4"), (B1, "model-b-serving", "7c9d8e6f4")):
        items.append(_pod("inference", name, "gpu-node-a", ("ReplicaSet", f"{deployment}-{template_hash}"),
                          {"pod-template-hash": template_hash}))
    return items


def test_the_live_rules_judge_the_cluster_pods_through_ctx_live(stack: MetricsStack, reference_graph: ResourceGraph
                                                                ) -> None:
    """The registered rules read the exporter and workload pods from `ctx.live` and the Prometheus from
    `ctx.live.prometheus_url`; a cluster exporter pod Prometheus does not scrape fails the scrape rule by name."""
    from gpu_policy.live.state import LiveState
    from gpu_policy.policy.loader import PolicySet
    from gpu_policy.rules.context import CheckContext
    from gpu_policy.rules.live_prometheus import workload_pods
    from gpu_policy.rules.registry import all_rules

    rules = all_rules()
    ids = ("live-exporter-scraped", "live-rule-groups-loaded", "live-gpu-alerts-quiet", "live-keda-query-one-series")
    assert all("live" in rules[i].tags for i in ids)
    assert stack.prometheus is not None
    _wait_rules_evaluated(stack.client)
    live = LiveState(context="testbed", items=_live_items(stack), prometheus_url=stack.prometheus.url)
    assert sorted(workload_pods(live)[("inference", "model-a-serving")]) == [A0, A1]
    ctx = CheckContext(graph=reference_graph, policy=PolicySet.load(), live=live)
    assert {i: list(rules[i].check(ctx)) for i in ids} == {i: [] for i in ids}

    broken = LiveState(context="testbed", items=_live_items(stack, "dcgm-exporter-qqqqq"),
                       prometheus_url=stack.prometheus.url)
    violations = list(rules["live-exporter-scraped"].check(
        CheckContext(graph=reference_graph, policy=PolicySet.load(), live=broken)))
    assert [(v.doc.ref if v.doc else None) for v in violations] == ["DaemonSet/gpu-monitoring/dcgm-exporter"]
    assert "dcgm-exporter-qqqqq on node gpu-node-c is not a target" in violations[0].message
    # without --prometheus the rules judge nothing (the scenario is skipped by the live step with the reason)
    quiet = CheckContext(graph=reference_graph, policy=PolicySet.load(),
                         live=LiveState(context="testbed", items=_live_items(stack, "dcgm-exporter-qqqqq")))
    assert list(rules["live-exporter-scraped"].check(quiet)) == []


def test_the_live_rules_fail_with_the_broken_states(extra_stack: MetricsStack, extra_graph: ResourceGraph,
                                                    tmp_path: Path) -> None:
    from gpu_policy.live.state import LiveState
    from gpu_policy.policy.loader import PolicySet
    from gpu_policy.rules.context import CheckContext
    from gpu_policy.rules.registry import all_rules

    rules = all_rules()
    assert extra_stack.prometheus is not None
    _wait_rules_evaluated(extra_stack.client)
    live = LiveState(context="testbed", items=_live_items(extra_stack), prometheus_url=extra_stack.prometheus.url)
    ctx = CheckContext(graph=extra_graph, policy=PolicySet.load(), live=live)
    groups = list(rules["live-rule-groups-loaded"].check(ctx))
    assert sorted(v.doc.ref for v in groups if v.doc) == [
        "PrometheusRule/monitoring/gpu-broken-rules", "PrometheusRule/monitoring/gpu-ratio-rules"
    ]
    two_series = _variant(
        tmp_path, "inference/model-b.yaml",
        'query: sum(DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-b-serving-.*"})',
        'query: DCGM_FI_DEV_GPU_UTIL{namespace="inference", pod=~"model-b-serving-.*"}',
    )
    keda = list(rules["live-keda-query-one-series"].check(
        CheckContext(graph=two_series, policy=PolicySet.load(), live=live)))
    assert [(v.doc.ref if v.doc else None, v.path) for v in keda] == [
        ("ScaledObject/inference/model-b-gpu-scaler", ("spec", "triggers", 0, "metadata", "query"))
    ]
    extra_stack.set_values("gpu-node-b", 0, DCGM_FI_DEV_FB_USED=round(FRAMEBUFFER * 0.95))
    try:
        firing = extra_stack.wait_for(
            lambda _: [v for v in rules["live-gpu-alerts-quiet"].check(ctx) if f"pod={B0}" in v.message],
            what=f"alert firing for {B0}",
        )
        assert [v.doc.ref for v in firing if v.doc] == ["PrometheusRule/monitoring/gpu-alerts-immediate"]
        assert "GPUMemoryPressureImmediate is firing" in firing[0].message
    finally:
        extra_stack.set_values("gpu-node-b", 0, DCGM_FI_DEV_FB_USED=10000)
