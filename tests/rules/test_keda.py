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


def scale_down(policies: str, minimum: int, maximum: int, select: str = "Max") -> str:
    return f"""  minReplicaCount: {minimum}
  maxReplicaCount: {maximum}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          selectPolicy: {select}
          policies: {policies}
"""


@pytest.mark.parametrize(("policies", "minimum", "maximum", "message"), [
    # /tmp/audit/sd_pods1_max2.yaml: 1 pod of 2 per 60s is what Percent 25 removes from 2
    # (2 - int32(2 x 0.75) = 1), so it passes; it was flagged as "50%".
    ("[{type: Pods, value: 1, periodSeconds: 60}]", 1, 2, None),
    ("[{type: Percent, value: 25, periodSeconds: 60}]", 1, 2, None),
    ("[{type: Pods, value: 1, periodSeconds: 60}]", 1, 10, None),
    # Pods 2/60s with max 10 passed as "20%" but removes 2 of 3 or 4 pods (Percent 25 removes 1); the
    # message names the count with the largest excess (the smallest on a tie).
    ("[{type: Pods, value: 2, periodSeconds: 60}]", 1, 10, "remove 2 of 3 pods in 60s; the scaling policy "),
    # Pods 1 per 15s: four syncs in 60s; at 4 replicas it removes 3 (Percent 25 removes 1).
    ("[{type: Pods, value: 1, periodSeconds: 15}]", 1, 10, "remove 3 of 4 pods"),
    # Percent truncates and compounds over two 30s periods: 3 -> int(2.7) = 2 -> int(1.8) = 1.
    ("[{type: Percent, value: 10, periodSeconds: 30}]", 1, 10, "remove 2 of 3 pods"),
    # 7 -> int(3.5) = 3: 4 of 7, where Percent 25 removes 7 - int(5.25) = 2.
    ("[{type: Percent, value: 50, periodSeconds: 60}]", 1, 10, "remove 4 of 7 pods"),
])
def test_scale_down_rate_uses_the_hpas_arithmetic_per_replica_count(
    policies: str, minimum: int, maximum: int, message: str | None
) -> None:
    found = list(keda.scale_down_rate_limited(context(DEPLOY + so(scale_down(policies, minimum, maximum)))))
    if message is None:
        assert found == []
    else:
        assert [v.doc.ref if v.doc else "" for v in found] == ["ScaledObject/ns/web-so"]
        assert message in found[0].message, found[0].message


def test_scale_down_minimum_bounds_what_the_hpa_removes() -> None:
    # Pods 5 per 60s never removes more than max - min = 1 pod here: within 25% of 4 (1 pod).
    text = DEPLOY + so(scale_down("[{type: Pods, value: 5, periodSeconds: 60}]", 3, 4))
    assert list(keda.scale_down_rate_limited(context(text))) == []


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


def prometheus_trigger(query: str, metric_type: str, threshold: str) -> str:
    return (f"  triggers: [{{type: prometheus, metricType: {metric_type}, metadata: "
            f"{{serverAddress: 'http://p.m:9090', threshold: '{threshold}', query: '{query}'}}}}]")


@pytest.mark.parametrize(("query", "want"), [
    ("sum(x)", "sum"),
    ("avg by (ns) (x)", "avg"),
    ("sum(x) by (ns)", "sum"),
    ("100 * avg(x)", "avg"),
    ("sum(x) / 8", "sum"),
    ("100 - avg(x)", "avg"),
    ("sum by (pod) (x) * 2", "sum"),
    ("sum(x) / count(x)", None),
    ("avg(x) * count(x)", None),
    ("sum(x) - sum(y)", None),
    ("sum(x) / on() group_left count(y)", None),
    ("x", None),
    ("rate(x[5m])", None),
    ("max(x) > 3", None),
])
def test_query_aggregation_needs_the_whole_query_or_constants(query: str, want: str | None) -> None:
    assert keda.query_aggregation(query) == want


@pytest.mark.parametrize(("query", "metric_type", "flagged"), [
    # /tmp/audit/q_sum_div_count_value.yaml: a per-pod average written as sum/count, with Value: correct
    ("sum(DCGM_FI_DEV_GPU_UTIL{pod=~\"web-.*\"}) / count(DCGM_FI_DEV_GPU_UTIL{pod=~\"web-.*\"})",
     "Value", False),
    # /tmp/audit/q_avg_times_count_avgvalue.yaml: a total written as avg x count, with AverageValue: correct
    ("avg(DCGM_FI_DEV_GPU_UTIL{pod=~\"web-.*\"}) * count(DCGM_FI_DEV_GPU_UTIL{pod=~\"web-.*\"})",
     "AverageValue", False),
    ("100 * avg(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", True),
    ("avg(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", True),
    ("sum(DCGM_FI_DEV_GPU_UTIL) / 1", "Value", True),
    ("sum(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", False),
    ("avg(DCGM_FI_DEV_GPU_UTIL)", "Value", False),
])
def test_query_aggregation_rule_judges_only_decidable_queries(
    query: str, metric_type: str, flagged: bool
) -> None:
    text = DEPLOY + so(prometheus_trigger(query, metric_type, "70"))
    found = list(keda.query_aggregation_matches_metric_type(context(text)))
    assert [v.doc.ref if v.doc else "" for v in found] == (["ScaledObject/ns/web-so"] if flagged else [])


@pytest.mark.parametrize(("gpus", "query", "metric_type", "threshold", "want"), [
    # /tmp/audit/multigpu.yaml: 8 GPUs x 70% summed per GPU series = 560 per pod
    (8, "sum(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", "560", None),
    (8, "sum(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", "70", "must be 560"),
    (1, "sum(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", "70", None),
    (1, "sum(DCGM_FI_DEV_GPU_UTIL)", "AverageValue", "560", "must be 70"),
    (8, "avg(DCGM_FI_DEV_GPU_UTIL)", "Value", "70", None),
    (8, "avg(DCGM_FI_DEV_GPU_UTIL)", "Value", "560", "must be 70"),
])
def test_gpu_threshold_scales_with_gpus_per_pod_for_a_sum(
    gpus: int, query: str, metric_type: str, threshold: str, want: str | None
) -> None:
    deploy = DEPLOY.replace("nvidia.com/gpu: 1", f"nvidia.com/gpu: {gpus}")
    text = deploy + so(prometheus_trigger(query, metric_type, threshold))
    found = [v for v in keda.scaling_matches_workload_class(context(text)) if "threshold" in v.message]
    if want is None:
        assert found == []
    else:
        assert [v.doc.ref if v.doc else "" for v in found] == ["ScaledObject/ns/web-so"]
        assert want in found[0].message, found[0].message


def test_gpus_per_pod_sums_app_containers() -> None:
    text = DEPLOY.replace(
        "          resources: {limits: {nvidia.com/gpu: 1}}",
        "          resources: {limits: {nvidia.com/gpu: 4}}\n"
        "        - name: d\n          resources: {requests: {nvidia.com/gpu: '2'}}")
    docs, _ = to_documents(text, "x.yaml")
    assert keda.gpus_per_pod(docs[0]) == 6


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


# -- issue 8: one series per pod, partial sets, policy in force ----------------------------------------------------
def prom_trigger(query: str, maximum: int = 4) -> str:
    return f"""  maxReplicaCount: {maximum}
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus-operated.monitoring.svc:9090
        threshold: "5"
        query: '{query}'
"""


@pytest.mark.parametrize(("query", "fails"), [
    ("vllm:num_requests_waiting", True),  # every vLLM server pod exports it
    ('rate(http_requests_total{job="web"}[1m])', True),  # job = the Service of the target's pods
    ('rate(http_requests_total{pod=~"web-.*"}[1m])', True),
    ('sum(vllm:num_requests_waiting{namespace="ns"})', False),
    ('sum(rate(http_requests_total{job="web"}[1m]))', False),
    ('histogram_quantile(0.9, sum by (le) (rate(x_bucket{job="web"}[5m])))', False),
    ('rabbitmq_queue_messages{queue="jobs"}', False),  # nothing says it is per pod: one exporter's series
    ('sum by (pod) (rate(http_requests_total{namespace="ns"}[1m]))', True),  # one series per pod
    ('sum by (pod) (rate(http_requests_total{pod="web-0"}[1m]))', False),  # one exact pod
    ('scalar(x{job="web"})', False),
    ('DCGM_FI_DEV_GPU_UTIL{pod=~"web-.*"}', False),  # keda-query-reads-only-its-target evaluates DCGM queries
])
def test_a_query_returning_one_series_per_pod_fails_with_two_pods(query: str, fails: bool) -> None:
    found = list(keda.keda_query_returns_one_series(context(DEPLOY + so(prom_trigger(query)))))
    assert bool(found) is fails, found
    if fails:
        assert found[0].doc is not None and found[0].doc.ref == "ScaledObject/ns/web-so"
        assert "returned multiple elements" in found[0].message and found[0].path[-1] == "query"
    # one replica at most: a single pod, a single series
    assert list(keda.keda_query_returns_one_series(context(DEPLOY + so(prom_trigger(query, 1))))) == []


def test_target_and_prometheus_outside_the_set_are_not_checked_unless_complete() -> None:
    text = so(prom_trigger("sum(x)"))  # no Deployment, no Service, no Prometheus
    ctx = context(text)
    assert list(keda.autoscaler_target_exists(ctx)) == []
    assert list(keda.server_address_reaches_prometheus(ctx)) == []
    assert len(ctx.unresolved) == 2
    assert "targets apps/v1 Deployment/ns/web, which is not in the manifest set" in ctx.unresolved[0].message
    assert "names Service monitoring/prometheus-operated, which is not in the manifest set" in ctx.unresolved[1].message
    docs, _ = to_documents(text, "x.yaml")
    complete = CheckContext(graph=ResourceGraph(docs), policy=PolicySet.load(), complete=True)
    assert len(list(keda.autoscaler_target_exists(complete))) == 1
    assert len(list(keda.server_address_reaches_prometheus(complete))) == 1
    # a target the set declares at another apiVersion is a finding either way
    wrong = so("  scaleTargetRef: {name: web, apiVersion: apps/v1beta1}\n  triggers: []").replace(
        "  scaleTargetRef: {name: web}\n", "")
    assert len(list(keda.autoscaler_target_exists(context(DEPLOY + wrong)))) == 1


def test_scaling_policy_rules_judge_nothing_under_the_defaults() -> None:
    text = DEPLOY + so("  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleDown: "
                       "{stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 15}]}, "
                       "scaleUp: {stabilizationWindowSeconds: 600}}}}\n  triggers: []")
    docs, _ = to_documents(text, "x.yaml")
    defaults = CheckContext(graph=ResourceGraph(docs), policy=PolicySet.defaults())
    for check in (keda.scale_down_stabilization_window, keda.scale_down_rate_limited, keda.scale_up_rate,
                  keda.scaling_matches_workload_class, keda.sla_minimum_replicas):
        assert list(check(defaults)) == [], check.__name__
    reference = context(text)
    found = list(keda.scale_down_stabilization_window(reference))
    assert len(found) == 1 and "the scaling policy (" in found[0].message and "300s" in found[0].message
    assert list(keda.scale_down_rate_limited(reference)) and list(keda.scale_up_rate(reference))


def test_autoscalers_of_one_workload_in_two_files_of_a_partial_set_are_not_checked() -> None:
    hpa = """---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: ns}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
"""
    first, _ = to_documents(DEPLOY + hpa, "hpa/hpa.yaml")
    second, _ = to_documents(so("  triggers: [{type: cron, metadata: {}}]"), "keda/so.yaml")
    partial = CheckContext(graph=ResourceGraph([*first, *second]), policy=PolicySet.defaults())
    assert list(keda.one_autoscaler_per_workload(partial)) == []
    assert len(partial.unresolved) == 1
    assert "they conflict only if both files are applied" in partial.unresolved[0].message
    complete = CheckContext(graph=ResourceGraph([*first, *second]), policy=PolicySet.defaults(), complete=True)
    assert len(list(keda.one_autoscaler_per_workload(complete))) == 1
    same_file, _ = to_documents(DEPLOY + hpa + so("  triggers: [{type: cron, metadata: {}}]"), "x.yaml")
    together = CheckContext(graph=ResourceGraph(same_file), policy=PolicySet.defaults())
    assert len(list(keda.one_autoscaler_per_workload(together))) == 1
