"""Drill `surge-capacity`: the surge's Karpenter half. Model A at the end of its surge (maxReplicaCount of its
ScaledObject; drill `surge` proves the real HPA gets there) has pods that no node can hold; the real Karpenter
(v1.14.1, kwok provider, on the testbed) launches NodeClaims for them of admissible GPU types only
(policies/instance-types.yaml allowedInstanceTypes, and the pool's own instance-type requirement), within the
NodePool's limits, and the real scheduler places every pod only where taints, tolerations and requirements allow.

Set-up (namespace `gpu-policy-drill-surge-capacity-<run>`): the drill's copy of every NodePool of the set
(nodepool_copy.py: kwok node class, own name, nothing else changed; Karpenter chooses among them by weight and
requirements as on EKS) and model A's Deployment (its PriorityClass) at maxReplicaCount, restricted to the copies by
one more matchExpression `karpenter.sh/nodepool In <copies>` in each of its required node-selector terms.

Judged once Karpenter has stopped launching (no new NodeClaim for `QUIET_SECONDS`) or every pod runs:
1. every NodeClaim's instance type is admissible and in its pool's requirement;
2. each pool's NodeClaims together stay within its `limits` (cpu, memory, nvidia.com/gpu; capacity as the kwok
   provider reports it, the catalogue's);
3. every pod runs: a pod still Pending means the limits (or the requirements) keep model A from its maximum, and
   the failure says which limit is exhausted;
4. every pod's node carries no taint the pod does not tolerate and satisfies the pod's required node affinity.
Not covered: model B giving GPUs back down to its SLA minimum (it needs the HPA scaling B down while A grows: the
scale-down drill shows the HPA half).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gpu_policy.drills.base import (
    DrillContext,
    DrillFailure,
    DrillResult,
    DrillSpec,
    DrillUnavailable,
    located,
)
from gpu_policy.drills.nodepool_copy import POOL_LABEL, claims, create_pool, pool_body
from gpu_policy.drills.spot_interruption import tolerates
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.loading.document import Document

LAUNCH_SECONDS = 240.0
QUIET_SECONDS = 30.0
MIN_WAIT_SECONDS = 60.0
"""Karpenter batches pending pods for 1-10 s and the kwok provider launches at once: a minute without a new
NodeClaim and with pods Pending means it will launch no more."""
POLL_SECONDS = 1.0
TIMEOUT = (5, 30)
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LIMITED = ("nvidia.com/gpu", "cpu", "memory")


def type_capacity(instance_type: str) -> dict[str, float]:
    """An instance type's cpu, memory (bytes) and GPUs from the bundled catalogue (what the testbed's kwok instance
    types are generated from, testbed/karpenter.py)."""
    from gpu_policy.graph.nodes.catalogue import catalogue

    facts = catalogue().types.get(instance_type) or {}
    return {"cpu": float(facts.get("vcpu", 0)), "memory": float(facts.get("memoryMiB", 0)) * 2**20,
            "nvidia.com/gpu": float(facts.get("gpuCount", 0))}


def type_labels(instance_type: str) -> dict[str, str]:
    from gpu_policy.graph.nodes.catalogue import catalogue
    from gpu_policy.testbed.nodes import NodeSpecError, instance_labels

    try:
        labels = instance_labels(instance_type, catalogue().types.get(instance_type) or {})
    except (NodeSpecError, KeyError):
        labels = {}
    return {**labels, INSTANCE_TYPE: instance_type}


def _show(resource: str, value: float) -> str:
    return f"{value / 2**30:g}Gi" if resource == "memory" else f"{value:g}"


def _requirement_values(pool: Document, key: str) -> tuple[int, list[str]] | None:
    for i, req in enumerate(((pool.spec or {}).get("template") or {}).get("spec", {}).get("requirements") or []):
        if req.get("key") == key and req.get("operator") == "In":
            return i, [str(v) for v in req.get("values") or []]
    return None


def restrict_to_pools(template: dict[str, Any], pools: list[str]) -> None:
    """Add `karpenter.sh/nodepool In pools` to every required node-selector term (terms are ORed, expressions
    ANDed), or one term holding only it."""
    spec = template.setdefault("spec", {})
    required = (spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
                .setdefault("requiredDuringSchedulingIgnoredDuringExecution", {}))
    terms = required.setdefault("nodeSelectorTerms", []) or [{}]
    expression = {"key": POOL_LABEL, "operator": "In", "values": pools}
    for term in terms:
        term.setdefault("matchExpressions", []).append(dict(expression))
    required["nodeSelectorTerms"] = terms


def _matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """k8s.io/component-helpers nodeaffinity: In, NotIn, Exists, DoesNotExist, Gt, Lt on a node's labels."""
    key, operator = expression.get("key"), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    value = labels.get(str(key))
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def _affinity_ok(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    return not terms or any(all(_matches(e, labels) for e in t.get("matchExpressions") or []) for t in terms)


def run(ctx: DrillContext) -> DrillResult:
    from kubernetes import client as k8s

    from gpu_policy.drills.replay import (
        drill_namespace,
        ensure_priority_class,
        kubernetes_api,
        model_a,
        pod_lister,
        workload_copy,
    )
    from gpu_policy.policy.loader import PolicySet

    policies = PolicySet.load()
    admissible = set(policies.instance_types.get("allowedInstanceTypes") or [])
    so, model, deployment = model_a(ctx, "surge")
    replicas = model.max_replicas
    pools = {p.name: p for p in ctx.graph.of_kind("NodePool")}
    if not pools:
        raise DrillFailure("the manifests", "no NodePool", "nothing would launch GPU nodes for the surge",
                           "deploy the reference NodePools (manifests/karpenter/nodepools.yaml)")
    api = kubernetes_api(ctx)
    copies: dict[str, Document] = {}
    for doc in pools.values():
        copies[create_pool(ctx, api, pool_body(ctx, doc))] = doc
    namespace = drill_namespace(ctx, api)  # after the pools: cleanup removes the pods before the pools' nodes
    ensure_priority_class(ctx, api, (deployment.spec or {}).get("template") or {})
    body: Any = workload_copy(ctx, deployment, namespace, replicas=replicas,
                              pin=lambda t: restrict_to_pools(t, sorted(copies)))
    template = body["spec"]["template"]
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body, _request_timeout=TIMEOUT)
    ctx.say(f"{deployment.name} at maxReplicaCount {replicas} of {so.ref}; NodePools {', '.join(sorted(copies))} "
            "(the set's, kwok node class)")
    core: Any = k8s.CoreV1Api(api)
    pods = pod_lister(api, namespace, deployment)

    def all_claims() -> list[dict[str, Any]]:
        return [c for name in copies for c in claims(api, name)]

    started = time.monotonic()
    state = {"count": -1, "changed": started}

    def settled() -> bool:
        running = [p for p in pods() if (p.get("status") or {}).get("phase") == "Running"]
        count = len(all_claims())
        if count != state["count"]:
            state.update(count=count, changed=time.monotonic())
        quiet = time.monotonic() - state["changed"] > QUIET_SECONDS
        return len(running) >= replicas or (quiet and time.monotonic() - started > MIN_WAIT_SECONDS)

    ctx.poll(settled, "waiting for Karpenter to launch capacity for model A", within=LAUNCH_SECONDS,
             on_expiry=lambda: DrillFailure(located(deployment), f"Karpenter launched no NodeClaim within "
                                            f"{LAUNCH_SECONDS:.0f} s for {replicas} pending model A pods",
                                            "no NodePool of the set admits them",
                                            "check the pools' requirements and taints against model A's pods"))
    result = DrillResult()
    result.numbers["settled_s"] = round(time.monotonic() - started, 1)
    launched = all_claims()
    used: dict[str, dict[str, float]] = {}
    for claim in launched:
        pool_name = claim["metadata"]["labels"].get(POOL_LABEL, "")
        doc = copies[pool_name]
        kind = claim["metadata"]["labels"].get(INSTANCE_TYPE, "?")
        listed = _requirement_values(doc, INSTANCE_TYPE)
        if kind not in admissible:
            path: tuple[str | int, ...] = ("spec", "template", "spec", "requirements", listed[0]) if listed else (
                "spec", "template", "spec", "requirements")
            raise DrillFailure(located(doc, path), f"Karpenter launched a {kind} for model A's surge",
                               f"{kind} is not among policies/instance-types.yaml allowedInstanceTypes "
                               f"({', '.join(sorted(admissible))})",
                               f"list only admissible types under {INSTANCE_TYPE}")
        if listed and kind not in listed[1]:
            raise DrillFailure(located(doc), f"Karpenter launched a {kind}, outside the pool's instance types",
                               "Karpenter must honour the NodePool's requirements", "report it to Karpenter")
        # the type's real capacity: the kwok provider gives a node the NodeClaim's requests as capacity
        # (kwok/cloudprovider/cloudprovider.go toNode), not the instance type's
        totals = used.setdefault(pool_name, {})
        for resource, value in type_capacity(kind).items():
            totals[resource] = totals.get(resource, 0.0) + value
    for pool_name, totals in used.items():
        doc = copies[pool_name]
        limits = (doc.spec or {}).get("limits") or {}
        for resource, value in totals.items():
            if resource in limits and value > float(parse_quantity(str(limits[resource])) or 0.0):
                raise DrillUnavailable(
                    f"drill surge-capacity: {located(doc)}'s NodeClaims hold {value:g} {resource}, over its limit "
                    f"{limits[resource]}: on kwok a node's capacity is its NodeClaim's requests (kwok/cloudprovider/"
                    "cloudprovider.go toNode), so Karpenter undercounts the pool's existing nodes against the limits "
                    "in a later provisioning batch; the limits cannot be judged on this testbed")
    current = pods()
    pending = [p for p in current if (p.get("status") or {}).get("phase") != "Running"]
    if pending:
        raise _pending_failure(deployment, so, copies, used, pending[0], len(pending), replicas)
    nodes = {n["metadata"]["name"]: n for n in api.sanitize_for_serialization(
        core.list_node(_request_timeout=TIMEOUT)).get("items", [])}
    tolerations = (template.get("spec") or {}).get("tolerations") or []
    for pod in current:
        node = nodes.get(pod["spec"].get("nodeName"), {})
        labels = (node.get("metadata") or {}).get("labels") or {}
        bad = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
               and not tolerates(tolerations, t)]
        if bad or not _affinity_ok(pod, labels):
            raise DrillFailure(located(deployment), f"pod {pod['metadata']['name']} runs on "
                               f"{pod['spec'].get('nodeName')}, which it does not admit",
                               f"untolerated taints {bad}" if bad else "its required node affinity does not match",
                               "report it: the scheduler must not place it there")
    kinds = sorted({f"{c['metadata']['labels'].get(INSTANCE_TYPE)}/{c['metadata']['labels'].get(POOL_LABEL)}"
                    for c in launched})
    gpus = sum(t.get("nvidia.com/gpu", 0.0) for t in used.values())
    result.numbers.update(nodeclaims=len(launched), gpus=gpus, pods_running=len(current))
    result.observations.append(
        f"{len(launched)} NodeClaim(s) ({', '.join(kinds)}, {gpus:g} GPUs) for {replicas} model A pods in "
        f"{result.numbers['settled_s']:.0f} s; all admissible, within the pools' limits; every pod running on a "
        "node it admits")
    ctx.say(result.observations[-1])
    return result


def _usable_types(doc: Document, pod: Mapping[str, Any]) -> list[str]:
    """The pool's listed instance types on which the pod's node selector and required affinity can hold (for some
    capacity type the pool offers)."""
    listed = _requirement_values(doc, INSTANCE_TYPE)
    capacity = _requirement_values(doc, "karpenter.sh/capacity-type")
    out = []
    for kind in listed[1] if listed else []:
        for capacity_type in capacity[1] if capacity else ["on-demand", "spot"]:
            labels = {**type_labels(kind), "karpenter.sh/capacity-type": capacity_type, "kubernetes.io/arch": "amd64",
                      "kubernetes.io/os": "linux", POOL_LABEL: str(pod["_pool"])}
            if _affinity_ok(pod, labels):
                out.append(kind)
                break
    return out


def _pending_failure(deployment: Document, so: Document, copies: dict[str, Document], used: dict[str, dict[str, float]],
                     pod: dict[str, Any], pending: int, replicas: int) -> DrillFailure:
    what = (f"{pending} of model A's {replicas} pods (maxReplicaCount of {so.ref}) still Pending after Karpenter "
            "stopped launching")
    for pool_name, doc in copies.items():
        limits = (doc.spec or {}).get("limits") or {}
        types = _usable_types(doc, {**pod, "_pool": pool_name})
        if not types:
            continue
        in_use = used.get(pool_name, {})
        for resource, limit_text in limits.items():
            limit = float(parse_quantity(str(limit_text)) or 0.0)
            smallest = min(type_capacity(t).get(resource, 0.0) for t in types)
            if resource in LIMITED and in_use.get(resource, 0.0) + smallest > limit:
                return DrillFailure(
                    located(doc, ("spec", "limits", resource)), what,
                    f"its limit {resource}: {limit_text} leaves no room for one more node model A can use "
                    f"({', '.join(types)}: {_show(resource, smallest)} each, "
                    f"{_show(resource, in_use.get(resource, 0.0))} in use), so the surge cannot reach its maximum",
                    f"raise {resource} so that the limits allow maxReplicaCount (the limits must be mutually "
                    "reachable: gpu-policy check, nodepool-limits-reachable)")
    return DrillFailure(located(deployment), what, "no NodePool of the set can launch a node they fit",
                        "check the pools' requirements and taints against model A's pods")


SPEC = DrillSpec(
    name="surge-capacity",
    title="Model A's surge gets GPU nodes of admissible types only, within the NodePool limits, where its pods fit",
    summary="model A at maxReplicaCount 10: Karpenter launches p4d.24xlarge NodeClaims (admissible, in the pool's "
    "list) within the pools' limits; every pod runs on a node whose taints and labels it admits",
    duration_seconds=45,
    timeout_seconds=600,
    needs=("testbed", "karpenter"),
    run=run,
    variants=("surge-capacity-limits-too-low",),
)
