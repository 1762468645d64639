"""Real KEDA (the pinned release) on the testbed: a ScaledObject with a Prometheus trigger on a real Prometheus
(127.0.0.1) scraping the synthetic DCGM exporter becomes Ready, its HPA reads the external metric through the API
server's aggregation layer (KEDA's metrics server on 127.0.0.1) and scales the Deployment; KEDA's admission webhook
rejects an invalid ScaledObject; `gpu-policy check --live` passes the good ScaledObject and names the one whose
metric is not served.

The ScaledObject is the reference model-a ScaledObject (manifests/inference/model-a.yaml) with its namespace,
target, Prometheus address (the test's Prometheus on 127.0.0.1, never a cluster DNS name) and query's label
selector changed; its threshold, metric type and HPA behaviour are the reference's own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.loader import load_manifests
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed import cluster
from gpu_policy.testbed.metrics_stack import MetricsStack, gpu
from gpu_policy.testbed.prometheus import prometheus_binary
from tests.controllers.conftest import CONTEXT, condition, eventually, findings_of, gpu_policy, is_true

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(prometheus_binary() is None, reason="needs /usr/bin/prometheus (Debian `prometheus`)"),
]
NAMESPACE = "keda-drill"
APP = "scaled-app"
QUERY = f'sum(DCGM_FI_DEV_GPU_UTIL{{namespace="{NAMESPACE}", pod=~"{APP}-.*"}})'
NODE = "kwok-system-0"  # the testbed's untainted CPU node: KEDA's target needs no GPU to be scaled


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "containers": [{
                "name": "app", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}},
    }  # fmt: skip


def reference_scaledobject() -> dict[str, Any]:
    documents = yaml.safe_load_all((reference_manifests_dir() / "inference" / "model-a.yaml").read_text())
    return next(d for d in documents if isinstance(d, dict) and d.get("kind") == "ScaledObject")


def drill_scaledobject(prometheus_url: str) -> dict[str, Any]:
    scaled = copy.deepcopy(reference_scaledobject())
    scaled["metadata"] = {"name": "gpu-scaler", "namespace": NAMESPACE}
    scaled["spec"]["scaleTargetRef"]["name"] = APP
    trigger = scaled["spec"]["triggers"][0]
    trigger["metadata"]["serverAddress"] = prometheus_url
    trigger["metadata"]["query"] = QUERY
    return scaled


def unserved_scaledobject(prometheus_url: str) -> dict[str, Any]:
    """A ScaledObject whose query names no series: KEDA's Prometheus scaler errors (ignoreNullValues false) and, with
    no fallback, the HPA gets no external metric."""
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "unserved", "namespace": NAMESPACE},
        "spec": {"scaleTargetRef": {"name": "unserved-app"}, "minReplicaCount": 1, "maxReplicaCount": 3,
                 "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                     "serverAddress": prometheus_url, "query": 'sum(no_such_metric{namespace="keda-drill"})',
                     "threshold": "70", "ignoreNullValues": "false"}}]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def stack(testbed: cluster.State, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStack]:
    graph = ResourceGraph(load_manifests([str(reference_manifests_dir())]).documents)
    nodes = {NODE: [gpu(0, (NAMESPACE, f"{APP}-0", "app"), DCGM_FI_DEV_GPU_UTIL=250)]}
    metrics = MetricsStack(graph, nodes, tmp_path_factory.mktemp("keda-stack"))
    try:
        metrics.start()
        metrics.wait_scraped(timeout=60)
        yield metrics
    finally:
        metrics.close()


@pytest.fixture(scope="module")
def scaled(api: k8s.ApiClient, stack: MetricsStack) -> dict[str, Any]:
    assert stack.prometheus is not None
    url = stack.prometheus.url
    assert url.startswith("http://127.0.0.1:"), url
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    apps = k8s.AppsV1Api(api)
    for name in (APP, "unserved-app"):
        apps.create_namespaced_deployment(NAMESPACE, _deployment(name))
    custom = k8s.CustomObjectsApi(api)
    good = drill_scaledobject(url)
    custom.create_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects", good)
    custom.create_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects",
                                           unserved_scaledobject(url))  # fmt: skip
    return good


def _scaledobject(api: k8s.ApiClient, name: str) -> dict[str, Any]:
    found: dict[str, Any] = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "keda.sh", "v1alpha1", NAMESPACE, "scaledobjects", name)
    return found


def _hpa(api: k8s.ApiClient, name: str) -> dict[str, Any] | None:
    try:
        hpa = k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    out: dict[str, Any] = api.sanitize_for_serialization(hpa)
    return out


def _replicas(api: k8s.ApiClient, name: str) -> int:
    return int(k8s.AppsV1Api(api).read_namespaced_deployment(name, NAMESPACE).spec.replicas or 0)


@pytest.mark.slow  # waits for KEDA and the HPA controller's syncs (5 s here, conftest.HPA_SYNC_SECONDS)
def test_the_scaledobject_gets_ready_and_its_hpa_scales_on_the_external_metric(
    api: k8s.ApiClient, scaled: dict[str, Any], stack: MetricsStack
) -> None:
    ready = eventually("ScaledObject gpu-scaler Ready", lambda: is_true(_scaledobject(api, "gpu-scaler"), "Ready"))
    assert ready
    hpa = eventually("HPA keda-hpa-gpu-scaler ScalingActive",
                     lambda: (h := _hpa(api, "keda-hpa-gpu-scaler")) and is_true(h, "ScalingActive") and h)
    assert is_true(hpa, "AbleToScale"), hpa["status"]
    # What KEDA gave the HPA: one External metric named after the trigger, the reference's AverageValue target 70.
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External" and metric["external"]["target"] == {"type": "AverageValue",
                                                                              "averageValue": "70"}
    # 250 % GPU utilisation summed over the pods at 70 per pod: ceil(250 / 70) = 4 replicas (from minReplicaCount 2:
    # 250 / (2 x 70) = 1.79, outside the HPA's 10 % tolerance; 150 would stay at 2, as observed: 75/70 = 1.07).
    eventually("4 replicas at a summed utilisation of 250", lambda: _replicas(api, APP) == 4)
    stack.set_values(NODE, 0, DCGM_FI_DEV_GPU_UTIL=400)
    # ceil(400 / 70) = 6, allowed in one step by the reference scale-up policy (100 % or 4 pods per 15 s).
    eventually("6 replicas at a summed utilisation of 400", lambda: _replicas(api, APP) == 6)


def test_the_admission_webhook_rejects_a_second_scaledobject_for_the_same_workload(
    api: k8s.ApiClient, scaled: dict[str, Any]
) -> None:
    duplicate = copy.deepcopy(scaled)
    duplicate["metadata"] = {"name": "duplicate", "namespace": NAMESPACE}
    with pytest.raises(ApiException) as rejected:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects",
                                                                  duplicate)  # fmt: skip
    message = json.loads(rejected.value.body)["message"]
    # KEDA's webhook (apis/keda/v1alpha1/scaledobject_webhook.go) refuses the duplicate through whichever of its two
    # checks finds the owner first: the other ScaledObject, or the HPA that ScaledObject made (once it exists).
    prefix = (f'admission webhook "vscaledobject.kb.io" denied the request: the workload \'{APP}\' of type '
              "'apps/v1.Deployment' is already managed by the ")
    assert message in (prefix + "ScaledObject 'gpu-scaler'", prefix + "hpa 'keda-hpa-gpu-scaler'"), message


def test_live_check_passes_the_good_scaledobject_and_names_the_unserved_one(
    api: k8s.ApiClient, scaled: dict[str, Any], kubeconfig: Path
) -> None:
    eventually("ScaledObject gpu-scaler Ready", lambda: is_true(_scaledobject(api, "gpu-scaler"), "Ready"))
    eventually("HPA of gpu-scaler ScalingActive",
               lambda: (h := _hpa(api, "keda-hpa-gpu-scaler")) and is_true(h, "ScalingActive"))
    unserved = eventually(
        "HPA keda-hpa-unserved reporting that it cannot get its metric",
        lambda: (h := _hpa(api, "keda-hpa-unserved")) and (c := condition(h, "ScalingActive"))
        and c.get("status") == "False" and c)
    assert unserved["reason"] == "FailedGetExternalMetric", unserved
    code, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), "--namespace", NAMESPACE,
                                   "--only", "live-scaledobject-ready", "live-scaledobject-hpa-active")  # fmt: skip
    assert code == 1, err
    active = findings_of(report, "live-scaledobject-hpa-active")
    assert [(f["resource"], f["file"]) for f in active] == [
        (f"ScaledObject/{NAMESPACE}/unserved", f"cluster {CONTEXT}")], err
    assert active[0]["message"].startswith(
        f"its HorizontalPodAutoscaler/{NAMESPACE}/keda-hpa-unserved cannot scale: ScalingActive is False "
        "(FailedGetExternalMetric: "), active[0]["message"]
    ready = findings_of(report, "live-scaledobject-ready")
    assert all(f["resource"] != f"ScaledObject/{NAMESPACE}/gpu-scaler" for f in ready), ready


def test_the_reference_scaledobject_naming_a_cluster_dns_prometheus_is_refused_not_resolved(
    api: k8s.ApiClient, scaled: dict[str, Any]
) -> None:
    """Network safety: KEDA would resolve prometheus.monitoring.svc.cluster.local; the testbed's admission policy
    refuses the object before KEDA ever sees it."""
    reference = copy.deepcopy(reference_scaledobject())
    reference["metadata"] = {"name": "reference-as-is", "namespace": NAMESPACE}
    reference["spec"]["scaleTargetRef"]["name"] = "unserved-app"
    with pytest.raises(ApiException) as rejected:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects",
                                                                  reference)  # fmt: skip
    body = str(rejected.value.body)
    assert "gpu-policy-testbed-keda-loopback" in body and "KEDA may only reach 127.0.0.0/8" in body, body
