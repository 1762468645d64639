"""The runtime rules on cluster objects shaped as the API server returns them (status included), without a cluster:
the status shapes follow the controllers' sources cited beside each rule. The same rules run against a real API
server in test_check_live.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.live.state import NEEDS_LIVE, NEEDS_MANIFESTS, NEEDS_PROMETHEUS, LiveState, unmet_requirement
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import all_rules

LONG_AGO = "2020-01-01T00:00:00Z"


def _now(minutes_ago: float = 0) -> str:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(rule_id: str, items: list[dict[str, Any]], namespaces: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    live = LiveState(context="prod", items=items, namespaces=namespaces)
    ctx = CheckContext(graph=ResourceGraph([]), policy=PolicySet.defaults(), live=live)
    return [(v.file or "", v.resource or "", v.message) for v in all_rules()[rule_id].check(ctx)]


def cond(kind: str, status: str, reason: str = "", message: str = "", at: str = LONG_AGO) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def obj(kind: str, name: str, namespace: str = "", conditions: list[dict[str, Any]] | None = None,
        **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "creationTimestamp": LONG_AGO}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra.pop("metadata", {}))
    out: dict[str, Any] = {"kind": kind, "metadata": meta, **extra}
    if conditions is not None:
        out.setdefault("status", {})["conditions"] = conditions
    return out


# -- ScaledObjects ---------------------------------------------------------------------------------------------
def test_a_ready_scaledobject_passes_and_a_failed_one_names_keda_s_reason() -> None:
    items = [
        obj("ScaledObject", "good", "inference", [cond("Ready", "True", "ScaledObjectReady")]),
        obj("ScaledObject", "bad", "inference",
            [cond("Ready", "False", "ScaledObjectCheckFailed", "ScaledObject doesn't have correct triggers")]),
    ]
    assert run("live-scaledobject-ready", items) == [(
        "cluster prod", "ScaledObject/inference/bad",
        "ScaledObject is not Ready: ScaledObjectCheckFailed: ScaledObject doesn't have correct triggers",
    )]


def test_a_scaledobject_keda_never_reconciled_says_so() -> None:
    items = [obj("ScaledObject", "new", "inference", [cond("Ready", "Unknown")]), obj("ScaledObject", "bare", "a")]
    messages = [m for _, _, m in run("live-scaledobject-ready", items)]
    assert len(messages) == 2 and all("KEDA's operator has not reconciled it" in m for m in messages)
    assert "Ready is Unknown" in messages[0] and "Ready is not set" in messages[1]


def test_a_paused_scaledobject_is_the_operators_choice() -> None:
    paused = obj("ScaledObject", "p", "inference", [cond("Ready", "False"), cond("Paused", "True")])
    annotated = obj("ScaledObject", "q", "inference", [cond("Ready", "Unknown")],
                    metadata={"annotations": {"autoscaling.keda.sh/paused": "true"}})
    assert run("live-scaledobject-ready", [paused, annotated]) == []
    assert run("live-scaledobject-hpa-active", [paused, annotated]) == []


# -- their HPAs ------------------------------------------------------------------------------------------------
def _scaled_with_hpa(hpa_conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scaled = obj("ScaledObject", "vllm", "inference", [cond("Ready", "True")], status={"hpaName": "keda-hpa-vllm"})
    scaled["status"]["conditions"] = [cond("Ready", "True")]
    return [scaled, obj("HorizontalPodAutoscaler", "keda-hpa-vllm", "inference", hpa_conditions)]


def test_an_hpa_whose_external_metric_is_not_served_fails_with_the_hpa_controllers_reason() -> None:
    items = _scaled_with_hpa([
        cond("AbleToScale", "True", "SucceededGetScale"),
        cond("ScalingActive", "False", "FailedGetExternalMetric",
             "the HPA was unable to compute the replica count: unable to get external metric"),
    ])
    [(where, resource, message)] = run("live-scaledobject-hpa-active", items)
    assert (where, resource) == ("cluster prod", "ScaledObject/inference/vllm")
    assert message == ("its HorizontalPodAutoscaler/inference/keda-hpa-vllm cannot scale: ScalingActive is False "
                       "(FailedGetExternalMetric: the HPA was unable to compute the replica count: unable to get "
                       "external metric)")


def test_scaling_disabled_at_zero_replicas_is_normal_and_a_healthy_hpa_passes() -> None:
    assert run("live-scaledobject-hpa-active", _scaled_with_hpa([
        cond("AbleToScale", "True"), cond("ScalingActive", "False", "ScalingDisabled")])) == []
    assert run("live-scaledobject-hpa-active", _scaled_with_hpa([
        cond("AbleToScale", "True"), cond("ScalingActive", "True", "ValidMetricFound")])) == []


def test_an_hpa_that_cannot_get_the_scale_and_a_missing_hpa_are_reported() -> None:
    [(_, _, message)] = run("live-scaledobject-hpa-active", _scaled_with_hpa([
        cond("AbleToScale", "False", "FailedGetScale", "deployments/scale.apps \"vllm\" not found"),
        cond("ScalingActive", "True")]))
    assert message.endswith('AbleToScale is False (FailedGetScale: deployments/scale.apps "vllm" not found)')
    lonely = obj("ScaledObject", "lonely", "inference", [cond("Ready", "False")])
    [(_, resource, message)] = run("live-scaledobject-hpa-active", [lonely])
    assert resource == "ScaledObject/inference/lonely" and "has no HorizontalPodAutoscaler" in message


def test_the_hpa_is_found_by_its_owner_when_status_does_not_name_it() -> None:
    scaled = obj("ScaledObject", "vllm", "inference", [cond("Ready", "True")])
    hpa = obj("HorizontalPodAutoscaler", "custom-name", "inference", [cond("AbleToScale", "True")],
              metadata={"ownerReferences": [{"kind": "ScaledObject", "name": "vllm", "uid": "uid-vllm",
                                             "controller": True}]})
    [(_, _, message)] = run("live-scaledobject-hpa-active", [scaled, hpa])
    assert "HorizontalPodAutoscaler/inference/custom-name" in message and "ScalingActive is not set" in message


# -- NodePools and NodeClaims ------------------------------------------------------------------------------------
def test_a_nodepool_whose_node_class_is_missing_names_the_condition() -> None:
    items = [
        obj("NodePool", "ok", conditions=[cond("Ready", "True"), cond("NodeClassReady", "True")]),
        obj("NodePool", "orphan", conditions=[
            cond("ValidationSucceeded", "True"),
            cond("NodeClassReady", "False", "NodeClassNotFound", "NodeClass not found on cluster"),
            cond("Ready", "False", "UnhealthyDependents", "NodeClassReady=False")]),
        obj("NodePool", "unreconciled"),
    ]
    assert run("live-nodepool-ready", items) == [
        ("cluster prod", "NodePool/orphan",
         "NodePool is not Ready: NodeClassReady False (NodeClassNotFound: NodeClass not found on cluster)"),
        ("cluster prod", "NodePool/unreconciled",
         "NodePool has no status conditions: Karpenter has not reconciled it (is Karpenter running?)"),
    ]


def test_nodeclaims_are_judged_after_karpenters_own_timeouts() -> None:
    ready = [cond("Launched", "True"), cond("Registered", "True"), cond("Initialized", "True")]
    launching = obj("NodeClaim", "launching", conditions=[cond("Launched", "Unknown", at=_now(1))],
                    metadata={"creationTimestamp": _now(1)})
    stuck = obj("NodeClaim", "stuck", conditions=[cond("Launched", "True"),
                                                  cond("Registered", "Unknown", at=_now(30))])
    failed = obj("NodeClaim", "failed", conditions=[cond("Launched", "False", "InsufficientCapacity",
                                                         "no p4d.24xlarge in us-east-1a", at=_now(1))])
    deleting = obj("NodeClaim", "gone", conditions=[], metadata={"deletionTimestamp": _now()})
    result = run("live-nodeclaim-initialized",
                 [obj("NodeClaim", "ok", conditions=ready), launching, stuck, failed, deleting])
    assert result == [
        ("cluster prod", "NodeClaim/stuck", "NodeClaim is not Registered: Registered is Unknown (status Unknown)"),
        ("cluster prod", "NodeClaim/failed",
         "NodeClaim is not Launched: Launched is False (InsufficientCapacity: no p4d.24xlarge in us-east-1a)"),
    ]


# -- the DCGM exporter on every GPU node -------------------------------------------------------------------------
def _node(name: str, gpus: str | None) -> dict[str, Any]:
    capacity = {"cpu": "96"} | ({"nvidia.com/gpu": gpus} if gpus is not None else {})
    return obj("Node", name, status={"capacity": capacity})


def _exporter(node: str, ready: str, name: str | None = None) -> dict[str, Any]:
    return obj("Pod", name or f"dcgm-exporter-{node}", "gpu-monitoring", [cond("Ready", ready, "", "")],
               spec={"nodeName": node, "containers": [{"name": "exporter",
                                                       "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2"}]})


def test_every_gpu_node_needs_a_ready_exporter_pod() -> None:
    items = [
        _node("gpu-a", "8"), _exporter("gpu-a", "True"),
        _node("gpu-b", "1"),
        _node("gpu-c", "4"), _exporter("gpu-c", "False"),
        _node("cpu-only", None), _node("gpu-zero", "0"),
        obj("Pod", "model", "inference", [cond("Ready", "True")],
            spec={"nodeName": "gpu-b", "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6"}]}),
    ]
    result = run("live-gpu-node-runs-exporter", items)
    assert [(r, m.split(":")[0]) for _, r, m in result] == [
        ("Node/gpu-b", "GPU node (1 nvidia.com/gpu) runs no DCGM exporter pod"),
        ("Node/gpu-c", "GPU node (4 nvidia.com/gpu)"),
    ]
    assert "its DCGM exporter pod is not Ready: Pod/gpu-monitoring/dcgm-exporter-gpu-c: ?, Ready False" in result[1][2]


def test_a_namespace_filter_is_named_when_no_exporter_is_found() -> None:
    [(_, _, message)] = run("live-gpu-node-runs-exporter", [_node("gpu-a", "8")], namespaces=("inference",))
    assert message.endswith("runs no DCGM exporter pod (only namespaces inference were read)")


# -- when the rules cannot judge ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rule_id", [r.id for r in all_rules().values() if "live" in r.tags])
def test_without_a_cluster_live_rules_judge_nothing_and_say_why(rule_id: str) -> None:
    rule = all_rules()[rule_id]
    ctx = CheckContext(graph=ResourceGraph([]), policy=PolicySet.defaults())
    assert list(rule.check(ctx)) == []
    assert unmet_requirement(rule.tags, None) == NEEDS_LIVE
    cluster_only = LiveState(context="prod", manifests=False)
    expected = NEEDS_MANIFESTS if "live-manifests" in rule.tags else None
    if "live-prometheus" in rule.tags:
        expected = NEEDS_PROMETHEUS
        with_prometheus = LiveState(context="prod", manifests=False, prometheus_url="http://127.0.0.1:9090")
        assert unmet_requirement(rule.tags, with_prometheus) is None
    assert unmet_requirement(rule.tags, cluster_only) == expected
