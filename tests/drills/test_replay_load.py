"""How the scaling drills play the GPUs of kwok pods (no cluster): one GPU per Running pod on its node, a demand
shared by the Ready pods, a per-pod load on every Running pod."""

from __future__ import annotations

from typing import Any

from gpu_policy.drills.replay import gpus_by_node


def _pod(name: str, node: str | None, phase: str = "Running", ready: bool = True,
         deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "drill-ns"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T01:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "vllm"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


PODS = [_pod("a-1", "n1"), _pod("a-2", "n1"), _pod("a-3", "n2", ready=False), _pod("a-4", None, phase="Pending"),
        _pod("a-5", "n2", deleting=True)]


def _values(by_node: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[str, int]]]:
    return {node: [(g["pod"]["name"], g["values"]["DCGM_FI_DEV_GPU_UTIL"]) for g in gpus]
            for node, gpus in by_node.items()}


def test_demand_is_shared_by_ready_pods_and_unready_ones_report_zero() -> None:
    by_node, running, ready = gpus_by_node(PODS, 150, "demand", ["n1", "n2", "n3"])
    assert (running, ready) == (3, 2)
    assert _values(by_node) == {"n1": [("a-1", 75), ("a-2", 75)], "n2": [("a-3", 0)], "n3": []}
    assert [g["index"] for g in by_node["n1"]] == [0, 1]
    assert by_node["n1"][0]["pod"] == {"namespace": "drill-ns", "name": "a-1", "container": "vllm"}


def test_a_demand_beyond_the_pods_saturates_them_at_100() -> None:
    by_node, _, _ = gpus_by_node(PODS, 900, "demand", ["n1"])
    assert _values(by_node) == {"n1": [("a-1", 100), ("a-2", 100)]}


def test_a_per_pod_load_reaches_every_running_pod() -> None:
    by_node, _, _ = gpus_by_node(PODS, 95, "per_pod", ["n1", "n2"])
    assert _values(by_node) == {"n1": [("a-1", 95), ("a-2", 95)], "n2": [("a-3", 95)]}
