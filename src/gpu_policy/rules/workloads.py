"""GPU workloads: pod templates that request `nvidia.com/gpu` ask for it the way the API server accepts, can
be placed on a Karpenter NodePool, carry a priority, are not pinned by a PodDisruptionBudget, and run on the
instance
family their model size calls for (an organisation's instance-types.yaml modelSizeGuide)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from gpu_policy.graph.nodes.model import nodepools, placement_of, placements, reachable, selects
from gpu_policy.graph.nodes.placement import effective_request
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.graph.selectors import matches
from gpu_policy.graph.workloads import SCALABLE_KINDS, PodTemplate
from gpu_policy.loading.document import Document
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.karpenter import policy_source
from gpu_policy.rules.keda import GPU_RESOURCE, autoscalers, workload_label
from gpu_policy.rules.registry import RuleClass, Violation, rule

SYSTEM_PRIORITY_CLASSES = frozenset({"system-cluster-critical", "system-node-critical"})


# ----------------------------------------------------------------------------------------------------
# GPU pod templates and their resource requests
# ----------------------------------------------------------------------------------------------------
def _resources(container: Mapping[str, Any], section: str) -> dict[str, Any]:
    resources = container.get("resources")
    values = resources.get(section) if isinstance(resources, dict) else None
    return values if isinstance(values, dict) else {}


def gpu_templates(ctx: CheckContext) -> list[PodTemplate]:
    return ctx.memo(
        "workloads.gpu_templates", lambda: [p.template for p in placements(ctx) if p.requests_gpu]
    )


@rule(
    "gpu-requests-equal-limits",
    title="GPU requests equal limits",
    area="gpu-workloads",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""nvidia.com/gpu is an extended resource: whole devices, never overcommitted. The API server
    refuses a fractional amount (`must be an integer`), a request without a limit (`Limit must be set for non
    overcommitable resources`) and a request different from the limit (`must be equal to nvidia.com/gpu
    limit`) (kubernetes pkg/apis/core/validation/validation.go ValidateResourceRequirements /
    validateResourceQuantityValue; https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/). The
    structural schema cannot express these, so the Deployment is accepted but its ReplicaSet never creates a
    pod.""",
    fix="Set `limits: {nvidia.com/gpu: N}` with a whole N, and either no GPU request or the same N.",
    sources=(
        "kubernetes/kubernetes pkg/apis/core/validation/validation.go",
        "https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/",
    ),
)
def gpu_requests_equal_limits(ctx: CheckContext) -> Iterator[Violation]:
    for template in ctx.graph.pod_templates():
        for path, container in template.containers(include_init=True):
            requests, limits = _resources(container, "requests"), _resources(container, "limits")
            if GPU_RESOURCE not in requests and GPU_RESOURCE not in limits:
                continue
            name = container.get("name")
            bad_integer = False
            for section, values in (("requests", requests), ("limits", limits)):
                if GPU_RESOURCE not in values:
                    continue
                amount = parse_quantity(values[GPU_RESOURCE])
                if amount is None or amount != amount.to_integral_value() or amount < 0:
                    bad_integer = True
                    yield Violation(
                        template.owner,
                        f"container {name!r}: resources.{section}[{GPU_RESOURCE}] is "
                        f"{values[GPU_RESOURCE]!r}: must be an integer",
                        path=(*path, "resources", section, GPU_RESOURCE),
                    )
            if bad_integer:
                continue
            if GPU_RESOURCE in requests and GPU_RESOURCE not in limits:
                yield Violation(
                    template.owner,
                    f"container {name!r}: requests {requests[GPU_RESOURCE]} "
                    f"{GPU_RESOURCE} without a limit: Limit must be set for non "
                    f"overcommitable resources",
                    path=(*path, "resources", "requests", GPU_RESOURCE),
                )
            elif GPU_RESOURCE in requests and parse_quantity(requests[GPU_RESOURCE]) != parse_quantity(
                limits[GPU_RESOURCE]
            ):
                yield Violation(
                    template.owner,
                    f"container {name!r}: requests.{GPU_RESOURCE} "
                    f"{requests[GPU_RESOURCE]} must be equal to {GPU_RESOURCE} limit of "
                    f"{limits[GPU_RESOURCE]}",
                    path=(*path, "resources", "requests", GPU_RESOURCE),
                )


def _switch(ctx: CheckContext, key: str) -> bool:
    section = ctx.policy.sla.get("gpuWorkloads") or {}
    return bool(section.get(key)) if isinstance(section, Mapping) else False


def _limit_range_defaults(ctx: CheckContext) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for doc in ctx.graph.of_kind("LimitRange"):
        for item in doc.spec.get("limits") or []:
            if isinstance(item, dict) and item.get("type") == "Container":
                for section in ("default", "defaultRequest"):
                    values = item.get(section)
                    if isinstance(values, dict):
                        out[doc.namespace].update(str(k) for k in values)
    return out


@rule(
    "gpu-containers-request-cpu-memory",
    title="GPU containers request cpu and memory",
    area="gpu-workloads",
    rule_class=RuleClass.POLICY,
    rationale="""Karpenter sizes a node from the pods' requests (kubernetes-sigs/karpenter
    pkg/scheduling/requirements + pkg/utils/resources: only requests count) and the scheduler packs by
    requests: a GPU pod without cpu/memory requests is treated as needing none, gets packed next to others on
    a node whose CPU and memory it then starves (vLLM tokenization and KV-cache swap use host CPU and RAM),
    and is the first to be evicted under memory pressure (BestEffort/Burstable QoS). A LimitRange default in
    the namespace counts. A best practice: judged when sla.yaml `gpuWorkloads.requireCpuMemoryRequests` is on in
    the policy in force.""",
    fix="Give every container of the GPU pod cpu and memory requests (a limit alone also sets the request).",
    sources=(
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",
        "https://karpenter.sh/docs/concepts/scheduling/",
    ),
)
def gpu_containers_request_cpu_memory(ctx: CheckContext) -> Iterator[Violation]:
    if not _switch(ctx, "requireCpuMemoryRequests"):
        return
    defaults = ctx.memo("workloads.limit_range_defaults", lambda: _limit_range_defaults(ctx))
    for template in gpu_templates(ctx):
        namespace_defaults = defaults.get(template.owner.namespace, set())
        for path, container in template.containers():
            missing = [
                r
                for r in ("cpu", "memory")
                if effective_request(container, r) is None and r not in namespace_defaults
            ]
            if missing:
                yield Violation(
                    template.owner,
                    f"container {container.get('name')!r} of a GPU pod has no {' or '.join(missing)} request",
                    path=(*path, "resources"),
                )


@rule(
    "gpu-workload-lands-on-nodepool",
    title="every GPU workload can land on a NodePool",
    area="gpu-workloads",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Karpenter launches a node only for a pod some NodePool can serve: the pod must tolerate the
    pool's taints (EKS's ExtendedResourceToleration adds `nvidia.com/gpu:NoSchedule` to pods requesting GPUs,
    policies/cluster.yaml eks.extendedResourceToleration), its nodeSelector and required node affinity must be
    compatible with the pool's requirements and labels (template.metadata.labels, requirements, and the
    well-known labels derived from the instance type: instance-type, -family, -category, -size, -gpu-count,
    -gpu-name, capacity-type; aws/karpenter-provider-aws pkg/providers/instancetype/types.go), and its
    requests must fit one allowed instance type within the pool's limits
    (https://karpenter.sh/docs/concepts/scheduling/). Otherwise the pod stays Pending forever. Modelled
    headroom: 7.5% VM memory overhead, kube-reserved for 110 pods, 100Mi eviction threshold; DaemonSet
    overhead is not subtracted. Skipped when the set has no NodePool; when the pod's node selection matches no
    NodePool of a partial set, its pool may live elsewhere and the pod is listed as not checked.""",
    fix="""Tolerate the pool's taints, select only labels the pool's nodes carry, and request no more than one
    allowed instance type provides (or add that instance type to the pool).""",
    sources=(
        "https://karpenter.sh/docs/concepts/scheduling/",
        "aws/karpenter-provider-aws pkg/providers/instancetype/types.go",
        "kubernetes/kubernetes plugin/pkg/admission/extendedresourcetoleration/admission.go",
    ),
)
def gpu_workload_lands_on_nodepool(ctx: CheckContext) -> Iterator[Violation]:
    if not nodepools(ctx):
        return
    for template in gpu_templates(ctx):
        if template.owner.kind == "DaemonSet":
            continue  # DaemonSets follow nodes, they do not cause Karpenter to launch any
        pod = placement_of(ctx, template)
        found = reachable(ctx, pod)
        shapes, why = found.shapes, found.why_not
        if shapes:
            continue
        message = f"no NodePool can run this GPU pod: {why[0] if why else 'no pools'}"
        if ctx.complete or any(selects(ctx, pool, pod) for pool in nodepools(ctx)):
            # The pod's node selection admits a pool of the set, which then refuses it (taints, requests) — or the
            # set is declared complete, so no pool elsewhere can take it.
            yield Violation(template.owner, message, path=template.spec_path, details=tuple(why))
        else:
            # No pool of the set matches the pod's node selection: it may be meant for one outside the set.
            yield from ctx.missing(template.owner, template.spec_path,
                                   f"{template.owner.ref}: the node selection of this GPU pod matches no NodePool "
                                   f"of the set ({'; '.join(why[:3])}); its NodePool may be outside the set")


@rule(
    "gpu-workloads-have-priority",
    title="GPU workloads set a priority class",
    area="gpu-workloads",
    rule_class=RuleClass.POLICY,
    rationale="""When GPU capacity is short (a surge, a spot reclaim, a pool at its limit), the scheduler
    preempts by priority: without a priorityClassName a model server has priority 0 (or the globalDefault) and
    competes blindly, so "priority-based allocation" to protect important workloads cannot happen
    (https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/). An organisation's choice:
    judged when sla.yaml `gpuWorkloads.requirePriorityClass` is on in the policy in force.""",
    fix="Set spec.template.spec.priorityClassName to a PriorityClass of the cluster.",
    sources=("https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/",),
)
def gpu_workloads_have_priority(ctx: CheckContext) -> Iterator[Violation]:
    if not _switch(ctx, "requirePriorityClass"):
        return
    for template in gpu_templates(ctx):
        if not template.spec.get("priorityClassName"):
            yield Violation(
                template.owner,
                f"GPU pod template sets no priorityClassName (gpuWorkloads.requirePriorityClass of "
                f"{policy_source(ctx, 'sla')})",
                path=template.spec_path,
            )


@rule(
    "priority-class-exists",
    title="GPU workloads name a PriorityClass that exists",
    area="gpu-workloads",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A priorityClassName that names no PriorityClass makes the API server reject every pod of the
    workload (Priority admission plugin: `no PriorityClass with name %v was found`); system-cluster-critical and
    system-node-critical always exist (https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-
    preemption/). A PriorityClass that is not in the set may be created elsewhere (a chart, the platform team):
    it is listed as not checked unless the set is declared complete.""",
    fix="Point spec.template.spec.priorityClassName at a PriorityClass that exists, or add that PriorityClass.",
    sources=(
        "https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/",
        "kubernetes/kubernetes plugin/pkg/admission/priority/admission.go",
    ),
)
def priority_class_exists(ctx: CheckContext) -> Iterator[Violation]:
    for template in gpu_templates(ctx):
        name = template.spec.get("priorityClassName")
        if not name or name in SYSTEM_PRIORITY_CLASSES or ctx.graph.get("PriorityClass", str(name)) is not None:
            continue
        yield from ctx.missing(
            template.owner, (*template.spec_path, "priorityClassName"),
            f"{template.owner.ref} priorityClassName {name!r}: no PriorityClass with name {name} is in the set")


# ----------------------------------------------------------------------------------------------------
# PodDisruptionBudgets
# ----------------------------------------------------------------------------------------------------
def min_replicas(ctx: CheckContext, workload: Document) -> int:
    """The fewest replicas the workload runs with: its autoscaler's minimum, else spec.replicas
    (default 1)."""

    def index() -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        for scaler in autoscalers(ctx):
            if scaler.target is not None:
                key = (scaler.target.kind, scaler.target.namespace, scaler.target.name)
                out[key] = min(out.get(key, scaler.hpa_min), scaler.hpa_min)
        return out

    minimums = ctx.memo("workloads.autoscaler_min", index)
    found = minimums.get((workload.kind, workload.namespace, workload.name))
    if found is not None:
        return found
    replicas = workload.spec.get("replicas", 1)
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1


def _scaled_value(value: Any, total: int) -> int | None:
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true), as the disruption controller
    uses."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return None
        return math.ceil(percent * total / 100)
    return None


@rule(
    "gpu-pdb-allows-eviction",
    title="PodDisruptionBudgets let Karpenter drain GPU nodes",
    area="gpu-workloads",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Karpenter drains a node through the Eviction API and never violates a PodDisruptionBudget; a
    PDB that allows zero disruptions keeps the node forever, so consolidation, drift and expiry never finish
    and the idle GPU node keeps billing (https://karpenter.sh/docs/concepts/disruption/, "Pod-Level Controls"
    / PDBs). At the workload's minimum (autoscaler minimum, else spec.replicas), a minAvailable >= that
    minimum, or maxUnavailable 0 / "0%", allow no eviction (percentages round up, kubernetes
    pkg/controller/disruption/disruption.go getExpectedScale / intstr.GetScaledValueFromIntOrPercent). A
    policy/v1 PDB with `selector: {}` covers every pod of its namespace; only an absent or null selector
    covers none (kubernetes/api policy/v1/types.go PodDisruptionBudgetSpec.Selector).""",
    fix="Use `maxUnavailable: 1` (or a minAvailable below the workload's minimum replicas), and scope the "
    "selector to the workload's pods.",
    sources=(
        "https://karpenter.sh/docs/concepts/disruption/",
        "kubernetes/kubernetes pkg/controller/disruption/disruption.go",
        "kubernetes/api policy/v1/types.go",
    ),
)
def gpu_pdb_allows_eviction(ctx: CheckContext) -> Iterator[Violation]:
    by_namespace: dict[str, list[PodTemplate]] = defaultdict(list)
    for template in gpu_templates(ctx):
        if template.owner.kind in SCALABLE_KINDS:
            by_namespace[template.owner.namespace].append(template)
    for pdb in ctx.graph.of_kind("PodDisruptionBudget"):
        selector = pdb.spec.get("selector")
        if not isinstance(selector, dict):
            continue  # absent or null: "A null selector will match no pods"
        if not selector and pdb.api_version == "policy/v1beta1":
            continue  # v1beta1 (removed in 1.25): an empty selector also selected nothing
        # policy/v1: "an empty ({}) selector will select all pods within the namespace" (kubernetes/api
        # policy/v1/types.go PodDisruptionBudgetSpec.Selector); `matches` treats {} as everything.
        for template in by_namespace.get(pdb.namespace, []):
            if not matches(selector, template.labels):
                continue
            replicas = min_replicas(ctx, template.owner)
            if replicas < 1:
                continue
            if "maxUnavailable" in pdb.spec:
                allowed = _scaled_value(pdb.spec["maxUnavailable"], replicas)
                field_name = "maxUnavailable"
            elif "minAvailable" in pdb.spec:
                needed = _scaled_value(pdb.spec["minAvailable"], replicas)
                allowed = None if needed is None else replicas - needed
                field_name = "minAvailable"
            else:
                continue
            if allowed is not None and allowed <= 0:
                yield Violation(
                    pdb,
                    f"{field_name} {pdb.spec[field_name]} allows no eviction of "
                    f"{template.owner.ref} at its minimum of {replicas} replica(s): Karpenter can "
                    f"never drain its GPU nodes",
                    path=("spec", field_name),
                    exemptible_by=(template.owner,),
                )


# ----------------------------------------------------------------------------------------------------
# Model size -> instance family
# ----------------------------------------------------------------------------------------------------
def families_for(guide: list[Mapping[str, Any]], billions: Decimal) -> list[str]:
    out: list[str] = []
    for entry in guide:
        low, high = entry.get("minBillions"), entry.get("maxBillions")
        if (low is None or billions >= Decimal(str(low))) and (
            high is None or billions <= Decimal(str(high))
        ):
            out.extend(str(f) for f in entry["instanceFamilies"])
    return out


@rule(
    "model-size-matches-instance-family",
    title="the model size runs on its instance family",
    area="gpu-workloads",
    rule_class=RuleClass.POLICY,
    rationale="""An organisation's instance selection guide (instance-types.yaml modelSizeGuide; the reference
    profile's: 70B+ on p5 (H100 80GB), 13B-70B on p4d (A100 40GB), up to 7B on g5 (A10G 24GB)); nothing is judged
    without one. A model on a smaller family does not
    fit in GPU memory (or runs with a tiny KV cache); one on a larger family wastes the most expensive GPUs. A
    workload declares its size with the label of modelSizeLabel (Deployment or pod template); at least one
    instance type its pods can land on (see "every GPU workload can land on a NodePool") must be of the guide's
    family. A size the guide does not cover (in the reference guide, between 7B and 13B) is reported
    too.""",
    fix="Constrain the pods (node affinity on karpenter.k8s.aws/instance-family) to the guide's family, or "
    "correct the label.",
    sources=("instance-types.yaml modelSizeGuide of the policy in force",),
)
def model_size_matches_instance_family(ctx: CheckContext) -> Iterator[Violation]:
    label = ctx.policy.instance_types.get("modelSizeLabel")
    guide = list(ctx.policy.instance_types.get("modelSizeGuide") or [])
    if not label or not guide or not nodepools(ctx):
        return  # an organisation's guide: judged only when the policy in force sets one
    label = str(label)
    source = f"modelSizeGuide of {policy_source(ctx, 'instance-types')}"
    for template in gpu_templates(ctx):
        value, path = workload_label(template.owner, label)
        if value is None:
            continue
        try:
            billions = Decimal(value)
        except ArithmeticError:
            yield Violation(template.owner, f"{label} is {value!r}, not a number of billions", path=path)
            continue
        families = families_for(guide, billions)
        if not families:
            yield Violation(
                template.owner, f"{label} is {value}: no entry of the {source} covers {value}B", path=path
            )
            continue
        shapes = reachable(ctx, placement_of(ctx, template)).shapes
        if not shapes:
            continue  # reported by gpu-workload-lands-on-nodepool
        reachable_types = sorted({s.instance_type or '' for s in shapes})
        if not any(s.family in families for s in shapes):
            yield Violation(
                template.owner,
                f"a {value}B model belongs on {'/'.join(families)} ({source}), but its pods can only "
                f"land on {', '.join(reachable_types)}",
                path=template.spec_path,
            )
