"""Fuzzing: no input crashes the loader or the whole `check` pipeline.

Structure-aware (hypothesis): Kubernetes-shaped objects of the kinds the suite judges, with field names the rules
read and values of every type (huge integers, NaN, control characters, lists where maps belong), written as YAML
files; and raw bytes for the loader. A crash is any exception escaping `run_engine`, or a rule that crashed
(`internal_errors`): the engine turns those into exit 3, never into a finding.

CI runs a few dozen examples; a long campaign sets GPU_POLICY_FUZZ_EXAMPLES (and is bounded by `timeout`):

    GPU_POLICY_FUZZ_EXAMPLES=1000000 timeout 1800 .venv/bin/pytest tests/fuzz -p no:cacheprovider -x
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpu_policy.engine import RunOptions, run_engine
from gpu_policy.loading.loader import load_manifests

EXAMPLES = int(os.environ.get("GPU_POLICY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KINDS = [
    ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
    ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Pod"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("scheduling.k8s.io/v1", "PriorityClass"), ("karpenter.sh/v1", "NodePool"), ("karpenter.sh/v1beta1", "NodePool"),
    ("karpenter.sh/v1alpha5", "Provisioner"), ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    ("karpenter.sh/v1alpha1", "NodeOverlay"), ("eks.amazonaws.com/v1", "NodeClass"),
    ("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "Prometheus"),
    ("example.com/v1", "Widget"),
]
FIELDS = [
    "spec", "template", "metadata", "labels", "annotations", "containers", "name", "image", "resources", "limits",
    "requests", "nvidia.com/gpu", "cpu", "memory", "env", "value", "args", "command", "tolerations", "key",
    "operator", "effect", "values", "nodeSelector", "affinity", "replicas", "selector", "matchLabels",
    "matchExpressions", "triggers", "type", "metricType", "query", "threshold", "serverAddress", "ignoreNullValues",
    "minReplicaCount", "maxReplicaCount", "fallback", "failureThreshold", "advanced", "horizontalPodAutoscalerConfig",
    "behavior", "scaleDown", "scaleUp", "policies", "periodSeconds", "stabilizationWindowSeconds", "selectPolicy",
    "scaleTargetRef", "kind", "requirements", "taints", "nodeClassRef", "group", "disruption", "budgets", "nodes",
    "schedule", "duration", "consolidationPolicy", "consolidateAfter", "weight", "endpoints", "port", "targetPort",
    "honorLabels", "namespaceSelector", "matchNames", "groups", "rules", "alert", "expr", "for", "ports",
    "containerPort", "volumeMounts", "volumes", "hostPath", "path", "securityContext", "privileged", "data",
    "stringData", "maxUnavailable", "minAvailable", "priorityClassName", "amiSelectorTerms", "alias", "metrics",
    "external", "metric", "target", "averageValue", "terminationGracePeriodSeconds", "serviceMonitorSelector",
    "ruleSelector", "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type",
]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True),
    TEXT, st.sampled_from(["0", "1", "10%", "100Gi", "2m", "@daily", "0 9 * * 1-5", "In", "NotIn", "Exists", "Gt",
                           "NoSchedule", "spot", "on-demand", "p5.48xlarge", "g5", "sum(DCGM_FI_DEV_GPU_UTIL)",
                           "Never", "WhenEmpty", "${CLUSTER}", "{{ .x }}", "Max", "Percent", "Pods", "metrics"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | TEXT, inner, max_size=5)), max_leaves=30)


@st.composite
def k8s_object(draw: st.DrawFn) -> dict[str, Any]:
    api_version, kind = draw(st.sampled_from(KINDS))
    metadata: dict[str, Any] = {"name": draw(st.sampled_from(["a", "gpu", "model-a-serving"]) | TEXT)}
    if draw(st.booleans()):
        metadata["namespace"] = draw(st.sampled_from(["inference", "monitoring", "default"]) | TEXT)
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(TEXT, SCALARS, max_size=3))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata,
            "spec": draw(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6))}


def _dump(objects: list[dict[str, Any]]) -> str:
    """As YAML (NaN and infinities become .nan/.inf, which the reader must take as well)."""
    return yaml.safe_dump_all(objects, allow_unicode=True, sort_keys=False)


@FUZZ
@given(objects=st.lists(k8s_object(), min_size=1, max_size=6), complete=st.booleans(),
       profile=st.sampled_from([None, "reference"]))
def test_check_pipeline_never_crashes(objects: list[dict[str, Any]], complete: bool, profile: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "set.yaml").write_text(_dump(objects), encoding="utf-8")
        run = run_engine(RunOptions(paths=[folder], profile=profile, complete=complete))
    assert run.internal_errors == [], [e.error for e in run.internal_errors]
    for finding in run.findings:
        assert finding.rule_id and isinstance(finding.message, str)


@FUZZ
@given(data=st.binary(max_size=4096) | TEXT.map(lambda t: t.encode("utf-8")))
def test_loader_never_crashes_on_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "input.yaml").write_bytes(data)
        result = load_manifests([folder])
    assert all(f.rule_id for f in result.findings)
