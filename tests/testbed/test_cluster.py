"""The testbed is a real control plane: kubectl and the kubernetes client see the fake GPU nodes, the real scheduler
places a GPU Deployment's pods on a kwok node only where taints allow, and `down` leaves no process and no file."""

from __future__ import annotations

import io
import ipaddress
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gpu_policy.schemas.crds import CRD_PATH_ENV
from gpu_policy.testbed import cluster, processes
from gpu_policy.testbed.nodes import FAKE_NODES, GPU_RESOURCE, node_manifests
from tests.testbed.conftest import binaries_or_skip, running_testbed

pytestmark = pytest.mark.testbed

GPU_NODES = {node.name: node for node in FAKE_NODES if node.nodepool}
EXPECTED = {m["metadata"]["name"]: m for m in node_manifests()}


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    """Without CRDs: nodes, the scheduler and the controllers need none. The pinned CRDs served are judged on
    tests/live's testbed (test_load_live.py)."""
    yield from running_testbed(tmp_path_factory, crds=False)


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def _wait(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def test_kubectl_lists_the_fake_nodes_with_their_gpu_capacity(kubeconfig: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    nodes = {item["metadata"]["name"]: item for item in json.loads(out)["items"]}
    assert set(nodes) == {node.name for node in FAKE_NODES}
    for name in GPU_NODES:
        gpus = nodes[name]["status"]["allocatable"][GPU_RESOURCE]
        assert gpus == EXPECTED[name]["status"]["capacity"][GPU_RESOURCE] and int(gpus) > 0, name


def test_kubernetes_client_sees_ready_gpu_nodes_with_karpenter_labels(api: k8s.ApiClient) -> None:
    nodes = k8s.CoreV1Api(api).list_node(label_selector="karpenter.sh/nodepool").items
    assert {n.metadata.name for n in nodes} == set(GPU_NODES)
    for node in nodes:
        expected = GPU_NODES[node.metadata.name]
        assert node.metadata.labels["karpenter.sh/nodepool"] == expected.nodepool
        assert node.metadata.labels["node.kubernetes.io/instance-type"] == expected.instance_type
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], f"{node.metadata.name} not Ready (kwok manages it): {node.status.conditions}"
        # kwok reports the node on loopback only.
        addresses = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses


def _deployment(name: str, gpus: int, tolerate_gpu_taint: bool) -> dict[str, Any]:
    tolerations = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}] if tolerate_gpu_taint else []
    limits = {GPU_RESOURCE: str(gpus)} if gpus else {"cpu": "100m"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"node.kubernetes.io/instance-type": "p4d.24xlarge"},
                    "tolerations": tolerations,
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.invalid/vllm:never-pulled",
                            "resources": {"limits": limits},
                        }
                    ],
                },
            },
        },
    }


def _pods(core: k8s.CoreV1Api, app: str) -> list[Any]:
    return list(core.list_namespaced_pod("default", label_selector=f"app={app}").items)


def _running_pod(core: k8s.CoreV1Api, app: str) -> Any:
    return _wait(
        f"pod of {app} Running",
        lambda: next((p for p in _pods(core, app) if p.status.phase == "Running"), None),
    )


def test_scheduler_places_a_gpu_deployment_on_the_kwok_gpu_node(api: k8s.ApiClient) -> None:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("gpu-tolerating", gpus=2, tolerate_gpu_taint=True))
    pod = _running_pod(core, "gpu-tolerating")
    assert pod.spec.node_name == "kwok-p4d-ondemand-0"
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(cluster.POD_CIDR)


def test_extended_resource_toleration_admits_a_gpu_pod_without_its_own_toleration(
    api: k8s.ApiClient, testbed: cluster.State
) -> None:
    """The reference cluster profile says EKS runs ExtendedResourceToleration; the testbed's API server does too."""
    if "ExtendedResourceToleration" not in testbed.admission_plugins:
        pytest.skip("the cluster profile does not enable ExtendedResourceToleration")
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("gpu-admitted", gpus=1, tolerate_gpu_taint=False))
    pod = _running_pod(core, "gpu-admitted")
    assert pod.spec.node_name == "kwok-p4d-ondemand-0"
    added = [(t.key, t.operator, t.effect) for t in pod.spec.tolerations if t.key == GPU_RESOURCE]
    assert added == [(GPU_RESOURCE, "Exists", "NoSchedule")]


def test_scheduler_keeps_a_pod_without_gpu_request_or_toleration_off_the_tainted_gpu_node(api: k8s.ApiClient) -> None:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("cpu-untolerating", gpus=0, tolerate_gpu_taint=False))

    def unschedulable() -> str | None:
        for pod in _pods(core, "cpu-untolerating"):
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return str(condition.message)
        return None

    message = _wait("cpu-untolerating reported Unschedulable", unschedulable)
    assert "untolerated taint" in message and GPU_RESOURCE in message, message
    assert all(p.spec.node_name is None for p in _pods(core, "cpu-untolerating"))


def test_status_then_down_stops_every_process_and_removes_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own testbed (not the module's), so the order tests run in (or pytest-xdist) cannot matter. Without CRDs
    (GPU_POLICY_CRD_PATH names an empty folder): the lifecycle does not need them, and the API server spends about
    6 s of CPU establishing the 21 pinned ones (test_pinned_crds_are_served judges those on the module's testbed)."""
    state_dir = tmp_path / "state"
    (tmp_path / "no-crds").mkdir()
    monkeypatch.setenv(CRD_PATH_ENV, str(tmp_path / "no-crds"))
    progress = io.StringIO()
    started = cluster.up(state_dir, progress=progress, binaries=binaries_or_skip()["core"], die_with_caller=True)
    try:
        assert f"no CRDs installed: ${CRD_PATH_ENV} names no folder" in progress.getvalue(), progress.getvalue()
        state, rows = cluster.status(started.directory)
        assert state is not None
        assert {record.name for record, _ in rows} == {"etcd", "kube-apiserver", "kube-controller-manager",
                                                       "kube-scheduler", "kwok"}  # fmt: skip
        assert all(alive for _, alive in rows), [(r.name, alive) for r, alive in rows]
        assert started.ready_seconds is not None and started.ready_seconds > 0  # measured, not bounded here
    finally:
        cluster.down(state_dir)
    assert [r.name for r, _ in rows if processes.start_ticks(r.pid) == r.start_ticks] == []
    assert not state_dir.exists()
