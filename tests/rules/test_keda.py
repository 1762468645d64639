"""Edge cases of the KEDA rules, on small in-memory manifest sets."""

from __future__ import annotations

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.promql.text import outer_aggregation
from gpu_policy.rules import keda
from gpu_policy.rules.context import CheckContext

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns, labels: {gpu-policy.io/workload-class: realtime}}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: c
          resources: {limits: {nvidia.com/gpu: 1}}
"""


def context(text: str) -> CheckContext:
    docs, errors = to_documents(text, "x.yaml")
    assert not errors
    return CheckContext(graph=ResourceGraph(docs), policy=PolicySet.load())


def so(spec: str, name: str = "web-so") -> str:
    return f"""---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}, namespace: ns}}
spec:
  scaleTargetRef: {{name: web}}
{spec}
"""


@pytest.mark.parametrize(("query", "want"), [
    ("sum(DCGM_FI_DEV_GPU_UTIL{pod=~'a-.*'})", "sum"),
    ("avg by (pod) (x)", "avg"),
    ("100 * avg(x{a=\"sum(\"})", "avg"),
    ("rate(x[5m])", ""),
    ("x{label=\"avg(\"}", ""),
])
def test_outer_aggregation_reads_only_the_outermost_level(query: str, want: str) -> None:
    found = outer_aggregation(query)
    assert (found.operator if found else "") == want


def test_hpa_on_the_same_deployment_is_reported_with_kedas_message() -> None:
    text = DEPLOY + so("  triggers: [{type: cron, metadata: {}}]") + """---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: other, namespace: ns}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
"""
    found = list(keda.one_autoscaler_per_workload(context(text)))
    assert [(v.doc.ref, v.message.split(" (")[0]) for v in found if v.doc] == [
        ("ScaledObject/ns/web-so",
         "the workload 'web' of type 'apps/v1.Deployment' is already managed by the hpa 'other'")]


def test_hpa_opted_out_of_ownership_validation_is_not_reported() -> None:
    text = DEPLOY + so("  triggers: [{type: cron, metadata: {}}]") + """---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: other, namespace: ns, annotations: {validations.keda.sh/hpa-ownership: "false"}}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
"""
    assert list(keda.one_autoscaler_per_workload(context(text))) == []


def test_second_scaled_object_is_refused_not_the_first() -> None:
    text = DEPLOY + so("  triggers: []", "first") + so("  triggers: []", "second")
    found = list(keda.one_autoscaler_per_workload(context(text)))
    assert [v.doc.name for v in found if v.doc] == ["second"]
    assert "already managed by the ScaledObject 'first'" in found[0].message


def test_min_zero_counts_as_one_for_kedas_bounds_check() -> None:
    # GetHPAMinReplicas turns 0 into 1: min 0 / max 0 passes the CRD's CEL rule but not KEDA's webhook.
    text = DEPLOY + so("  minReplicaCount: 0\n  maxReplicaCount: 0")
    found = list(keda.autoscaler_replica_bounds(context(text)))
    assert [v.message for v in found] == ["MinReplicaCount=1 must be less than MaxReplicaCount=0"]


def test_idle_equal_to_unset_min_is_refused() -> None:
    found = list(keda.autoscaler_replica_bounds(context(DEPLOY + so("  idleReplicaCount: 0"))))
    assert [v.message for v in found] == ["IdleReplicaCount=0 must be less than MinReplicaCount=0"]


def test_missing_behavior_means_300s_window_but_no_scale_down_rate_limit() -> None:
    ctx = context(DEPLOY + so("  minReplicaCount: 2\n  maxReplicaCount: 10"))
    assert list(keda.scale_down_stabilization_window(ctx)) == []
    found = list(keda.scale_down_rate_limited(ctx))
    assert len(found) == 1 and "no rate limit" in found[0].message


@pytest.mark.parametrize(("policy", "fraction"), [
    ({"type": "Percent", "value": 25, "periodSeconds": 60}, 0.25),
    ({"type": "Percent", "value": 10, "periodSeconds": 30}, 1 - 0.9 ** 2),
    ({"type": "Pods", "value": 2, "periodSeconds": 60}, 0.2),
    ({"type": "Pods", "value": 1, "periodSeconds": 15}, 0.4),
])
def test_scale_down_fraction_per_window(policy: dict[str, object], fraction: float) -> None:
    assert keda._down_fraction(policy, 60, 10) == pytest.approx(fraction)


def test_select_policy_min_needs_only_one_compliant_policy() -> None:
    behavior = """  maxReplicaCount: 10
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          selectPolicy: {select}
          policies:
            - {{type: Percent, value: 100, periodSeconds: 15}}
            - {{type: Percent, value: 20, periodSeconds: 60}}
"""
    assert list(keda.scale_down_rate_limited(context(DEPLOY + so(behavior.format(select="Min"))))) == []
    found = list(keda.scale_down_rate_limited(context(DEPLOY + so(behavior.format(select="Max")))))
    assert len(found) == 1 and "Percent 100 per 15s" in found[0].message


def test_fallback_for_cpu_only_triggers_is_refused() -> None:
    text = DEPLOY + so("  fallback: {failureThreshold: 3, replicas: 2}\n"
                       "  triggers: [{type: cpu, metricType: Utilization, metadata: {value: '50'}}]")
    found = list(keda.fallback_is_valid(context(text)))
    assert len(found) == 1 and "not supported by the CPU & memory scalers" in found[0].message


def test_ignore_null_values_parses_like_go() -> None:
    trigger = ("  triggers: [{type: prometheus, metadata: {serverAddress: 'http://p.m:9090', threshold: '1', "
               "query: 'sum(DCGM_FI_DEV_GPU_UTIL)', ignoreNullValues: '%s'}}]")
    assert list(keda.lost_metric_is_not_zero(context(DEPLOY + so(trigger % "F")))) == []
    assert len(list(keda.lost_metric_is_not_zero(context(DEPLOY + so(trigger % "true"))))) == 1


def test_server_address_without_namespace_and_prometheus_operated() -> None:
    prometheus = """---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: p, namespace: monitoring}
spec: {}
"""
    trigger = ("  triggers: [{type: prometheus, metadata: {serverAddress: '%s', threshold: '1', "
               "query: 'sum(x)'}}]")
    ok = context(DEPLOY + prometheus + so(trigger % "http://prometheus-operated.monitoring:9090"))
    assert list(keda.server_address_reaches_prometheus(ok)) == []
    bare = context(DEPLOY + prometheus + so(trigger % "http://prometheus-operated:9090"))
    assert "has no namespace" in next(iter(keda.server_address_reaches_prometheus(bare))).message
    external = context(DEPLOY + so(trigger % "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1"))
    assert list(keda.server_address_reaches_prometheus(external)) == []
