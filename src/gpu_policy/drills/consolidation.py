"""Drill `consolidation`: after a scale-down, the real Karpenter (v1.14.1, kwok provider, on the testbed) removes the
emptied GPU nodes only as the NodePool's disruption budgets allow: nothing during the business-hours freeze, then
as soon as the freeze ends, no more nodes at once than the budgets allow.

Set-up (namespace `gpu-policy-drill-consolidation-<run>`): the drill's copy of the set's gpu-inference-pool
(nodepool_copy.py: kwok node class, own name; nothing else changed but the budgets' schedule, below), the set's
model A Deployment (its PriorityClass and PodDisruptionBudget too) at `HIGH_REPLICAS` replicas pinned to the copy:
at 1 GPU per pod on 8-GPU p4d.24xlarge nodes, Karpenter launches 3 NodeClaims.

Time: Karpenter has no clock to move, so the drill moves the budgets (budget_shift.py): the copy's scheduled budgets
are the set's own, shifted so that the end of a business day of policies/cluster.yaml (Asia/Seoul 17:00) falls
`frozen` seconds after the scale-down. Karpenter therefore lives the last minutes of a business day and the first
minutes after it, with the set's budgets; what the set's freeze means in local time is what the drill observes.

Then model A is scaled down to its SLA minimum (policies/sla.yaml; the ReplicaSet removes the pods of the most
crowded nodes first, controller_utils.go ActivePodsWithRanks, so whole nodes empty):
1. **frozen** (until the shifted business end): no NodeClaim of the pool may be deleted. So that this proves the
   freeze and not idleness, at least one NodeClaim must become `Consolidatable` (Karpenter's own verdict that
   consolidateAfter passed, pkg/controllers/nodeclaim/disruption/consolidation.go) before the freeze ends.
   A removal here fails the drill, naming the budget: no freeze at all, or a freeze that leaves the end of the
   business day open (for example the business hours written in UTC: Karpenter reads cron in UTC only).
2. **allowed** (after it): the emptied nodes go within `ALLOWED_WITHIN_SECONDS` (Karpenter's disruption loop polls
   every 10 s and validates a consolidation for 15 s: pkg/controllers/disruption/controller.go pollingPeriod,
   consolidation.go commandValidationDelay), never more at once than the budgets allow (nodepool.go
   GetAllowedDisruptionsByReason, evaluated with the project's port, gpu_policy.graph.nodes.budgets), and the
   pods at the SLA minimum keep running. Nothing removed fails the drill, naming the budget that blocks.

`frozen` is max(90 s, consolidateAfter + 75 s): long enough that a pool without a working freeze is seen removing
a node inside it (consolidateAfter 30 s + a 10 s poll + the 15 s validation). consolidateAfter is the set's own.

Not reproduced: the disruption of pods on real nodes (kwok deletes an empty node at once) and the AWS provider's
instance termination; the budgets and Karpenter's decisions are real.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec, located
from gpu_policy.drills.budget_shift import business_end_after, shift_mapping, shifted_budgets
from gpu_policy.drills.nodepool_copy import claims, create_pool, is_true, patch_pool, pin_to_pool, pool_body
from gpu_policy.graph.nodes.budgets import Budget, allowed_disruptions, declared_budgets, effective_budgets
from gpu_policy.graph.quantities import parse_duration
from gpu_policy.loading.document import Document
from gpu_policy.simulation.disruption import BusinessHours

POOL = "gpu-inference-pool"
WORKLOAD = ("inference", "model-a-serving")
HIGH_REPLICAS = 18
"""At 1 GPU per pod: 8 + 8 + 2 on three 8-GPU nodes."""
LAUNCH_SECONDS = 300.0
MIN_FROZEN_SECONDS = 90.0
DETECT_SECONDS = 75.0
"""consolidateAfter plus this is how long a pool without a freeze takes, at most, to remove an empty node."""
ALLOWED_WITHIN_SECONDS = 150.0
POLL_SECONDS = 1.0
TIMEOUT = (5, 30)


def _hours_text(hours: BusinessHours) -> str:
    return f"{'/'.join(hours.days)} {hours.start:%H:%M}-{hours.end:%H:%M} {hours.zone.key}"


def _local(moment: dt.datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%a %H:%M} {zone.key}"


def _suggested(cluster: Mapping[str, Any]) -> tuple[str, str]:
    from gpu_policy.rules.karpenter import suggested_freeze

    year = dt.date.today().year
    mondays = [mid - dt.timedelta(days=mid.weekday()) for mid in (dt.date(year, 1, 15), dt.date(year, 7, 15))]
    return suggested_freeze(cluster["businessHours"], mondays)


def _budget_text(budget: Budget, raw: Mapping[str, Any]) -> str:
    if budget.always_active:
        return f'nodes: "{budget.nodes}" (no schedule: always active)'
    return f'nodes: "{budget.nodes}", schedule "{budget.schedule}", duration {raw.get("duration")}'


class _Pods:
    def __init__(self, api: Any, namespace: str, selector: Mapping[str, str]) -> None:
        from kubernetes import client as k8s

        self.core: Any = k8s.CoreV1Api(api)
        self.api, self.namespace = api, namespace
        self.selector = ",".join(f"{k}={v}" for k, v in selector.items())

    def all(self) -> list[dict[str, Any]]:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector, _request_timeout=TIMEOUT)
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(listed).get("items", [])
        return items

    def running(self) -> list[dict[str, Any]]:
        return [p for p in self.all() if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]


def run(ctx: DrillContext) -> DrillResult:
    from kubernetes import client as k8s

    from gpu_policy.drills.replay import (
        drill_copy,
        drill_namespace,
        ensure_priority_class,
        kubernetes_api,
        workload_copy,
    )
    from gpu_policy.policy.loader import PolicySet

    policies = PolicySet.load()
    hours = BusinessHours.from_policy(policies.cluster)
    pool_doc = ctx.require("NodePool", POOL, None, "the drill consolidates model A's GPU pool",
                           "deploy the reference NodePool (manifests/karpenter/nodepools.yaml)")
    deployment = ctx.require("Deployment", WORKLOAD[1], WORKLOAD[0], "the drill scales model A down",
                             "deploy the reference model A Deployment")
    raw_budgets = [dict(b) for b in (pool_doc.get(("spec", "disruption", "budgets")) or [])
                   if isinstance(b, Mapping)]
    budgets = effective_budgets(pool_doc)
    consolidate_after = parse_duration(str(pool_doc.get(("spec", "disruption", "consolidateAfter")) or "0s"))
    if consolidate_after is None:  # "Never": nothing to observe
        raise DrillFailure(located(pool_doc, ("spec", "disruption", "consolidateAfter")),
                           "consolidateAfter is Never", "Karpenter never consolidates this pool's GPU nodes",
                           "consolidateAfter: 30s (policies/budgets.yaml)")
    frozen = max(MIN_FROZEN_SECONDS, consolidate_after + DETECT_SECONDS)
    sla_min = policies.sla_min_replicas(*WORKLOAD) or 1

    api = kubernetes_api(ctx)
    body = pool_body(ctx, pool_doc)
    now = dt.datetime.now(dt.UTC)
    end, _ = business_end_after(hours, now + dt.timedelta(hours=1))
    setup_shift = shift_mapping(end, now + dt.timedelta(hours=1))  # provisioning: a business afternoon
    body["spec"]["disruption"]["budgets"] = shifted_budgets(raw_budgets, setup_shift, now,
                                                            now + dt.timedelta(hours=1))
    pool = create_pool(ctx, api, body)
    # after the pool: cleanup runs newest first, so the pods go before the pool's nodes (else Karpenter would
    # launch nodes for the evicted pods while the drill removes the pool)
    namespace = drill_namespace(ctx, api)
    ensure_priority_class(ctx, api, (deployment.spec or {}).get("template") or {})
    dep_body = workload_copy(ctx, deployment, namespace, replicas=HIGH_REPLICAS, pin=lambda t: pin_to_pool(t, pool))
    template, labels = dep_body["spec"]["template"], dep_body["metadata"]["labels"]
    apps: Any = k8s.AppsV1Api(api)
    policy_api: Any = k8s.PolicyV1Api(api)
    selector = ((deployment.spec or {}).get("selector") or {}).get("matchLabels") or {}
    for pdb in ctx.graph.of_kind("PodDisruptionBudget"):
        pdb_selector = ((pdb.spec or {}).get("selector") or {}).get("matchLabels") or {}
        if pdb.namespace == deployment.namespace and pdb_selector and all(
                (template.get("metadata") or {}).get("labels", {}).get(k) == v for k, v in pdb_selector.items()):
            policy_api.create_namespaced_pod_disruption_budget(namespace, drill_copy(ctx, pdb, namespace, labels),
                                                               _request_timeout=TIMEOUT)
    apps.create_namespaced_deployment(namespace, dep_body, _request_timeout=TIMEOUT)
    ctx.say(f"NodePool {pool} (the set's {POOL}, kwok node class) and {deployment.name} at {HIGH_REPLICAS} "
            f"replicas in {namespace}; waiting for Karpenter's nodes")
    pods = _Pods(api, namespace, selector)

    def launched() -> list[dict[str, Any]] | None:
        if len(pods.running()) < HIGH_REPLICAS:
            return None
        found = claims(api, pool)  # every one Initialized: pods may run on a node before Karpenter says so
        return found if found and all(is_true(c, "Initialized") for c in found) else None

    def not_launched() -> DrillFailure:
        running = len(pods.running())
        return DrillFailure(located(pool_doc), f"only {running} of {HIGH_REPLICAS} model A pods running after "
                            f"{LAUNCH_SECONDS:.0f} s", "Karpenter did not launch enough nodes for them",
                            "check the pool's requirements, limits and taints against model A's pods")

    started = time.monotonic()
    nodes = ctx.poll(launched, "waiting for Karpenter to launch nodes for model A", within=LAUNCH_SECONDS,
                     on_expiry=not_launched)
    result = DrillResult()
    result.numbers["launch_s"] = round(time.monotonic() - started, 1)
    types = sorted({c["metadata"]["labels"].get("node.kubernetes.io/instance-type", "?") for c in nodes})
    before = {c["metadata"]["name"] for c in nodes}
    ctx.say(f"{len(before)} NodeClaims ({', '.join(types)}) after {result.numbers['launch_s']:.0f} s; "
            f"{HIGH_REPLICAS} pods running")
    if len(before) < 2:
        raise DrillFailure(located(pool_doc), f"{HIGH_REPLICAS} model A pods fit on {len(before)} node",
                           "the drill needs a scale-down that empties whole nodes",
                           "an instance type with fewer GPUs per node than the drill assumes (8)")
    per_node = max(len([p for p in pods.running() if p["spec"].get("nodeName") == n])
                   for n in {c["status"].get("nodeName") for c in nodes})
    expected_final = -(-sla_min // max(1, per_node))

    # the freeze: the end of a business day `frozen` seconds from now
    now = dt.datetime.now(dt.UTC)
    business_end, business_start = business_end_after(hours, now + dt.timedelta(seconds=frozen))
    shift = shift_mapping(business_end, now + dt.timedelta(seconds=frozen))
    freeze_end = shift.to_real(business_end)
    moved = shifted_budgets(raw_budgets, shift, now, freeze_end + dt.timedelta(hours=1))
    patch_pool(api, pool, {"spec": {"disruption": {"budgets": moved}}})
    apps.patch_namespaced_deployment_scale(deployment.name, namespace, {"spec": {"replicas": sla_min}},
                                           _request_timeout=TIMEOUT)
    scaled = time.monotonic()
    until_end = (freeze_end - dt.datetime.now(dt.UTC)).total_seconds()
    ctx.say(f"scaled {deployment.name} to {sla_min} (SLA minimum); Karpenter now lives "
            f"{_local(shift.to_policy(dt.datetime.now(dt.UTC)), hours.zone)} with the set's budgets: "
            f"business hours ({_hours_text(hours)}) end in {until_end:.0f} s; nothing may be removed until then")

    # 1. frozen
    consolidatable_at: float | None = None
    while dt.datetime.now(dt.UTC) < freeze_end:
        current = claims(api, pool)
        gone = before - {c["metadata"]["name"] for c in current if not c["metadata"].get("deletionTimestamp")}
        if gone:
            policy_now = shift.to_policy(dt.datetime.now(dt.UTC))
            raise _frozen_failure(pool_doc, raw_budgets, budgets, hours, policies.cluster, business_start,
                                  business_end, policy_now, sorted(gone), time.monotonic() - scaled)
        if consolidatable_at is None and any(is_true(c, "Consolidatable") for c in current):
            consolidatable_at = time.monotonic()
            ctx.say(f"Karpenter marked a NodeClaim Consolidatable {consolidatable_at - scaled:.0f} s after the "
                    "scale-down; the freeze holds it")
        ctx.sleep(POLL_SECONDS, "watching the freeze")
    if consolidatable_at is None:
        raise DrillFailure(located(pool_doc, ("spec", "disruption", "consolidateAfter")),
                           f"no NodeClaim became Consolidatable within {time.monotonic() - scaled:.0f} s of the "
                           "scale-down", f"consolidateAfter is {consolidate_after:.0f} s: the freeze was not tested",
                           "check consolidationPolicy and consolidateAfter")
    result.numbers["frozen_s"] = round(time.monotonic() - scaled, 1)
    result.numbers["consolidatable_after_scale_down_s"] = round(consolidatable_at - scaled, 1)
    result.observations.append(
        f"frozen: {len(before)} NodeClaims kept for {result.numbers['frozen_s']:.0f} s after the scale-down "
        f"(Consolidatable after {result.numbers['consolidatable_after_scale_down_s']:.0f} s), until the end of "
        f"the business hours ({_hours_text(hours)})")
    ctx.say(f"business hours over; the emptied nodes may go now ({len(before)} -> {expected_final})")

    # 2. allowed
    ended = time.monotonic()
    removed_at: list[float] = []
    most_at_once = 0
    while True:
        current = claims(api, pool)
        live = [c for c in current if not c["metadata"].get("deletionTimestamp")]
        deleting = [c for c in current if c["metadata"].get("deletionTimestamp")]
        moment = shift.to_policy(dt.datetime.now(dt.UTC))
        allowed = min(allowed_disruptions(budgets, len(current), reason, moment) for reason in ("Empty",))
        most_at_once = max(most_at_once, len(deleting))
        if len(deleting) > max(allowed, 1):
            raise DrillFailure(located(pool_doc, ("spec", "disruption", "budgets")),
                               f"{len(deleting)} of {len(current)} NodeClaims disrupted at once",
                               f"the budgets allow {allowed} at {_local(moment, hours.zone)}",
                               "check the budgets' nodes values (policies/budgets.yaml: at most 20 %)")
        removed = len(before) - len(live)
        while len(removed_at) < removed:
            removed_at.append(time.monotonic() - ended)
        if len(live) <= expected_final and not deleting:
            break
        if time.monotonic() - ended > ALLOWED_WITHIN_SECONDS:
            raise _allowed_failure(pool_doc, raw_budgets, budgets, hours, policies.cluster, moment, len(live),
                                   time.monotonic() - ended)
        ctx.sleep(POLL_SECONDS, "waiting for consolidation after the freeze")
    running = len(pods.running())
    if running < sla_min:
        raise DrillFailure(f"Deployment/{WORKLOAD[0]}/{WORKLOAD[1]}", f"{running} pods running after consolidation",
                           f"policies/sla.yaml keeps {sla_min}", "check the PodDisruptionBudget")
    result.numbers.update(removed_nodes=len(removed_at), most_disrupted_at_once=most_at_once,
                          first_removal_after_freeze_s=round(removed_at[0], 1) if removed_at else 0.0,
                          last_removal_after_freeze_s=round(removed_at[-1], 1) if removed_at else 0.0)
    result.observations.append(
        f"allowed: {len(removed_at)} emptied NodeClaims removed "
        + ", ".join(f"{t:.0f} s" for t in removed_at)
        + f" after the freeze ended, at most {most_at_once} at once; {running} model A pods still running")
    ctx.say(f"consolidated as the budgets allow: {result.observations[-1]}")
    return result


def _freeze_fix(cluster: Mapping[str, Any]) -> str:
    cron, duration = _suggested(cluster)
    return f'a budget {{nodes: "0", schedule: "{cron}", duration: {duration}}} (Karpenter reads cron in UTC)'


def _frozen_failure(doc: Document, raw: list[dict[str, Any]], budgets: list[Budget], hours: BusinessHours,
                    cluster: Mapping[str, Any], business_start: dt.datetime, business_end: dt.datetime,
                    policy_now: dt.datetime, gone: list[str], after: float) -> DrillFailure:
    what = (f"Karpenter removed NodeClaim {', '.join(gone)} {after:.0f} s after the scale-down, at "
            f"{_local(policy_now, hours.zone)}, inside the business hours ({_hours_text(hours)})")
    freezes = [b for b in declared_budgets(doc) or [] if b.freezes and b.error is None]
    if not freezes:
        shown = "; ".join(_budget_text(b, raw[b.index] if b.index is not None else {}) for b in budgets)
        return DrillFailure(located(doc, ("spec", "disruption", "budgets")), what,
                            f"no budget freezes disruption (budgets: {shown}): they allow it at any time",
                            f"add {_freeze_fix(cluster)}")
    span = (business_start - dt.timedelta(days=1), business_end + dt.timedelta(days=1))
    windows = sorted(w for b in freezes for w in b.active_windows(*span))
    local_start = (hours.start.hour, hours.start.minute)  # the local clock time of the start, read as UTC
    in_utc = [b for b in freezes if any((w[0].hour, w[0].minute) == local_start for w in b.active_windows(*span))]
    budget = in_utc[0] if in_utc else freezes[0]
    item = raw[budget.index] if budget.index is not None else {}
    covered = (", ".join(f"{a.astimezone(hours.zone):%a %H:%M}-{b.astimezone(hours.zone):%a %H:%M}"
                         for a, b in windows) + f" ({hours.zone.key})") if windows else "nothing"
    if in_utc:
        why = (f"its freeze ({_budget_text(budget, item)}) is the business hours written in UTC: Karpenter reads "
               f"the schedule as cron in UTC (no time zone), so it freezes {covered} and leaves the business "
               f"hours in {hours.zone.key} open")
    else:
        why = (f"its freeze ({_budget_text(budget, item)}) is active {covered} (cron in UTC), which does not "
               "reach the end of the business hours")
    return DrillFailure(located(doc, budget.path), what, why,
                        f"schedule the freeze in UTC: {_freeze_fix(cluster)}")


def _allowed_failure(doc: Document, raw: list[dict[str, Any]], budgets: list[Budget], hours: BusinessHours,
                     cluster: Mapping[str, Any], moment: dt.datetime, live: int, waited: float) -> DrillFailure:
    what = (f"no emptied GPU node removed {waited:.0f} s after the business hours ended ({live} NodeClaims "
            f"left, at {_local(moment, hours.zone)})")
    blocking = [b for b in budgets if b.freezes and b.is_active(moment)]
    if blocking:
        budget = blocking[0]
        item = raw[budget.index] if budget.index is not None else {}
        return DrillFailure(
            located(doc, budget.path), what,
            f"the budget {_budget_text(budget, item)} is active outside the business hours too: Karpenter never "
            "consolidates this pool and its idle GPU nodes keep costing",
            f"freeze only the business hours: {_freeze_fix(cluster)}, and keep the nodes: \"20%\" budget")
    broken = [b for b in budgets if b.error is not None]
    if broken:
        return DrillFailure(located(doc, broken[0].path), what,
                            f"Karpenter fails closed on a budget it cannot evaluate: {broken[0].error}",
                            "fix that budget (gpu-policy check reports it)")
    return DrillFailure(located(doc, ("spec", "disruption")), what,
                        "the budgets allow disruption now, but Karpenter did not consolidate",
                        "check consolidationPolicy and consolidateAfter (policies/budgets.yaml)")


SPEC = DrillSpec(
    name="consolidation",
    title="After a scale-down Karpenter removes the emptied GPU nodes only as the disruption budgets allow",
    summary="model A 18 -> 2 pods on 3 p4d nodes of the set's gpu-inference-pool (budgets moved in time so the "
    "business day ends ~90 s after the scale-down): nothing removed during the freeze, then the 2 empty nodes go, "
    "never more at once than the budgets allow",
    duration_seconds=225,
    timeout_seconds=900,
    needs=("testbed", "karpenter"),
    run=run,
    variants=("consolidation-budget-never-allows", "consolidation-budget-always-allows",
              "consolidation-freeze-in-utc"),
)
