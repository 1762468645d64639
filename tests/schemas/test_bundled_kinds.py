"""Every CRD in the shared folder is picked up, and a valid object of each kind validates with no issue.

One valid object per kind of each group (Karpenter 1.14.1, KEDA 2.20.2, Prometheus Operator 0.93.0): kinds the
suite used to call unknown (NodeOverlay, ScaledJob, TriggerAuthentication, AlertmanagerConfig, ScrapeConfig, ...)."""

from __future__ import annotations

import pytest

from gpu_policy.schemas.validator import ManifestValidator
from tests.schemas.conftest import SHARED_CRDS, doc_of, failures


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    """This module's own validator: the CRD schemas it compiles stay out of the session validator, whose CEL test
    counts the rules of the schemas compiled so far."""
    return ManifestValidator("1.33", [SHARED_CRDS], use_cache=False)

KARPENTER: dict[str, str] = {
    "karpenter.sh/v1alpha1 NodeOverlay": """
spec:
  weight: 5
  requirements: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}]
  capacity: {nvidia.com/mig-1g.10gb: "4"}
  price: "1.25"
""",
    "karpenter.sh/v1 NodeClaim": """
spec:
  nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}
  requirements: [{key: node.kubernetes.io/instance-type, operator: In, values: [g6e.xlarge]}]
""",
    "autoscaling.x-k8s.io/v1beta1 CapacityBuffer": """
spec:
  replicas: 2
  podTemplateRef: {name: gpu-warm-pod}
""",
}
KEDA: dict[str, str] = {
    "keda.sh/v1alpha1 ScaledJob": """
spec:
  jobTargetRef:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: w, image: "registry.example.com/w:1.0"}]
  triggers: [{type: prometheus, metadata: {serverAddress: "http://p:9090", query: "sum(q)", threshold: "5"}}]
""",
    "keda.sh/v1alpha1 TriggerAuthentication": """
spec:
  secretTargetRef: [{parameter: bearerToken, name: token, key: token}]
""",
    "keda.sh/v1alpha1 ClusterTriggerAuthentication": """
spec:
  podIdentity: {provider: aws}
""",
    "eventing.keda.sh/v1alpha1 CloudEventSource": """
spec:
  destination: {http: {uri: "http://sink.example.svc"}}
""",
}
PROMETHEUS_OPERATOR: dict[str, str] = {
    "monitoring.coreos.com/v1 Alertmanager": "spec: {replicas: 1}\n",
    "monitoring.coreos.com/v1alpha1 AlertmanagerConfig": """
spec:
  route: {receiver: pager, matchers: [{name: severity, value: critical, matchType: "="}]}
  receivers: [{name: pager}]
""",
    "monitoring.coreos.com/v1 PodMonitor": """
spec:
  selector: {matchLabels: {app: vllm}}
  podMetricsEndpoints: [{port: metrics, interval: 15s}]
""",
    "monitoring.coreos.com/v1 Probe": """
spec:
  prober: {url: "blackbox-exporter:9115"}
  targets: {staticConfig: {static: ["https://api.example.com/health"]}}
""",
    "monitoring.coreos.com/v1 ThanosRuler": """
spec:
  queryEndpoints: ["dnssrv+_http._tcp.thanos-query.monitoring.svc"]
  ruleSelector: {matchLabels: {role: alert-rules}}
""",
    "monitoring.coreos.com/v1alpha1 ScrapeConfig": """
spec:
  staticConfigs: [{targets: ["10.0.0.1:9400"]}]
""",
    "monitoring.coreos.com/v1alpha1 PrometheusAgent": """
spec:
  serviceMonitorSelector: {matchLabels: {team: gpu}}
""",
}
CASES = {k: v for group in (KARPENTER, KEDA, PROMETHEUS_OPERATOR) for k, v in group.items()}


def _object(api_kind: str, spec: str) -> str:
    api_version, kind = api_kind.split()
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: demo, namespace: ns}}\n{spec}"


def test_the_loader_picks_up_every_shared_crd(validator: ManifestValidator) -> None:
    defined = {(group, kind) for group, kind in validator.crds.definitions}
    wanted = {(k.split()[0].rpartition("/")[0], k.split()[1]) for k in CASES}
    wanted |= {("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"), ("keda.sh", "ScaledObject"),
               ("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "Prometheus"),
               ("monitoring.coreos.com", "PrometheusRule"), ("eventing.keda.sh", "ClusterCloudEventSource")}
    assert wanted <= defined, sorted(wanted - defined)
    assert validator.crds.notes == []


@pytest.mark.parametrize("api_kind", sorted(CASES))
def test_a_valid_object_of_every_bundled_kind_validates(validator: ManifestValidator, api_kind: str) -> None:
    assert failures(validator.validate(doc_of(_object(api_kind, CASES[api_kind])))) == []


def test_an_invalid_object_of_a_newly_bundled_kind_is_caught(validator: ManifestValidator) -> None:
    both_prices = CASES["karpenter.sh/v1alpha1 NodeOverlay"] + '  priceAdjustment: "-10%"\n'
    issues = failures(validator.validate(doc_of(_object("karpenter.sh/v1alpha1 NodeOverlay", both_prices))))
    assert [i.kind for i in issues] == ["cel"] and "price" in issues[0].message
    typo = "spec:\n  selector: {matchLabels: {app: v}}\n  podMetricEndpoints: [{port: m}]\n"
    issues = failures(validator.validate(doc_of(_object("monitoring.coreos.com/v1 PodMonitor", typo))))
    assert [(i.kind, i.path) for i in issues] == [("unknown-field", ("spec", "podMetricEndpoints"))]
