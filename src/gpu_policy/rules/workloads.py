"""GPU workloads: pod templates that request `nvidia.com/gpu` ask for it the way the API server accepts, can
be placed on a Karpenter NodePool, carry a priority, are not pinned by a PodDisruptionBudget, and run on the
instance
family their model size calls for (policies/instance-types.yaml)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.graph.scheduling import untolerated
from gpu_policy.graph.selectors import matches
from gpu_policy.graph.workloads import SCALABLE_KINDS, PodTemplate
from gpu_policy.loading.document import Document
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.keda import GPU_RESOURCE, autoscalers, workload_label
from gpu_policy.rules.registry import Violation, rule

SYSTEM_PRIORITY_CLASSES = frozenset({"system-cluster-critical", "system-node-critical"})
# EKS ExtendedResourceToleration admission plugin: what it adds to a pod requesting the resource
# (kubernetes plugin/pkg/admission/extendedresourcetoleration/admission.go).
EXTENDED_RESOURCE_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


# ----------------------------------------------------------------------------------------------------
# GPU pod templates and their resource requests
# ----------------------------------------------------------------------------------------------------
def _resources(container: Mapping[str, Any], section: str) -> dict[str, Any]:
    resources = container.get("resources")
    values = resources.get(section) if isinstance(resources, dict) else None
    return values if isinstance(values, dict) else {}


def effective_request(container: Mapping[str, Any], resource: str) -> Decimal | None:
    """The request the scheduler uses: the request, or the limit when only a limit is set (API defaulting)."""
    request = parse_quantity(_resources(container, "requests").get(resource))
    if request is not None:
        return request
    return parse_quantity(_resources(container, "limits").get(resource))


def pod_requests(template: PodTemplate) -> dict[str, Decimal]:
    """Pod-level requests as kube-scheduler computes them: sum of containers (+ restartable init containers),
    or the largest regular init container when larger (k8s.io/component-helpers resource/helpers.go)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, container in template.containers():
        for resource in ("cpu", "memory", GPU_RESOURCE):
            totals[resource] += effective_request(container, resource) or Decimal(0)
    init_max: dict[str, Decimal] = defaultdict(Decimal)
    for container in template.spec.get("initContainers") or []:
        if not isinstance(container, dict):
            continue
        for resource in ("cpu", "memory", GPU_RESOURCE):
            amount = effective_request(container, resource) or Decimal(0)
            if container.get("restartPolicy") == "Always":
                totals[resource] += amount  # sidecar: runs beside the app containers
            else:
                init_max[resource] = max(init_max[resource], amount)
    return {r: max(totals[r], init_max[r]) for r in ("cpu", "memory", GPU_RESOURCE)}


def is_gpu_template(template: PodTemplate) -> bool:
    for _, container in template.containers(include_init=True):
        for section in ("requests", "limits"):
            amount = parse_quantity(_resources(container, section).get(GPU_RESOURCE))
            if amount is not None and amount > 0:
                return True
    return False


def gpu_templates(ctx: CheckContext) -> list[PodTemplate]:
    return ctx.memo(
        "workloads.gpu_templates", lambda: [t for t in ctx.graph.pod_templates() if is_gpu_template(t)]
    )


@rule(
    "gpu-requests-equal-limits",
    title="GPU requests equal limits",
    area="gpu-workloads",
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
    rationale="""Karpenter sizes a node from the pods' requests (kubernetes-sigs/karpenter
    pkg/scheduling/requirements + pkg/utils/resources: only requests count) and the scheduler packs by
    requests: a GPU pod without cpu/memory requests is treated as needing none, gets packed next to others on
    a node whose CPU and memory it then starves (vLLM tokenization and KV-cache swap use host CPU and RAM),
    and is the first to be evicted under memory pressure (BestEffort/Burstable QoS). A LimitRange default in
    the namespace counts.""",
    fix="Give every container of the GPU pod cpu and memory requests (a limit alone also sets the request).",
    sources=(
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",
        "https://karpenter.sh/docs/concepts/scheduling/",
    ),
)
def gpu_containers_request_cpu_memory(ctx: CheckContext) -> Iterator[Violation]:
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


# ----------------------------------------------------------------------------------------------------
# NodePools: what nodes each pool can launch, as labels, taints and capacity
# ----------------------------------------------------------------------------------------------------
ANY = None
"""A label the node carries with a value we cannot predict (zone, hostname)."""
PossibleLabels = dict[str, frozenset[str] | None]
ALWAYS_PRESENT_UNKNOWN = (
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "kubernetes.io/hostname",
    "topology.k8s.aws/zone-id",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
)
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
# Karpenter v1 reserves 7.5% of an instance's memory for the hypervisor (settings vmMemoryOverheadPercent
# 0.075) and the AWS provider computes kube-reserved (CPU: 6% of the first core, 1% of the second, 0.5% of
# cores 3-4, 0.25% above; memory 11 MiB x maxPods + 255 MiB) plus the 100Mi hard eviction threshold
# (aws/karpenter-provider-aws pkg/providers/instancetype/types.go). maxPods is modelled as 110.
VM_MEMORY_OVERHEAD = Decimal("0.075")
MODELLED_MAX_PODS = 110
EVICTION_MEMORY_MIB = 100


def derived_labels(instance_type: str, facts: Mapping[str, Any]) -> dict[str, str]:
    """The well-known labels Karpenter puts on a node of this instance type (aws/karpenter-provider-aws
    pkg/providers/instancetype/types.go computeRequirements), from policies/instance-types.yaml facts."""
    family, _, size = instance_type.partition(".")
    category = re.match(r"[a-z]+", family)
    generation = re.search(r"[0-9]+", family)
    return {
        INSTANCE_TYPE_LABEL: instance_type,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-category": category.group() if category else family,
        "karpenter.k8s.aws/instance-generation": generation.group() if generation else "",
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-cpu": str(facts["vcpu"]),
        "karpenter.k8s.aws/instance-memory": str(int(facts["memoryGiB"]) * 1024),
        "karpenter.k8s.aws/instance-gpu-count": str(facts["gpuCount"]),
        "karpenter.k8s.aws/instance-gpu-name": str(facts["gpuModel"]).lower(),
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-memory": str(int(facts["gpuMemoryGiB"]) * 1024),
    }


def _expression_allows(
    possible: frozenset[str] | None, present: bool, expr: Mapping[str, Any]
) -> tuple[bool, bool, frozenset[str] | None]:
    """Narrow what a node may carry for one key under one NodeSelectorRequirement.

    Returns (satisfiable, present, narrowed values)."""
    operator = expr.get("operator")
    values = frozenset(str(v) for v in expr.get("values") or [])
    if operator == "In":
        if not present:
            return False, present, possible
        narrowed = values if possible is ANY else possible & values
        return bool(narrowed), present, narrowed
    if operator == "NotIn":
        if not present or possible is ANY:
            return True, present, possible
        narrowed = possible - values
        return bool(narrowed), present, narrowed
    if operator == "Exists":
        return present, present, possible
    if operator == "DoesNotExist":
        return not present, present, possible
    if operator in ("Gt", "Lt"):
        if not present:
            return False, present, possible
        if possible is ANY:
            return True, present, possible
        try:
            bound = int(next(iter(values)))
        except (StopIteration, ValueError):
            return False, present, possible
        kept = frozenset(
            v
            for v in possible
            if v.lstrip("-").isdigit() and (int(v) > bound if operator == "Gt" else int(v) < bound)
        )
        return bool(kept), present, kept
    return False, present, possible


def _term_satisfiable(labels: PossibleLabels, expressions: list[Mapping[str, Any]]) -> str | None:
    """None when one node with `labels` can satisfy every expression; else the first failing one."""
    narrowed: dict[str, frozenset[str] | None] = {}
    for expr in expressions:
        key = str(expr.get("key"))
        if key in narrowed:
            possible, present = narrowed[key], True
        elif key in labels:
            possible, present = labels[key], True
        elif key.startswith("karpenter.k8s.aws/") or key in ALWAYS_PRESENT_UNKNOWN:
            possible, present = (
                ANY,
                True,
            )  # a well-known label whose value is not modelled: assume it can match
        else:
            possible, present = ANY, False
        ok, present, value = _expression_allows(possible, present, expr)
        if not ok:
            shown = ",".join(str(v) for v in expr.get("values") or [])
            have = (
                "absent"
                if not present
                else ("any value" if possible is ANY else ",".join(sorted(possible or ())))
            )
            return f"{key} {expr.get('operator')} [{shown}] (node: {have})"
        if present:
            narrowed[key] = value
    return None


@dataclass
class NodeShape:
    """One kind of node a NodePool can launch: an instance type, with its possible labels, taints and room."""

    pool: Document
    instance_type: str
    labels: PossibleLabels
    taints: list[dict[str, Any]]
    cpu: Decimal
    memory: Decimal
    gpus: Decimal

    @property
    def family(self) -> str:
        return self.instance_type.partition(".")[0]


@dataclass
class PoolNodes:
    pool: Document
    shapes: list[NodeShape] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    """Why instance types fell out (unknown to policies/instance-types.yaml, over the pool's limits, ...)."""


def allocatable(facts: Mapping[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    """cpu cores, memory bytes and GPUs a pod can request on a fresh node of this type
    (see VM_MEMORY_OVERHEAD)."""
    cores = int(facts["vcpu"])
    reserved_milli = (
        60 + (10 if cores > 1 else 0) + 5 * max(0, min(cores, 4) - 2) + Decimal("2.5") * max(0, cores - 4)
    )
    cpu = Decimal(cores) - Decimal(reserved_milli) / 1000
    mib = Decimal(int(facts["memoryGiB"]) * 1024)
    memory_mib = mib * (1 - VM_MEMORY_OVERHEAD) - (11 * MODELLED_MAX_PODS + 255) - EVICTION_MEMORY_MIB
    return cpu, memory_mib * 2**20, Decimal(int(facts["gpuCount"]))


def _pool_nodes(ctx: CheckContext, pool: Document) -> PoolNodes:
    out = PoolNodes(pool)
    template_spec = pool.get(("spec", "template", "spec"))
    template_spec = template_spec if isinstance(template_spec, dict) else {}
    requirements = [r for r in template_spec.get("requirements") or [] if isinstance(r, dict)]
    template_labels = pool.get(("spec", "template", "metadata", "labels"))
    template_labels = template_labels if isinstance(template_labels, dict) else {}
    taints = [t for t in template_spec.get("taints") or [] if isinstance(t, dict)]
    limits = pool.get(("spec", "limits"))
    limits = limits if isinstance(limits, dict) else {}
    names = next(
        (
            r.get("values")
            for r in requirements
            if r.get("key") == INSTANCE_TYPE_LABEL and r.get("operator") == "In"
        ),
        None,
    )
    candidates = [str(n) for n in names] if names else list(ctx.policy.instance_types["instanceTypes"])
    for instance_type in candidates:
        facts = ctx.policy.instance(instance_type)
        if facts is None:
            out.excluded.append(f"{instance_type}: not in policies/instance-types.yaml (not modelled)")
            continue
        derived = derived_labels(instance_type, facts)
        labels: PossibleLabels = {k: frozenset({v}) for k, v in derived.items()}
        labels["karpenter.sh/nodepool"] = frozenset({pool.name})
        labels[CAPACITY_TYPE_LABEL] = frozenset({"on-demand"})  # Karpenter's default without a requirement
        for key, value in template_labels.items():
            labels[str(key)] = frozenset({str(value)})
        rejected = None
        for requirement in requirements:
            key = str(requirement.get("key"))
            if key in derived:
                if _term_satisfiable(labels, [requirement]) is not None:
                    operator = requirement.get("operator")
                    rejected = f"{instance_type}: excluded by the pool's requirement {key} {operator}"
                    break
                continue
            pinned_by_template = key in template_labels and key != CAPACITY_TYPE_LABEL
            if requirement.get("operator") == "In" and not pinned_by_template:
                labels[key] = frozenset(str(v) for v in requirement.get("values") or [])
            elif requirement.get("operator") == "Exists" and key not in labels:
                labels[key] = ANY
        if rejected:
            out.excluded.append(rejected)
            continue
        cpu, memory, gpus = allocatable(facts)
        over = [
            name
            for name, have in (
                ("cpu", Decimal(int(facts["vcpu"]))),
                ("memory", Decimal(int(facts["memoryGiB"])) * 2**30),
                (GPU_RESOURCE, gpus),
            )
            if (limit := parse_quantity(limits.get(name))) is not None and have > limit
        ]
        if over:
            out.excluded.append(f"{instance_type}: one node exceeds the pool's limits ({', '.join(over)})")
            continue
        out.shapes.append(NodeShape(pool, instance_type, labels, taints, cpu, memory, gpus))
    return out


def pool_nodes(ctx: CheckContext) -> list[PoolNodes]:
    def build() -> list[PoolNodes]:
        pools = [d for d in ctx.graph.of_kind("NodePool") if d.api_version.startswith("karpenter.sh/")]
        return [_pool_nodes(ctx, p) for p in pools]

    return ctx.memo("workloads.pool_nodes", build)


def _pod_tolerations(ctx: CheckContext, template: PodTemplate, requests: Mapping[str, Decimal]) -> list[Any]:
    tolerations = [t for t in template.spec.get("tolerations") or [] if isinstance(t, dict)]
    if requests.get(GPU_RESOURCE, Decimal(0)) > 0 and ctx.policy.cluster.get("eks", {}).get(
        "extendedResourceToleration"
    ):
        tolerations.append(EXTENDED_RESOURCE_TOLERATION)
    return tolerations


def _node_terms(template: PodTemplate) -> tuple[list[list[Mapping[str, Any]]], list[Mapping[str, Any]]]:
    """(required node-affinity terms, OR'ed; nodeSelector as In expressions, AND'ed with every term)."""
    selector = template.spec.get("nodeSelector")
    base: list[Mapping[str, Any]] = []
    if isinstance(selector, dict):
        base = [{"key": k, "operator": "In", "values": [str(v)]} for k, v in selector.items()]
    terms = template.spec.get("affinity", {}) if isinstance(template.spec.get("affinity"), dict) else {}
    required = (
        (terms.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(terms.get("nodeAffinity"), dict)
        else None
    )
    node_terms: list[list[Mapping[str, Any]]] = [
        [e for e in (t.get("matchExpressions") or []) if isinstance(e, dict)]
        for t in (required or {}).get("nodeSelectorTerms") or []
        if isinstance(t, dict)
    ]
    return (node_terms or [[]]), base


def shape_rejects(ctx: CheckContext, template: PodTemplate, shape: NodeShape) -> str | None:
    """Why a pod of `template` cannot run on a fresh node of `shape` (None when it can)."""
    requests = pod_requests(template)
    blocking = untolerated(_pod_tolerations(ctx, template, requests), shape.taints)
    if blocking:
        t = blocking[0]
        return f"untolerated taint {t.get('key')}={t.get('value', '')}:{t.get('effect')}"
    terms, base = _node_terms(template)
    reasons = [_term_satisfiable(shape.labels, [*base, *term]) for term in terms]
    if all(r is not None for r in reasons):
        return f"node selection does not match: {reasons[0]}"
    for name, want, have in (
        ("cpu", requests["cpu"], shape.cpu),
        ("memory", requests["memory"], shape.memory),
        (GPU_RESOURCE, requests[GPU_RESOURCE], shape.gpus),
    ):
        if want > have:
            unit = (lambda q: f"{q / 2**30:.1f}Gi") if name == "memory" else (lambda q: f"{q.normalize()}")
            return f"requests {unit(want)} {name}, {shape.instance_type} offers {unit(have)}"
    return None


def reachable_shapes(ctx: CheckContext, template: PodTemplate) -> tuple[list[NodeShape], list[str]]:
    key = f"workloads.reachable.{id(template.owner)}.{template.path}"

    def compute() -> tuple[list[NodeShape], list[str]]:
        ok: list[NodeShape] = []
        why: list[str] = []
        for pool in pool_nodes(ctx):
            reasons = []
            for shape in pool.shapes:
                reason = shape_rejects(ctx, template, shape)
                if reason is None:
                    ok.append(shape)
                else:
                    reasons.append(f"{shape.instance_type}: {reason}")
            if not any(s.pool is pool.pool for s in ok):
                detail = "; ".join(reasons + pool.excluded) or "no instance types"
                why.append(f"NodePool {pool.pool.name}: {detail}")
        return ok, why

    return ctx.memo(key, compute)


@rule(
    "gpu-workload-lands-on-nodepool",
    title="every GPU workload can land on a NodePool",
    area="gpu-workloads",
    rationale="""Karpenter launches a node only for a pod some NodePool can serve: the pod must tolerate the
    pool's taints (EKS's ExtendedResourceToleration adds `nvidia.com/gpu:NoSchedule` to pods requesting GPUs,
    policies/cluster.yaml eks.extendedResourceToleration), its nodeSelector and required node affinity must be
    compatible with the pool's requirements and labels (template.metadata.labels, requirements, and the
    well-known labels derived from the instance type: instance-type, -family, -category, -size, -gpu-count,
    -gpu-name, capacity-type; aws/karpenter-provider-aws pkg/providers/instancetype/types.go), and its
    requests must fit one allowed instance type within the pool's limits
    (https://karpenter.sh/docs/concepts/scheduling/). Otherwise the pod stays Pending forever. Modelled
    headroom: 7.5% VM memory overhead, kube-reserved for 110 pods, 100Mi eviction threshold; DaemonSet
    overhead is not subtracted. Skipped when the set has no NodePool.""",
    fix="""Tolerate the pool's taints, select only labels the pool's nodes carry, and request no more than one
    allowed instance type provides (or add that instance type to the pool).""",
    sources=(
        "https://karpenter.sh/docs/concepts/scheduling/",
        "aws/karpenter-provider-aws pkg/providers/instancetype/types.go",
        "kubernetes/kubernetes plugin/pkg/admission/extendedresourcetoleration/admission.go",
    ),
)
def gpu_workload_lands_on_nodepool(ctx: CheckContext) -> Iterator[Violation]:
    if not pool_nodes(ctx):
        return
    for template in gpu_templates(ctx):
        if template.owner.kind == "DaemonSet":
            continue  # DaemonSets follow nodes, they do not cause Karpenter to launch any
        shapes, why = reachable_shapes(ctx, template)
        if not shapes:
            yield Violation(
                template.owner,
                f"no NodePool can run this GPU pod: {why[0] if why else 'no pools'}",
                path=template.spec_path,
                details=tuple(why),
            )


@rule(
    "gpu-workloads-have-priority",
    title="GPU workloads set an existing priority class",
    area="gpu-workloads",
    rationale="""When GPU capacity is short (a surge, a spot reclaim, a pool at its limit), the scheduler
    preempts by priority: without a priorityClassName a model server has priority 0 (or the globalDefault) and
    competes blindly, so the seed's "Priority-based Allocation" to protect important workloads cannot happen.
    A priorityClassName that names no PriorityClass makes the API server reject every pod (Priority admission
    plugin: `no PriorityClass with name %v was found`); system-cluster-critical and system-node-critical
    always exist (https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/).""",
    fix="Set spec.template.spec.priorityClassName to a PriorityClass declared in the set.",
    sources=(
        "https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/",
        "kubernetes/kubernetes plugin/pkg/admission/priority/admission.go",
    ),
)
def gpu_workloads_have_priority(ctx: CheckContext) -> Iterator[Violation]:
    for template in gpu_templates(ctx):
        name = template.spec.get("priorityClassName")
        if not name:
            yield Violation(
                template.owner, "GPU pod template sets no priorityClassName", path=template.spec_path
            )
        elif name not in SYSTEM_PRIORITY_CLASSES and ctx.graph.get("PriorityClass", str(name)) is None:
            yield Violation(
                template.owner,
                f"priorityClassName {name!r}: no PriorityClass with name {name} was "
                f"found in the manifest set",
                path=(*template.spec_path, "priorityClassName"),
            )


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
    rationale="""Karpenter drains a node through the Eviction API and never violates a PodDisruptionBudget; a
    PDB that allows zero disruptions keeps the node forever, so consolidation, drift and expiry never finish
    and the idle GPU node keeps billing (https://karpenter.sh/docs/concepts/disruption/, "Pod-Level Controls"
    / PDBs). At the workload's minimum (autoscaler minimum, else spec.replicas), a minAvailable >= that
    minimum, or maxUnavailable 0 / "0%", allow no eviction (percentages round up, kubernetes
    pkg/controller/disruption/disruption.go getExpectedScale / intstr.GetScaledValueFromIntOrPercent).""",
    fix="Use `maxUnavailable: 1` (or a minAvailable below the workload's minimum replicas).",
    sources=(
        "https://karpenter.sh/docs/concepts/disruption/",
        "kubernetes/kubernetes pkg/controller/disruption/disruption.go",
    ),
)
def gpu_pdb_allows_eviction(ctx: CheckContext) -> Iterator[Violation]:
    by_namespace: dict[str, list[PodTemplate]] = defaultdict(list)
    for template in gpu_templates(ctx):
        if template.owner.kind in SCALABLE_KINDS:
            by_namespace[template.owner.namespace].append(template)
    for pdb in ctx.graph.of_kind("PodDisruptionBudget"):
        selector = pdb.spec.get("selector")
        if not isinstance(selector, dict) or not selector:
            continue  # policy/v1: an empty selector selects nothing
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
    rationale="""The seed's instance selection guide (policies/instance-types.yaml modelSizeGuide): 70B+ on p5
    (H100 80GB), 13B-70B on p4d (A100 40GB), up to 7B on g5 (A10G 24GB). A model on a smaller family does not
    fit in GPU memory (or runs with a tiny KV cache); one on a larger family wastes the most expensive GPUs. A
    workload declares its size with the label `gpu-policy.io/model-params-billions` (Deployment or pod
    template); at least one instance type its pods can land on (see "every GPU workload can land on a
    NodePool") must be of the guide's family. A size the guide does not cover (between 7B and 13B) is reported
    too.""",
    fix="Constrain the pods (node affinity on karpenter.k8s.aws/instance-family) to the guide's family, or "
    "correct the label.",
    sources=("policies/instance-types.yaml modelSizeGuide",),
)
def model_size_matches_instance_family(ctx: CheckContext) -> Iterator[Violation]:
    label = str(ctx.policy.instance_types["modelSizeLabel"])
    guide = list(ctx.policy.instance_types["modelSizeGuide"])
    if not pool_nodes(ctx):
        return
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
                template.owner, f"{label} is {value}: no modelSizeGuide entry covers {value}B", path=path
            )
            continue
        shapes, _ = reachable_shapes(ctx, template)
        if not shapes:
            continue  # reported by gpu-workload-lands-on-nodepool
        reachable = sorted({s.instance_type for s in shapes})
        if not any(s.family in families for s in shapes):
            yield Violation(
                template.owner,
                f"a {value}B model belongs on {'/'.join(families)}, but its pods can only "
                f"land on {', '.join(reachable)}",
                path=template.spec_path,
            )
