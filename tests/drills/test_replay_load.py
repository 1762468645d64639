"""How the scaling drills play the GPUs of kwok pods (no cluster): one GPU per Running pod on its node, a demand
shared by the Ready pods, a per-pod load on every Running pod, and two workloads on the same exporters."""

from __future__ import annotations

from typing import Any

from gpu_policy.drills.replay import GpuBoard, gpus_by_node, merge_gpus


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


def test_two_workloads_on_one_node_share_its_exporter_numbered_as_one() -> None:
    a, _, _ = gpus_by_node(PODS[:2], 95, "per_pod", ["n1", "n2"])
    b, _, _ = gpus_by_node([_pod("b-1", "n1"), _pod("b-2", "n2")], 0, "demand", ["n1", "n2"])
    merged = merge_gpus({"model-a": a, "model-b": b}, ["n1", "n2", "n3"])
    assert _values(merged) == {"n1": [("a-1", 95), ("a-2", 95), ("b-1", 0)], "n2": [("b-2", 0)], "n3": []}
    assert [g["index"] for g in merged["n1"]] == [0, 1, 2]
    assert [g["index"] for g in merged["n2"]] == [0]
    assert a["n1"][0]["index"] == 0 and b["n1"][0]["index"] == 0  # the parts themselves are not renumbered


def test_the_board_writes_every_node_with_all_parts_and_only_when_changed() -> None:
    class Stack:
        def __init__(self) -> None:
            self.traces: dict[str, Any] = {"n1": {}, "n2": {}}
            self.writes: list[tuple[str, list[dict[str, Any]]]] = []

        def set_gpus(self, node: str, gpus: list[dict[str, Any]]) -> None:
            if self.traces[node].get("gpus") != gpus:
                self.traces[node]["gpus"] = gpus
                self.writes.append((node, gpus))

    stack = Stack()
    board = GpuBoard(stack)
    a, _, _ = gpus_by_node(PODS[:2], 95, "per_pod", ["n1", "n2"])
    board.put("model-a", a)
    b, _, _ = gpus_by_node([_pod("b-1", "n1")], 0, "demand", ["n1", "n2"])
    board.put("model-b", b)
    assert [g["pod"]["name"] for g in stack.traces["n1"]["gpus"]] == ["a-1", "a-2", "b-1"]
    board.put("model-a", a)  # model A again, unchanged: model B's GPU stays on n1
    assert [g["pod"]["name"] for g in stack.traces["n1"]["gpus"]] == ["a-1", "a-2", "b-1"]
    assert [node for node, _ in stack.writes] == ["n1", "n2", "n1"]
