"""Spot capacity: pods meant for spot can land there, leave within the 2-minute notice, and keep no state.

Where a pod can run is decided by the shared node model (`gpu_policy.graph.nodes`), as Karpenter and
kube-scheduler decide it: the pod must tolerate a pool's NoSchedule and NoExecute taints, and its nodeSelector
/ required node affinity must be compatible with the labels of some node the pool can launch (an undefined
well-known label is compatible, an undefined custom label is not; kubernetes-sigs/karpenter
pkg/scheduling/requirements.go `Compatible`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gpu_policy.graph.nodes.labels import CAPACITY_TYPE, GPU_RESOURCE
from gpu_policy.graph.nodes.model import extended_resource_toleration, nodepools, placements, selects
from gpu_policy.graph.nodes.placement import Placement, allowed_capacity_types, taint_text
from gpu_policy.graph.nodes.pools import NodePool
from gpu_policy.graph.scheduling import tolerates, untolerated
from gpu_policy.loading.document import FieldPath
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.karpenter import policy_source
from gpu_policy.rules.registry import RuleClass, Violation, rule

DEFAULT_GRACE_SECONDS = 30  # core/v1 PodSpec.terminationGracePeriodSeconds default
_SLEEP = re.compile(r"(?<![\w-])sleep\s+(\d+(?:\.\d+)?)([smhd]?)(?![\w.])")
_SLEEP_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
ERT_SOURCE = "kubernetes/kubernetes plugin/pkg/admission/extendedresourcetoleration/admission.go"
POD_TERMINATION_DOC = "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination"


CONVENTIONAL_SPOT_TAINT = {"key": CAPACITY_TYPE, "value": "spot", "effect": "NoSchedule"}
"""The taint Karpenter's docs use for spot pools (karpenter.sh/docs/concepts/scheduling/#taints-and-tolerations);
only used to read a pod's intent (it tolerates spot), never to judge a pool."""


def capacity_type_taint(ctx: CheckContext) -> dict[str, Any] | None:
    """The capacity-type taint the policy in force requires of spot pools (spot.yaml capacityTypeTaint), if any."""
    taint = ctx.policy.spot.get("capacityTypeTaint")
    return dict(taint) if isinstance(taint, Mapping) else None


def intent_taint(ctx: CheckContext) -> dict[str, Any]:
    """The taint whose toleration says "this pod is meant for spot": the policy's, else the conventional one."""
    return capacity_type_taint(ctx) or dict(CONVENTIONAL_SPOT_TAINT)


def requires_spot(ctx: CheckContext, pod: Placement, pools: list[NodePool]) -> bool:
    """The pod can only run on spot: it selects capacity-type spot, or every pool its selection admits is
    spot-only."""
    if allowed_capacity_types(pod) == frozenset({"spot"}):
        return True
    if not pod.constrained:
        return False
    matching = [p for p in pools if selects(ctx, p, pod)]
    return bool(matching) and all(p.spot_only for p in matching)


def spot_pools_running(ctx: CheckContext, pod: Placement) -> list[NodePool]:
    """Pools whose spot capacity this pod can be placed on (taints tolerated, selection and capacity type
    compatible)."""
    if "spot" not in allowed_capacity_types(pod):
        return []
    tolerations = pod.effective_tolerations(extended_resource_toleration(ctx))
    return [p for p in nodepools(ctx)
            if p.spot_capable and selects(ctx, p, pod) and not untolerated(tolerations, p.taints)]


def meant_for_spot(ctx: CheckContext, pod: Placement) -> bool:
    return requires_spot(ctx, pod, nodepools(ctx)) or tolerates(pod.tolerations, intent_taint(ctx))


def runs_on_spot(ctx: CheckContext, pod: Placement) -> tuple[bool, str]:
    """Whether the pod may run on spot capacity, and why (for messages)."""
    if requires_spot(ctx, pod, nodepools(ctx)):
        return True, "it selects spot capacity"
    running = spot_pools_running(ctx, pod)
    if running:
        return True, ("it can be placed on spot capacity of NodePool "
                      + ", ".join(f"{p.name} (capacity types {', '.join(sorted(p.capacity_types))})"
                                  for p in running))
    taint = intent_taint(ctx)
    if tolerates(pod.tolerations, taint):
        return True, f"it tolerates the {taint['key']}={taint['value']} taint"
    return False, ""


# -- rules
# ---------------------------------------------------------------------------------------------------------
@rule(
    "spot-pool-taints-capacity-type",
    title="spot pools carry the capacity-type taint of the spot policy",
    area="spot",
    rule_class=RuleClass.POLICY,
    rationale="""When the policy in force sets spot.yaml capacityTypeTaint (e.g.
    `karpenter.sh/capacity-type=spot:NoSchedule`), a spot-only NodePool must taint its nodes with it, so that only
    workloads that accept a 2-minute reclaim land there; Karpenter copies the taints of spec.template.spec.taints
    onto every node (kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go). Nothing is judged without it.""",
    fix="Add the capacity-type taint of spot.yaml capacityTypeTaint to spec.template.spec.taints.",
    sources=("kubernetes-sigs/karpenter pkg/apis/v1/nodepool.go",
             "https://karpenter.sh/docs/concepts/nodepools/#spectemplatespectaints"),
)
def spot_pool_taints_capacity_type(ctx: CheckContext) -> Iterator[Violation]:
    taint = capacity_type_taint(ctx)
    if taint is None:
        return
    for pool in nodepools(ctx):
        if not pool.spot_only:
            continue
        if any(t.get("key") == taint["key"] and str(t.get("value") or "") == taint["value"]
               and t.get("effect") == taint["effect"] for t in pool.taints):
            continue
        yield Violation(pool.doc, f"spot NodePool {pool.name} does not taint its nodes {taint_text(taint)} "
                                  f"(capacityTypeTaint of {policy_source(ctx, 'spot')})",
                        path=("spec", "template", "spec", "taints") if pool.taints
                        else ("spec", "template", "spec"))


@rule(
    "spot-pods-tolerate-capacity-type-taint",
    title="spot pods tolerate the capacity-type taint",
    area="spot",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A pod that can only run on spot (nodeSelector / required affinity
    `karpenter.sh/capacity-type: spot`, or selecting only spot-only NodePools) must tolerate the
    `karpenter.sh/capacity-type` taint of the spot pools it selects: Karpenter does not use a NodePool whose
    taints the pod does not tolerate (https://karpenter.sh/docs/concepts/nodepools/), so the pod never reaches
    that pool — it stays Pending, or lands on the spot capacity of a mixed on-demand+spot pool instead. When
    the set holds no spot pool, the taint of spot.yaml capacityTypeTaint is required if the policy in force sets
    one (otherwise the spot pools are elsewhere and nothing is judged).""",
    fix="Add a toleration {key: karpenter.sh/capacity-type, operator: Equal, value: spot, effect: NoSchedule}.",
    sources=("https://karpenter.sh/docs/concepts/scheduling/#taints-and-tolerations",
             "kubernetes-sigs/karpenter pkg/scheduling/taints.go"),
)
def spot_pods_tolerate_capacity_type_taint(ctx: CheckContext) -> Iterator[Violation]:
    pools = nodepools(ctx)
    for pod in placements(ctx):
        if not requires_spot(ctx, pod, pools):
            continue
        selected = [p for p in pools if p.spot_capable and selects(ctx, p, pod)]
        tainted = [(p, [t for t in p.taints if t.get("key") == CAPACITY_TYPE]) for p in selected]
        missing_by_pool: list[tuple[NodePool | None, list[Mapping[str, Any]]]] = [
            (p, untolerated(pod.tolerations, taints)) for p, taints in tainted if taints]
        if not selected:
            taint = capacity_type_taint(ctx)
            if taint is None:
                continue
            missing_by_pool = [(None, untolerated(pod.tolerations, [taint]))]
        for pool, missing in missing_by_pool:
            if not missing:
                continue
            where = f"NodePool {pool.name}" if pool is not None else \
                f"capacityTypeTaint of {policy_source(ctx, 'spot')}"
            yield Violation(pod.template.owner,
                            f"{pod.template.owner.ref} can only run on spot but does not tolerate "
                            f"{', '.join(sorted({taint_text(t) for t in missing}))} of {where}: it never "
                            f"reaches that capacity",
                            path=pod.path("tolerations") if pod.tolerations else pod.path())


@rule(
    "spot-pods-tolerate-gpu-taint",
    title="spot pods tolerate the GPU taint of their spot pool",
    area="spot",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The spot GPU pool taints its nodes `nvidia.com/gpu` as well as `karpenter.sh/capacity-type`;
    a pod meant for spot (it selects spot or tolerates the capacity-type taint) must tolerate both, or no pool
    admits it. On EKS the ExtendedResourceToleration admission plugin adds {nvidia.com/gpu, Exists,
    NoSchedule} — but only to pods that REQUEST nvidia.com/gpu, only for NoSchedule taints, and only when
    policies/cluster.yaml eks.extendedResourceToleration is true (kubernetes/kubernetes
    plugin/pkg/admission/extendedresourcetoleration/admission.go). The seed's model-serving-spot tolerates
    only the capacity-type taint and requests no GPU, so it fails under either profile.""",
    fix="Add a toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} (and request "
        "nvidia.com/gpu if the pod serves a model on the GPU).",
    sources=(ERT_SOURCE, "https://docs.aws.amazon.com/eks/latest/userguide/platform-versions.html"),
)
def spot_pods_tolerate_gpu_taint(ctx: CheckContext) -> Iterator[Violation]:
    ert = extended_resource_toleration(ctx)
    for pod in placements(ctx):
        if not meant_for_spot(ctx, pod):
            continue
        tolerations = pod.effective_tolerations(extended_resource_toleration(ctx))
        blocked: list[tuple[NodePool, list[Mapping[str, Any]]]] = []
        for pool in nodepools(ctx):
            if not (pool.gpu and pool.spot_capable and selects(ctx, pool, pod)):
                continue
            gpu_taints = [t for _, t in pool.gpu_taints()]
            others = [t for t in pool.taints if t.get("key") != GPU_RESOURCE]
            if untolerated(tolerations, others):
                continue  # the pod is not meant for this pool at all
            missing = untolerated(tolerations, gpu_taints)
            if missing:
                blocked.append((pool, missing))
        if not blocked:
            continue
        if GPU_RESOURCE not in pod.extended_resources:
            why = "it requests no nvidia.com/gpu, so ExtendedResourceToleration adds no toleration"
        elif not ert:
            why = "eks.extendedResourceToleration is off in policies/cluster.yaml"
        else:
            why = "ExtendedResourceToleration covers only NoSchedule"
        pools_text = "; ".join(f"{p.name}: {', '.join(sorted({taint_text(t) for t in m}))}"
                               for p, m in blocked)
        yield Violation(pod.template.owner,
                        f"{pod.template.owner.ref} is meant for spot but does not tolerate the GPU taint of its "
                        f"spot-capable pool(s) ({pools_text}); {why}",
                        path=pod.path("tolerations") if pod.tolerations else pod.path())


def prestop_seconds(container: Mapping[str, Any]) -> tuple[float | None, FieldPath]:
    """Seconds a container's preStop hook takes: the `sleep` action, or the `sleep N` commands of an exec hook
    (summed); None when it cannot be read (httpGet, or an exec without sleep)."""
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if not isinstance(pre_stop, Mapping):
        return None, ()
    sleep_action = pre_stop.get("sleep")
    if isinstance(sleep_action, Mapping) and isinstance(sleep_action.get("seconds"), int):
        return float(sleep_action["seconds"]), ("lifecycle", "preStop", "sleep", "seconds")
    exec_action = pre_stop.get("exec")
    command = exec_action.get("command") if isinstance(exec_action, Mapping) else None
    if isinstance(command, list):
        text = "\n".join(str(part) for part in command)
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        sleeps = [float(n) * _SLEEP_UNITS[unit] for n, unit in _SLEEP.findall(text)]
        if sleeps:
            return sum(sleeps), ("lifecycle", "preStop", "exec", "command")
    return None, ()


@rule(
    "spot-graceful-shutdown-fits-notice",
    title="spot pods shut down within the 2-minute interruption notice",
    area="spot",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""EC2 reclaims a spot instance two minutes after its interruption notice (spot.yaml
    interruptionNoticeSeconds; Karpenter drains the node on the notice only when its interruption queue is
    configured). The pod's terminationGracePeriodSeconds (default 30) counts from the start of deletion and
    INCLUDES the preStop hook; SIGTERM is sent only when preStop returns and the container is killed when the
    grace period ends (kubelet grants a one-off 2 s extension to an unfinished preStop). So the grace period
    must fit the notice, and the preStop must finish strictly inside the grace period, leaving the server time
    to handle SIGTERM. preStop time is read from the `sleep` action or the `sleep N` commands of an exec hook;
    other hooks are not timed. Applies to every pod that may run on spot capacity.""",
    fix="Set terminationGracePeriodSeconds <= 120 and keep the preStop sleep below it (e.g. 120 and sleep 90).",
    sources=(POD_TERMINATION_DOC, "https://karpenter.sh/docs/concepts/disruption/#interruption",
             "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html"),
)
def spot_graceful_shutdown_fits_notice(ctx: CheckContext) -> Iterator[Violation]:
    notice = int(ctx.policy.spot["interruptionNoticeSeconds"])
    for pod in placements(ctx):
        on_spot, why = runs_on_spot(ctx, pod)
        if not on_spot:
            continue
        raw_grace = pod.template.spec.get("terminationGracePeriodSeconds")
        grace = raw_grace if isinstance(raw_grace, int) and not isinstance(raw_grace, bool) \
            else DEFAULT_GRACE_SECONDS
        owner = pod.template.owner
        if grace > notice:
            yield Violation(owner, f"{owner.ref} runs on spot ({why}) with terminationGracePeriodSeconds {grace}, "
                                   f"longer than the {notice}s interruption notice: the instance is gone before "
                                   f"the pod finishes", path=pod.path("terminationGracePeriodSeconds"))
            continue
        for path, container in pod.template.containers():
            seconds, where = prestop_seconds(container)
            if seconds is not None and seconds >= grace:
                said = "default " if raw_grace is None else ""
                yield Violation(owner, f"{owner.ref} container {container.get('name')}: preStop sleeps "
                                       f"{seconds:g}s, not less than the {said}terminationGracePeriodSeconds "
                                       f"{grace}; the container is killed before it handles SIGTERM ({why})",
                                path=(*path, *where))


def _keeps_state(ctx: CheckContext, pod: Placement) -> str | None:
    owner = pod.template.owner
    if owner.kind in (ctx.policy.spot.get("statefulKinds") or ()):
        return f"it is a {owner.kind}"
    claims = [str(v.get("name")) for v in pod.template.spec.get("volumes") or []
              if isinstance(v, Mapping) and isinstance(v.get("persistentVolumeClaim"), Mapping)]
    if claims:
        return f"it mounts PersistentVolumeClaim volume(s) {', '.join(claims)}"
    return None


@rule(
    "spot-runs-stateless-workloads",
    title="only stateless workloads run on spot",
    area="spot",
    rule_class=RuleClass.POLICY,
    rationale="""A spot node disappears two minutes after its notice. When the policy in force sets spot.yaml
    statefulKinds, a pod of those kinds or a pod with a PersistentVolumeClaim loses its identity or has to
    re-attach its volume on another node — EBS volumes are zonal and detach slowly — so it must not run on
    spot. Counts every pod that may land on spot capacity: it selects spot, tolerates the capacity-type
    taint, or a NodePool offering spot (also a mixed on-demand+spot pool, where Karpenter prefers spot) admits it.""",
    fix="Pin the workload to on-demand capacity (nodeSelector karpenter.sh/capacity-type: on-demand) and drop the "
        "spot toleration, or make it stateless.",
    sources=("https://karpenter.sh/docs/concepts/disruption/#interruption",
             "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-best-practices.html"),
)
def spot_runs_stateless_workloads(ctx: CheckContext) -> Iterator[Violation]:
    if not ctx.policy.spot.get("statefulKinds"):
        return  # an organisation's choice: judged when spot.yaml statefulKinds is set
    for pod in placements(ctx):
        state = _keeps_state(ctx, pod)
        if state is None:
            continue
        on_spot, why = runs_on_spot(ctx, pod)
        if on_spot:
            owner = pod.template.owner
            yield Violation(owner, f"{owner.ref} keeps state ({state}; statefulKinds of "
                                   f"{policy_source(ctx, 'spot')}) but may run on spot: {why}",
                            path=pod.path("tolerations") if pod.tolerations else pod.path())
