"""Real Karpenter (core v1.14.1 with its kwok cloud provider) on the testbed: the drill NodePools (the reference
NodePools with their node class swapped for a KWOKNodeClass of the same name) get Ready; a pending GPU pod makes
Karpenter launch a NodeClaim of an instance type the pool admits, kwok registers its node, Karpenter initializes
it and the real scheduler binds the pod there; `gpu-policy check --live` passes the pools and the claim, and names
a NodePool whose node class is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from gpu_policy.resources import default_policies_dir
from gpu_policy.testbed import cluster, karpenter
from tests.controllers.conftest import CONTEXT, condition, eventually, findings_of, gpu_policy, is_true

pytestmark = pytest.mark.testbed
NAMESPACE = "karpenter-drill"
POOL = "gpu-inference-pool"


def _custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def _pools(api: k8s.ApiClient) -> dict[str, dict[str, Any]]:
    items = _custom(api).list_cluster_custom_object("karpenter.sh", "v1", "nodepools")["items"]
    return {item["metadata"]["name"]: item for item in items}


def _claims(api: k8s.ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _custom(api).list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")["items"]
    return items


@pytest.fixture(scope="module")
def drill_pools(api: k8s.ApiClient, testbed: cluster.State) -> list[dict[str, Any]]:
    pools = karpenter.drill_nodepools()
    for pool in pools:
        _custom(api).create_cluster_custom_object("karpenter.sh", "v1", "nodepools", pool)
    return pools


@pytest.fixture(scope="module")
def gpu_pod(api: k8s.ApiClient, drill_pools: list[dict[str, Any]]) -> dict[str, Any]:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-pending", "namespace": NAMESPACE},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "karpenter.sh/nodepool", "operator": "In", "values": [POOL]}]}]}}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.4", "resources": {
                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                "limits": {"nvidia.com/gpu": "1"}}}],
        },
    }  # fmt: skip
    core.create_namespaced_pod(NAMESPACE, pod)
    return pod


def test_the_drill_nodepools_are_ready(api: k8s.ApiClient, drill_pools: list[dict[str, Any]]) -> None:
    names = {pool["metadata"]["name"] for pool in drill_pools}
    ready = eventually("drill NodePools Ready",
                       lambda: (p := _pools(api)) and all(is_true(p.get(n), "Ready") for n in names) and p)
    for name in names:
        assert is_true(ready[name], "NodeClassReady") and is_true(ready[name], "ValidationSucceeded"), ready[name]


def test_a_pending_gpu_pod_gets_a_nodeclaim_of_an_admissible_type_and_is_bound(
    api: k8s.ApiClient, gpu_pod: dict[str, Any], drill_pools: list[dict[str, Any]]
) -> None:
    def initialized() -> dict[str, Any] | None:
        for claim in _claims(api):
            if claim["metadata"].get("labels", {}).get("karpenter.sh/nodepool") == POOL and all(
                is_true(claim, kind) for kind in ("Launched", "Registered", "Initialized")
            ):
                return claim
        return None

    claim = eventually("a NodeClaim of gpu-inference-pool Launched, Registered and Initialized", initialized)
    instance_type = claim["metadata"]["labels"]["node.kubernetes.io/instance-type"]
    pool = next(p for p in drill_pools if p["metadata"]["name"] == POOL)
    [allowed] = [r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]
                 if r["key"] == "node.kubernetes.io/instance-type"]  # fmt: skip
    admissible = yaml.safe_load((default_policies_dir() / "instance-types.yaml").read_text())["allowedInstanceTypes"]
    assert instance_type in allowed and instance_type in admissible, instance_type
    node_name = claim["status"]["nodeName"]
    node = k8s.CoreV1Api(api).read_node(node_name)
    assert node.metadata.labels["karpenter.sh/nodepool"] == POOL
    assert node.metadata.labels["node-type"] == "gpu-inference"  # the pool's template label
    assert {(t.key, t.effect) for t in node.spec.taints or []} >= {("nvidia.com/gpu", "NoSchedule")}
    assert node.status.allocatable["nvidia.com/gpu"] == claim["status"]["allocatable"]["nvidia.com/gpu"]
    assert all(a.address.startswith("127.") for a in node.status.addresses or [] if a.type == "InternalIP")

    def bound() -> Any:
        pod = k8s.CoreV1Api(api).read_namespaced_pod("gpu-pending", NAMESPACE)
        return pod if pod.spec.node_name and pod.status.phase == "Running" else None

    pod = eventually("the GPU pod bound by the scheduler and running (kwok)", bound)
    assert pod.spec.node_name == node_name
    assert pod.status.pod_ip.startswith("127.")


def test_live_check_passes_the_pools_and_the_claim_and_names_a_pool_without_its_node_class(
    api: k8s.ApiClient, gpu_pod: dict[str, Any], kubeconfig: Path
) -> None:
    eventually("a NodeClaim Initialized",
               lambda: [c for c in _claims(api) if is_true(c, "Initialized")])
    code, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig),
                                   "--only", "live-nodepool-ready", "live-nodeclaim-initialized")  # fmt: skip
    assert (code, findings_of(report, "live-nodepool-ready"), findings_of(report, "live-nodeclaim-initialized")) \
        == (0, [], []), err
    orphan = karpenter.drill_nodepool(karpenter.reference_nodepools()[0])
    orphan["metadata"] = {"name": "orphan-pool"}
    orphan["spec"]["template"]["spec"]["nodeClassRef"]["name"] = "no-such-class"
    _custom(api).create_cluster_custom_object("karpenter.sh", "v1", "nodepools", orphan)
    try:
        not_ready = eventually(
            "Karpenter marking orphan-pool NodeClassReady False",
            lambda: (c := condition(_pools(api).get("orphan-pool"), "NodeClassReady")) and c["status"] == "False"
            and c)
        assert not_ready["reason"] == "NodeClassNotFound", not_ready
        code, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), "--only", "live-nodepool-ready")
    finally:
        _custom(api).delete_cluster_custom_object("karpenter.sh", "v1", "nodepools", "orphan-pool")
    findings = findings_of(report, "live-nodepool-ready")
    assert [(f["resource"], f["file"]) for f in findings] == [("NodePool/orphan-pool", f"cluster {CONTEXT}")], err
    assert findings[0]["message"] == (
        "NodePool is not Ready: NodeClassReady False (NodeClassNotFound: NodeClass not found on cluster)"), findings
    assert code == 1
