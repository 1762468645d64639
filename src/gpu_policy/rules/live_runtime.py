"""Runtime rules (`@live`): what the controllers made of the deployed objects, read from their status.

They judge `ctx.live` (the cluster read by `--live`) and nothing else; without `--live` they judge nothing and their
scenarios are skipped with "needs --live". Each names the live object as `cluster <context>: Kind/ns/name`.
The condition types and their meaning come from the controllers' own source, cited beside each rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from gpu_policy.live.conditions import age, conditions, deleting, explain, gpu_capacity, status_of
from gpu_policy.live.state import LiveState
from gpu_policy.metrics.dcgm import IMAGE_NAME, is_exporter_container
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

LIVE_TAGS = ("live",)
KEDA_PAUSED_ANNOTATIONS = ("autoscaling.keda.sh/paused", "autoscaling.keda.sh/paused-replicas")
NODECLAIM_TIMEOUTS = {
    "Launched": dt.timedelta(minutes=5),  # karpenter liveness.go LaunchTimeout
    "Registered": dt.timedelta(minutes=15),  # karpenter liveness.go registrationTimeout
    "Initialized": dt.timedelta(minutes=15),  # no upstream timeout: the registration bound again
}


def _violation(live: LiveState, obj: dict[str, Any], message: str, fix: str | None = None,
               details: tuple[str, ...] = ()) -> Violation:
    return Violation(doc=None, message=message, resource=live.ref(obj), file=live.source, fix=fix, details=details)


def _paused(scaled: dict[str, Any]) -> bool:
    annotations = (scaled.get("metadata") or {}).get("annotations") or {}
    if any(str(annotations.get(a, "")).lower() not in ("", "false") for a in KEDA_PAUSED_ANNOTATIONS):
        return True
    return status_of(scaled, "Paused") == "True"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@rule(
    "live-scaledobject-ready",
    title="every ScaledObject in the cluster is Ready",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_TAGS,
    rationale="""KEDA's operator sets the Ready condition True once a ScaledObject is valid, its scaler is built and
    its HPA exists; False (or Unknown left by an operator that never reconciled it) means KEDA does not scale the
    workload at all: it stays at whatever replica count it had, whatever the GPU load.""",
    fix="""Read the Ready condition's reason and message (`kubectl describe scaledobject`) and KEDA operator's log;
    fix the trigger, its authentication or the target it names, or start KEDA if nothing reconciled it.""",
    sources=("kedacore/keda@v2.20.2:apis/keda/v1alpha1/condition_types.go (ConditionReady, GetInitializedConditions:"
             " Unknown until reconciled)",
             "kedacore/keda@v2.20.2:controllers/keda/scaledobject_controller.go (Ready False on a failed check)"),
)
def scaledobject_ready(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for scaled in live.objects("ScaledObject"):
        if deleting(scaled) or _paused(scaled):
            continue  # a paused ScaledObject is the operator's choice; a deleted one is going away
        ready = conditions(scaled).get("Ready")
        if ready is not None and ready.get("status") == "True":
            continue
        if ready is None or ready.get("status") == "Unknown":
            message = ("is not Ready: Ready is " + ("not set" if ready is None else "Unknown")
                       + " (KEDA's operator has not reconciled it: is KEDA running and watching this namespace?)")
        else:
            message = f"is not Ready: {explain(ready)}"
        yield _violation(live, scaled, f"ScaledObject {message}")


def _hpa_of(live: LiveState, scaled: dict[str, Any]) -> dict[str, Any] | None:
    meta = scaled.get("metadata") or {}
    namespace, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid")
    status = scaled.get("status") if isinstance(scaled.get("status"), dict) else {}
    named = status.get("hpaName") if isinstance(status, dict) else None
    if isinstance(named, str) and named:
        return live.get("HorizontalPodAutoscaler", named, namespace)
    for hpa in live.objects("HorizontalPodAutoscaler", namespace):
        for owner in (hpa.get("metadata") or {}).get("ownerReferences") or []:
            if isinstance(owner, dict) and owner.get("kind") == "ScaledObject" and (
                    owner.get("uid") == uid or owner.get("name") == name):
                return hpa
    return live.get("HorizontalPodAutoscaler", f"keda-hpa-{name}", namespace)


@rule(
    "live-scaledobject-hpa-active",
    title="the HPA of every ScaledObject is able to scale and its metrics are served",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_TAGS,
    rationale="""KEDA scales 1..N through the HPA it creates, which reads KEDA's metrics through the external
    metrics API. The HPA controller sets AbleToScale False when it cannot read or update the target's scale, and
    ScalingActive False when it cannot get its metrics (FailedGetExternalMetric: the metric is not served, KEDA's
    metrics server is down or the query returns nothing): the workload then stays at its current size. ScalingActive
    False with reason ScalingDisabled is normal while KEDA holds the target at zero replicas.""",
    fix="""Read the HPA's conditions (`kubectl describe hpa <status.hpaName>`): for FailedGetExternalMetric check
    that KEDA's metrics apiserver is available (`kubectl get apiservice v1beta1.external.metrics.k8s.io`) and the
    trigger's query returns a value; for FailedGetScale check the scaleTargetRef.""",
    sources=("kubernetes/kubernetes@v1.33.0:pkg/controller/podautoscaler/horizontal.go (AbleToScale, ScalingActive,"
             " ScalingDisabled when the target has zero replicas)",
             "kubernetes/kubernetes@v1.33.0:staging/src/k8s.io/api/autoscaling/v2/types.go"
             " (HorizontalPodAutoscalerConditionType)",
             "kedacore/keda@v2.20.2:apis/keda/v1alpha1/scaledobject_types.go (status.hpaName)"),
)
def scaledobject_hpa_active(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for scaled in live.objects("ScaledObject"):
        if deleting(scaled) or _paused(scaled):
            continue  # KEDA removes the HPA of a paused ScaledObject
        hpa = _hpa_of(live, scaled)
        if hpa is None:
            yield _violation(live, scaled, "ScaledObject has no HorizontalPodAutoscaler in the cluster: KEDA made "
                             "none (see its Ready condition), so nothing scales the workload between 1 and max")
            continue
        found = conditions(hpa)
        problems = []
        able = found.get("AbleToScale")
        if able is None or able.get("status") != "True":
            problems.append(f"AbleToScale is {able.get('status') if able else 'not set'} ({explain(able)})")
        active = found.get("ScalingActive")
        disabled = active is not None and active.get("status") == "False" and active.get("reason") == "ScalingDisabled"
        if (active is None or active.get("status") != "True") and not disabled:
            problems.append(f"ScalingActive is {active.get('status') if active else 'not set'} ({explain(active)})")
        if problems:
            hpa_ref = live.ref(hpa)
            yield _violation(live, scaled, f"its {hpa_ref} cannot scale: " + "; ".join(problems))


@rule(
    "live-nodepool-ready",
    title="every NodePool in the cluster is Ready",
    area="karpenter",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_TAGS,
    rationale="""Karpenter provisions nodes only for a Ready NodePool. Ready is True when ValidationSucceeded and
    NodeClassReady are True; NodeClassReady is False when the referenced node class is missing (NodeClassNotFound),
    terminating or not ready itself. A NodePool that is not Ready launches no GPU node: pending model servers stay
    pending.""",
    fix="""Read the NodePool's conditions (`kubectl describe nodepool`): create the node class its
    spec.template.spec.nodeClassRef names, or fix that node class's own Ready condition (subnets, security groups,
    AMI, IAM role).""",
    sources=("kubernetes-sigs/karpenter@v1.14.1:pkg/apis/v1/nodepool_status.go (Ready from ValidationSucceeded and"
             " NodeClassReady)",
             "kubernetes-sigs/karpenter@v1.14.1:pkg/controllers/nodepool/readiness/controller.go (NodeClassNotFound,"
             " NodeClassTerminating, the node class's own Ready reason)"),
)
def nodepool_ready(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for pool in live.objects("NodePool"):
        if deleting(pool):
            continue
        found = conditions(pool)
        ready = found.get("Ready")
        if ready is not None and ready.get("status") == "True":
            continue
        if not found:
            yield _violation(live, pool, "NodePool has no status conditions: Karpenter has not reconciled it "
                             "(is Karpenter running?)")
            continue
        causes = [f"{kind} {c.get('status')} ({explain(c)})" for kind, c in found.items()
                  if kind != "Ready" and c.get("status") == "False"]
        text = "; ".join(causes) if causes else explain(ready)
        yield _violation(live, pool, f"NodePool is not Ready: {text}")


@rule(
    "live-nodeclaim-initialized",
    title="every NodeClaim is launched, registered and initialized",
    area="karpenter",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_TAGS,
    rationale="""A NodeClaim is Karpenter's request for one node: Launched when the cloud instance exists,
    Registered when its Node joined the cluster, Initialized when the node is ready with its resources (GPUs)
    advertised. Karpenter gives a launch 5 minutes and a registration 15 before it deletes the claim; one still short
    of a condition past that time (or with the condition False) is a GPU node paid for and not serving.""",
    fix="""Read the NodeClaim's conditions (`kubectl describe nodeclaim`): a launch failure names the capacity or
    IAM error; a node that does not register points at the node class's user data, AMI or network; a node that does
    not initialize usually lacks its GPU device plugin or keeps a startup taint.""",
    sources=("kubernetes-sigs/karpenter@v1.14.1:pkg/apis/v1/nodeclaim_status.go (Launched, Registered, Initialized)",
             "kubernetes-sigs/karpenter@v1.14.1:pkg/controllers/nodeclaim/lifecycle/liveness.go (LaunchTimeout 5m,"
             " registrationTimeout 15m)"),
)
def nodeclaim_initialized(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    now = _now()
    for claim in live.objects("NodeClaim"):
        if deleting(claim):
            continue
        found = conditions(claim)
        created = age((claim.get("metadata") or {}).get("creationTimestamp"), now)
        for kind, timeout in NODECLAIM_TIMEOUTS.items():
            condition = found.get(kind)
            state = condition.get("status") if condition else "not set"
            if state == "True":
                continue
            since = age(condition.get("lastTransitionTime"), now) if condition else created
            if state != "False" and since is not None and since < timeout:
                break  # still in progress within Karpenter's own bound: nothing to judge yet
            yield _violation(live, claim, f"NodeClaim is not {kind}: {kind} is {state} ({explain(condition)})")
            break


def _exporter_pod(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    labels = (pod.get("metadata") or {}).get("labels") or {}
    named = IMAGE_NAME in (str(labels.get("app", "")), str(labels.get("app.kubernetes.io/name", "")))
    return named or any(is_exporter_container(c) for c in containers)


@rule(
    "live-gpu-node-runs-exporter",
    title="every GPU node runs a Ready DCGM exporter pod",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_TAGS,
    rationale="""GPU utilisation, memory and health metrics come only from the DCGM exporter pod on the node
    itself. A GPU node without a Ready exporter pod is invisible to Prometheus: KEDA's GPU queries lose its pods,
    GPU alerts cannot fire for it and its cost shows no use.""",
    fix="""Make the exporter DaemonSet schedule on this node: tolerate the node's taints and match its labels
    (`kubectl describe node`, `kubectl -n <ns> describe ds <exporter>`); if its pod exists but is not Ready, read its
    events and log.""",
    sources=("kubernetes/kubernetes@v1.33.0:staging/src/k8s.io/api/core/v1/types.go (PodReady condition,"
             " node status.capacity)",
             "NVIDIA/dcgm-exporter: one exporter pod per GPU node (DaemonSet), metrics of that node's GPUs only"),
)
def gpu_node_runs_exporter(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    pods_by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in live.objects("Pod"):
        node_name = (pod.get("spec") or {}).get("nodeName")
        if isinstance(node_name, str) and node_name and _exporter_pod(pod) and not deleting(pod):
            pods_by_node.setdefault(node_name, []).append(pod)
    for node in live.objects("Node"):
        gpus = gpu_capacity(node)
        if gpus <= 0 or deleting(node):
            continue
        name = (node.get("metadata") or {}).get("name", "")
        pods = pods_by_node.get(name, [])
        if any(status_of(p, "Ready") == "True" for p in pods):
            continue
        scope = f" (only namespaces {', '.join(live.namespaces)} were read)" if live.namespaces else ""
        if not pods:
            message = f"GPU node ({gpus:g} nvidia.com/gpu) runs no DCGM exporter pod{scope}"
        else:
            states = [f"{live.ref(p)}: {(p.get('status') or {}).get('phase', '?')}, "
                      f"Ready {status_of(p, 'Ready')} ({explain(conditions(p).get('Ready'))})" for p in pods]
            message = f"GPU node ({gpus:g} nvidia.com/gpu): its DCGM exporter pod is not Ready: " + "; ".join(states)
        yield _violation(live, node, message)
