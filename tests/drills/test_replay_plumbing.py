"""The scaling drills' plumbing on a core testbed (no KEDA needed): the drill's labelled namespace receives the set's
Deployment, the real scheduler puts its kwok pods on the p4d node, the drill's exporters label one GPU per pod so
that the reference trigger's query (namespace rewritten) sums the demand on the real Prometheus, and cleanup leaves
neither the namespace nor the PriorityClass it had to create. Without KEDA the drill itself stops with exit 2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from gpu_policy.drills import scale_down
from gpu_policy.drills.base import DrillContext, DrillUnavailable
from gpu_policy.drills.manifests import load_drill_graph
from gpu_policy.drills.replay import Replay, drill_namespace, ensure_priority_class
from gpu_policy.drills.runner import cleanup, run_drill
from gpu_policy.testbed import cluster
from gpu_policy.testbed.metrics_stack import MetricsStack
from gpu_policy.testbed.nodes import FAKE_NODES
from gpu_policy.testbed.pins import load_pins
from gpu_policy.testbed.prometheus import prometheus_binary
from tests.drills.conftest import drills_or_skip
from tests.testbed.conftest import running_testbed

pytestmark = [pytest.mark.testbed,
              pytest.mark.skipif(prometheus_binary() is None, reason="needs /usr/bin/prometheus (see .ci/setup)")]


@pytest.fixture(scope="module")
def core_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    drills_or_skip()
    yield from running_testbed(tmp_path_factory)


def test_the_load_reaches_prometheus_from_the_drills_own_pods_and_cleanup_removes_them(
    core_testbed: cluster.State, tmp_path: Path
) -> None:
    graph = load_drill_graph()
    ctx = DrillContext(scale_down.SPEC, graph, tmp_path, time.monotonic() + 300, kubeconfig=core_testbed.kubeconfig,
                       run_id="t3st")
    so = graph.get("ScaledObject", "model-a-gpu-scaler", "inference")
    deployment = graph.get("Deployment", "model-a-serving", "inference")
    assert so is not None and deployment is not None
    replay = Replay(ctx, so, deployment, scale_down.falling_trace(420.0, scale_down.LOW, scale_down.FALL_AT, 120.0), 6)
    pinned = load_pins().kubernetes_minor
    assert replay.kubernetes_version() == pinned  # not connected yet: the testbed's pin
    api = k8s_config.new_client_from_config(config_file=str(core_testbed.kubeconfig))
    try:
        replay.api = api
        assert replay.kubernetes_version() == pinned  # the running API server's /version says the same
        gpu_nodes = [n.name for n in FAKE_NODES if n.nodepool]
        replay.stack = MetricsStack(graph, {node: [] for node in gpu_nodes}, tmp_path / "metrics", interval="1s")
        replay.stack.start()
        ctx.on_cleanup("stack", replay.stack.close)
        replay.namespace = drill_namespace(ctx, api)
        ensure_priority_class(ctx, api, deployment.spec["template"])
        apps = k8s.AppsV1Api(api)
        apps.create_namespaced_deployment(replay.namespace, replay._copy_deployment())
        ctx.poll(lambda: replay._all_ready(6), "pods ready", within=120)
        pods = replay.pods()
        assert {p["spec"]["nodeName"] for p in pods} == {"kwok-p4d-ondemand-0"}
        query = replay._copy_scaled_object(replay.stack.prometheus.url)["spec"]["triggers"][0]["metadata"]["query"]
        assert query == f'sum(DCGM_FI_DEV_GPU_UTIL{{namespace="{replay.namespace}", pod=~"model-a-serving-.*"}})'

        def summed() -> float | None:
            replay.feed(420.0)
            found = replay.stack.client.query(query)
            return found[0].value if found and found[0].value == 420.0 else None

        assert ctx.poll(summed, "Prometheus summing the drill's GPUs", within=60) == 420.0
        namespace = replay.namespace
    finally:
        assert cleanup(ctx) == []
    core = k8s.CoreV1Api(api)
    with pytest.raises(ApiException) as gone:
        core.read_namespace(namespace)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as removed:
        k8s.SchedulingV1Api(api).read_priority_class("inference-critical")
    assert removed.value.status == 404
    api.close()


def test_without_keda_the_scaling_drills_cannot_run(core_testbed: cluster.State) -> None:
    with pytest.raises(DrillUnavailable, match="the testbed runs without KEDA"):
        run_drill("scale-down", kubeconfig=core_testbed.kubeconfig)
