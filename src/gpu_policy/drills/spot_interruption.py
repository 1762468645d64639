"""Drill `spot-interruption`: the spot nodes of the spot-tolerant model server are interrupted; the real Karpenter
(v1.14.1, kwok provider, on the testbed) drains them through the eviction API, the pods go within their grace
period and inside EC2's notice, reschedule on new spot capacity, and serving replicas never drop below the
PodDisruptionBudget/SLA minimum.

What an interruption is here: on EKS, EC2's two-minute spot interruption warning reaches Karpenter through its SQS
interruption queue, and the AWS provider's interruption controller answers a `spot_interrupted` message with
`CordonAndDrain`, which is a delete of the node's NodeClaim (aws/karpenter-provider-aws v1.14.1
pkg/controllers/interruption/utils.go: `actionForMessage` maps SpotInterruptionKind to CordonAndDrain,
`handleNodeClaim` calls `deleteNodeClaim`, `kubeClient.Delete(ctx, nodeClaim)`). The kwok provider has no queue,
so the drill makes that same delete. From there everything is Karpenter core's: the NodeClaim's termination
finalizer deletes the node, the node termination controller taints it `karpenter.sh/disrupted:NoSchedule` and
evicts its pods through the eviction API, retrying a 429 (a PodDisruptionBudget refusing) until the budget allows
(sigs.k8s.io/karpenter v1.14.1 pkg/controllers/node/termination/terminator/eviction.go), and the provisioner
launches capacity for the evicted pods. Not reproduced: the AWS handler also marks the interrupted spot offering
(type, zone) unavailable for a while (`markUnavailableOfferings`), so on AWS the replacement avoids it; kwok offers
it again. EC2 reclaims the instance at the end of the notice whatever the drain's state: the drill requires the
drain to be over within policies/spot.yaml interruptionNoticeSeconds (120 s) for that reason.

Set-up (namespace `gpu-policy-drill-spot-interruption-<run>`): the drill's copy of the set's gpu-spot-pool
(nodepool_copy.py: kwok node class, own name, nothing else changed), the set's model-serving-spot Deployment, its
PriorityClass and PodDisruptionBudget, pinned to the copy. Every spot node hosting a replica is interrupted at the
same instant, as when EC2 reclaims a capacity pool: the case a PodDisruptionBudget is for (one replica at a time).

Checked, polling every `POLL_SECONDS`: serving replicas (Ready, not terminating) never below the minimum, which is
the larger of policies/sla.yaml's minReplicas (when listed) and what the PodDisruptionBudget keeps (replicas -
maxUnavailable, or minAvailable), and at least 1 (a served model must keep serving); each evicted pod gone within
its terminationGracePeriodSeconds of its deletion; the interrupted nodes empty within the notice; all replicas
Ready again, on the pool's spot nodes, within `RESCHEDULE_SECONDS`. kwok ends a deleted pod at once (no preStop,
no process), so a pod's own shutdown time is not measured: the timings are Karpenter's and the API's.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from typing import Any

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec, located
from gpu_policy.drills.nodepool_copy import GROUP, VERSION, claims, create_pool, custom_api, pin_to_pool, pool_body
from gpu_policy.loading.document import Document

POOL = "gpu-spot-pool"
WORKLOAD = ("inference", "model-serving-spot")
LAUNCH_SECONDS = 120.0
RESCHEDULE_SECONDS = 180.0
POLL_SECONDS = 0.5
TIMEOUT = (5, 30)
DISRUPTED_TAINT = "karpenter.sh/disrupted"


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """k8s.io/api core/v1 toleration.go `ToleratesTaint`: effect empty or equal; key empty (with Exists) or equal;
    Exists matches any value, Equal (the default) the same value."""
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("key") and tol.get("key") != taint.get("key"):
            continue
        operator = tol.get("operator") or "Equal"
        if operator == "Exists" or (operator == "Equal" and str(tol.get("value") or "") ==
                                    str(taint.get("value") or "")):
            return True
    return False


def pdb_minimum(pdb: Document | None, replicas: int) -> int:
    """How many replicas the PodDisruptionBudget keeps (policy/v1: minAvailable, else replicas - maxUnavailable;
    percentages rounded up as the disruption controller does, GetScaledValueFromIntOrPercent(..., true))."""
    if pdb is None:
        return 0
    spec = pdb.spec or {}

    def scaled(value: Any) -> int:
        text = str(value)
        return -(-int(text[:-1]) * replicas // 100) if text.endswith("%") else int(text)

    if spec.get("minAvailable") is not None:
        return scaled(spec["minAvailable"])
    if spec.get("maxUnavailable") is not None:
        return max(0, replicas - scaled(spec["maxUnavailable"]))
    return 0


def _selects(doc: Document, namespace: str, labels: Mapping[str, Any]) -> bool:
    selector = ((doc.spec or {}).get("selector") or {}).get("matchLabels") or {}
    return doc.namespace == namespace and bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def run(ctx: DrillContext) -> DrillResult:
    from kubernetes import client as k8s

    from gpu_policy.drills.replay import (
        drill_copy,
        drill_namespace,
        ensure_priority_class,
        kubernetes_api,
        label_selector,
        pod_lister,
        workload_copy,
    )
    from gpu_policy.policy.loader import PolicySet

    policies = PolicySet.load()
    notice = float(policies.spot.get("interruptionNoticeSeconds", 120))
    pool_doc = ctx.require("NodePool", POOL, None, "the drill interrupts the spot pool's nodes",
                           "deploy the reference NodePool (manifests/karpenter/nodepools.yaml)")
    deployment = ctx.require("Deployment", WORKLOAD[1], WORKLOAD[0], "the drill interrupts the spot model server",
                             "deploy the reference Deployment")
    dep_where = located(deployment)
    template = copy.deepcopy((deployment.spec or {}).get("template") or {})
    pod_labels = (template.get("metadata") or {}).get("labels") or {}
    replicas = int((deployment.spec or {}).get("replicas", 1))
    grace = float((template.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    pdbs = [d for d in ctx.graph.of_kind("PodDisruptionBudget") if _selects(d, deployment.namespace, pod_labels)]
    pdb = pdbs[0] if pdbs else None
    sla = policies.sla_min_replicas(*WORKLOAD)
    minimum = max(sla or 0, pdb_minimum(pdb, replicas), 1 if replicas > 1 else 0)

    api = kubernetes_api(ctx)
    pool = create_pool(ctx, api, pool_body(ctx, pool_doc))
    namespace = drill_namespace(ctx, api)  # after the pool: cleanup removes the pods before the pool's nodes
    ensure_priority_class(ctx, api, template)
    body: Any = workload_copy(ctx, deployment, namespace, pin=lambda t: pin_to_pool(t, pool))  # the client takes dicts
    labels = body["metadata"]["labels"]
    core: Any = k8s.CoreV1Api(api)
    if pdb is not None:
        pdb_body: Any = drill_copy(ctx, pdb, namespace, labels)
        k8s.PolicyV1Api(api).create_namespaced_pod_disruption_budget(namespace, pdb_body, _request_timeout=TIMEOUT)
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body, _request_timeout=TIMEOUT)
    ctx.say(f"NodePool {pool} (the set's {POOL}, kwok node class), {deployment.name} ({replicas} replicas"
            + (f", PodDisruptionBudget {pdb.name}" if pdb else ", no PodDisruptionBudget") + f") in {namespace}")
    pods = pod_lister(api, namespace, deployment)

    def all_ready() -> list[dict[str, Any]] | None:
        ready = [p for p in pods() if _ready(p)]
        return ready if len(ready) >= replicas else None

    def cannot_land() -> DrillFailure:
        taints = ((pool_doc.spec or {}).get("template") or {}).get("spec", {}).get("taints") or []
        tolerations = (template.get("spec") or {}).get("tolerations") or []
        missing = [t for t in taints if not tolerates(tolerations, t)]
        pending = len([p for p in pods() if (p.get("status") or {}).get("phase") == "Pending"])
        launched = len(claims(api, pool))
        if missing:
            shown = ", ".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in missing)
            return DrillFailure(dep_where, f"its pods cannot land on spot capacity: {pending} of {replicas} Pending "
                                f"after {LAUNCH_SECONDS:.0f} s (Karpenter launched {launched} node(s) of the pool)",
                                f"NodePool {POOL} taints its nodes {shown} and the pod template does not tolerate it",
                                "add tolerations " + "; ".join(
                                    f"{{key: {t['key']}, operator: Equal, value: \"{t.get('value', '')}\", "
                                    f"effect: {t['effect']}}}" for t in missing))
        return DrillFailure(dep_where, f"{pending} of {replicas} pods Pending after {LAUNCH_SECONDS:.0f} s",
                            f"Karpenter launched no {POOL} node they fit",
                            "check the pool's requirements and limits against the pods' requests and affinity")

    started = time.monotonic()
    ready = ctx.poll(all_ready, "waiting for the spot pods to run", within=LAUNCH_SECONDS, on_expiry=cannot_land)
    result = DrillResult()
    result.numbers["launch_s"] = round(time.monotonic() - started, 1)
    hosts = {p["spec"]["nodeName"] for p in ready}

    def claims_of_hosts() -> list[dict[str, Any]] | None:  # status.nodeName is set when the node registers
        found = [c for c in claims(api, pool) if (c.get("status") or {}).get("nodeName") in hosts]
        return found if {c["status"]["nodeName"] for c in found} == hosts else None

    victims = ctx.poll(claims_of_hosts, "waiting for the NodeClaims of the pods' nodes", within=60,
                       on_expiry=lambda: DrillFailure(located(pool_doc),
                                                      f"no NodeClaim names the nodes {sorted(hosts)}",
                                                      "Karpenter did not register them", "check Karpenter's log"))
    kinds = sorted({c["metadata"]["labels"].get("node.kubernetes.io/instance-type", "?") + "/"
                    + c["metadata"]["labels"].get("karpenter.sh/capacity-type", "?") for c in victims})
    ctx.say(f"{len(ready)} replicas Ready on {len(hosts)} node(s) ({', '.join(kinds)}) after "
            f"{result.numbers['launch_s']:.0f} s; minimum while interrupted: {minimum}")

    # every change of the pods, in order (a poll could miss a dip that lasts less than its interval)
    watcher = PodWatch(api, namespace, label_selector(deployment))
    watcher.start()
    ctx.on_cleanup("the pod watch", watcher.stop)
    # the interruption: what the AWS interruption controller does on a spot_interrupted message
    interrupted = time.monotonic()
    for claim in victims:
        custom_api(api).delete_cluster_custom_object(GROUP, VERSION, "nodeclaims", claim["metadata"]["name"],
                                                     _request_timeout=TIMEOUT)
    victim_names = {c["metadata"]["name"] for c in victims}
    ctx.say(f"interrupted {', '.join(sorted(victim_names))} (NodeClaims deleted, as on a spot interruption "
            f"warning); EC2 would reclaim them in {notice:.0f} s")
    lowest = len(ready)
    deleted_at: dict[str, float] = {}
    drained_at: float | None = None
    tainted_at: float | None = None
    longest_termination = 0.0
    while True:
        now = time.monotonic()
        current = pods()
        serving = [p for p in current if _ready(p)]
        lowest = min(lowest, len(serving), watcher.lowest)
        if lowest < minimum:
            at = (watcher.lowest_at or now) - interrupted if watcher.lowest <= lowest else now - interrupted
            raise _below_minimum(dep_where, deployment, pdb, lowest, minimum, replicas, sla, at)
        names = {p["metadata"]["name"] for p in current}
        for pod in current:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp") and name not in deleted_at:
                deleted_at[name] = now
        for name, at in list(deleted_at.items()):
            if name not in names:
                longest_termination = max(longest_termination, now - at)
                deleted_at[name] = float("inf")  # gone
            elif now - at > grace + 5:
                raise DrillFailure(dep_where, f"pod {name} still terminating {now - at:.0f} s after its eviction",
                                   f"its terminationGracePeriodSeconds is {grace:.0f}",
                                   "make the pod exit within its grace period")
        if tainted_at is None and _any_tainted(core, hosts):
            tainted_at = now
        on_victims = [p for p in current if p["spec"].get("nodeName") in hosts]
        if drained_at is None:
            if not on_victims:
                drained_at = now
            elif now - interrupted > notice:
                raise DrillFailure(dep_where, f"{len(on_victims)} pod(s) still on the interrupted nodes "
                                   f"{now - interrupted:.0f} s after the interruption warning",
                                   f"EC2 reclaims a spot instance {notice:.0f} s after its warning "
                                   "(policies/spot.yaml) whatever is still running",
                                   "lower terminationGracePeriodSeconds and let replacements start sooner")
        left = {c["metadata"]["name"] for c in claims(api, pool)} & victim_names
        if drained_at is not None and not left and len(serving) >= replicas:
            break
        if now - interrupted > RESCHEDULE_SECONDS:
            raise DrillFailure(dep_where, f"{len(serving)} of {replicas} replicas serving "
                               f"{now - interrupted:.0f} s after the interruption",
                               "the evicted pods were not rescheduled on new spot capacity"
                               + (f" (NodeClaims {', '.join(sorted(left))} still there)" if left else ""),
                               f"check that {POOL} can launch capacity for them (limits, instance types)")
        time.sleep(POLL_SECONDS)
        ctx.check_deadline("watching the interruption")
    placed = {p["spec"]["nodeName"] for p in serving}
    nodes = {n.metadata.name: n for n in core.list_node(label_selector=f"karpenter.sh/nodepool={pool}",
                                                         _request_timeout=TIMEOUT).items}
    not_spot = sorted(n for n in placed if ((nodes.get(n) and nodes[n].metadata.labels) or {})
                      .get("karpenter.sh/capacity-type") != "spot")
    if not_spot:
        raise DrillFailure(dep_where, f"rescheduled onto {', '.join(not_spot)}, not spot capacity of {POOL}",
                           "the replacement must come from the spot pool", "check the pool's capacity-type")
    assert drained_at is not None
    result.numbers.update(
        drained_after_interruption_s=round(drained_at - interrupted, 1),
        serving_again_after_interruption_s=round(time.monotonic() - interrupted, 1),
        lowest_serving_replicas=lowest, minimum_serving_replicas=minimum,
        longest_pod_termination_s=round(longest_termination, 1), interrupted_nodes=len(victims))
    if tainted_at is not None:
        result.numbers["disrupted_taint_after_interruption_s"] = round(tainted_at - interrupted, 1)
    result.observations += [
        f"interrupted {len(victims)} spot node(s) hosting all {replicas} replicas: drained in "
        f"{result.numbers['drained_after_interruption_s']:.0f} s (notice {notice:.0f} s), all replicas serving "
        f"again after {result.numbers['serving_again_after_interruption_s']:.0f} s",
        f"serving replicas never below {lowest} (minimum {minimum}); longest pod termination "
        f"{longest_termination:.1f} s (grace {grace:.0f} s; polled every {POLL_SECONDS:g} s)",
    ]
    ctx.say("; ".join(result.observations))
    return result


class PodWatch:
    """Serving replicas (Ready, not terminating) after every watch event of the drill's pods, on a thread; the
    lowest count and when it was first reached. Bounded: each watch request lasts at most 5 s, re-listed on
    error, until `stop`."""

    def __init__(self, api: Any, namespace: str, selector: str) -> None:
        from kubernetes import client as k8s

        self.api, self.namespace, self.selector = api, namespace, selector
        self.core: Any = k8s.CoreV1Api(api)
        self.pods: dict[str, dict[str, Any]] = {}
        self.lowest = 1 << 30
        self.lowest_at: float | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def _count(self) -> None:
        serving = sum(1 for p in self.pods.values() if _ready(p))
        if serving < self.lowest:
            self.lowest, self.lowest_at = serving, time.monotonic()

    def _relist(self) -> str:
        listed = self.api.sanitize_for_serialization(self.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector, _request_timeout=TIMEOUT))
        self.pods = {p["metadata"]["name"]: p for p in listed.get("items", [])}
        self._count()
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        from kubernetes import watch

        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                stream = watch.Watch()
                for event in stream.stream(self.core.list_namespaced_pod, self.namespace,
                                           label_selector=self.selector, resource_version=version,
                                           timeout_seconds=5, _request_timeout=(5, 15)):
                    pod = self.api.sanitize_for_serialization(event["object"])
                    name = pod["metadata"]["name"]
                    if event["type"] == "DELETED":
                        self.pods.pop(name, None)
                    else:
                        self.pods[name] = pod
                    version = str(pod["metadata"].get("resourceVersion") or version)
                    self._count()
                    if self._stop.is_set():
                        stream.stop()
            except Exception as exc:  # a 410 Gone or a dropped connection: list again
                self.errors.append(f"{type(exc).__name__}: {exc}")
                version = ""
                self._stop.wait(0.5)

    def start(self) -> None:
        self._relist()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=20)


def _any_tainted(core: Any, hosts: set[str]) -> bool:
    from kubernetes.client.rest import ApiException

    for name in hosts:
        try:
            node = core.read_node(name, _request_timeout=TIMEOUT)
        except ApiException:
            continue
        if any(t.key == DISRUPTED_TAINT for t in node.spec.taints or []):
            return True
    return False


def _below_minimum(where: str, deployment: Document, pdb: Document | None, serving: int, minimum: int,
                   replicas: int, sla: int | None, after: float) -> DrillFailure:
    what = f"serving replicas fell to {serving} of {replicas} {after:.0f} s after the interruption (minimum {minimum})"
    if pdb is None:
        return DrillFailure(where, what,
                            "no PodDisruptionBudget selects its pods, so Karpenter's drain evicted the replicas on "
                            "the interrupted nodes all at once",
                            f"add a PodDisruptionBudget with maxUnavailable: 1 selecting {deployment.name}'s pods")
    return DrillFailure(located(pdb), what,
                        "the PodDisruptionBudget lets more replicas go at once than "
                        + (f"policies/sla.yaml's minimum {sla}" if sla else "keeps the model serving"),
                        "lower maxUnavailable (or raise minAvailable)")


SPEC = DrillSpec(
    name="spot-interruption",
    title="Interrupted spot nodes drain within grace and notice; pods reschedule; replicas stay above the minimum",
    summary="the spot model server's nodes (gpu-spot-pool) get a spot interruption (their NodeClaims deleted, as "
    "Karpenter's AWS interruption controller does): pods evicted within grace and the 120 s notice, rescheduled "
    "on new spot nodes, serving replicas never below the PodDisruptionBudget's minimum",
    duration_seconds=48,
    timeout_seconds=600,
    needs=("testbed", "karpenter"),
    run=run,
    variants=("spot-interruption-no-toleration", "spot-interruption-no-pdb"),
)
