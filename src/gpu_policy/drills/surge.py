"""Drill `surge`: model A's GPUs go to 95 % (a per-pod load that does not ease as pods are added); the real KEDA +
HPA scale A up no faster than policies/scaling.yaml allows (per 15 s: +100 % or +4 pods, the larger), up to
maxReplicaCount, and as gpu_policy.simulation predicts.

Trace (per pod, %): `BEFORE` until `SURGE_AT` s, then 95. Before t = 0 the drill checks that the HPA reads the
per-pod load (the seed's avg(...) + AverageValue reads half of it at 2 replicas and never scales). At every tick, an
increase beyond the scale-up limit (replicas 15 s before, doubled or plus 4) or beyond maxReplicaCount fails the
drill at once. Pods beyond the testbed's 8 p4d GPUs stay Pending (no Karpenter here): they report no utilisation, as
on a cluster, and the HPA's AverageValue proposal does not depend on them. Not covered yet (needs Karpenter on the
testbed): NodeClaims for the pending pods and model B giving GPUs back.
"""

from __future__ import annotations

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec
from gpu_policy.drills.compare import value_at
from gpu_policy.drills.replay import TICK_SECONDS, TOLERANCE, Replay, model_a
from gpu_policy.simulation.traces import Trace

INITIAL = 2
BEFORE = 40.0
SURGE = 95.0
SURGE_AT = 30.0
PLAY_SECONDS = 180.0


def run(ctx: DrillContext) -> DrillResult:
    from gpu_policy.policy.loader import PolicySet

    so, model, deployment = model_a(ctx, "surge")
    rules = PolicySet.load().scaling.get("scaleUp") or {}
    percent = float(rules.get("percent", 100))
    pods = int(rules.get("pods", 4))
    period = float(rules.get("periodSeconds", 15))
    trace = Trace("surge", "per_pod", int(PLAY_SECONDS), (0.0, SURGE_AT - 1e-3, SURGE_AT, PLAY_SECONDS),
                  (BEFORE, BEFORE, SURGE, SURGE), marks={"rise": SURGE_AT})
    replay = Replay(ctx, so, deployment, trace, INITIAL)
    replay.start()
    read = replay.check_reads_load(BEFORE)
    ctx.say(f"the HPA reads {read:g} per pod at {INITIAL} replicas; every pod goes to {SURGE:g} % at "
            f"t={SURGE_AT:.0f} s; policy: per {period:.0f} s at most +{percent:g} % or +{pods} pods; max "
            f"{model.max_replicas}")
    where = f"{so.ref} ({so.source}:{so.line})"

    def check(t: float, replicas: int) -> None:
        history = replay.observed
        if len(history) < 2 or history[-1][1] <= history[-2][1] or history[-1][0] != round(t, 1):
            return
        # the HPA counts the events strictly inside the last period; a tick of observation lag each side
        start = value_at(history, t - period + 2 * TICK_SECONDS)
        limit = max(int(-(-start * (1 + percent / 100) // 1)), start + pods)
        if replicas > limit:
            raise DrillFailure(where, f"scaled from {start} to {replicas} replicas within {period:.0f} s (t={t:.0f} s)",
                               f"policies/scaling.yaml allows +{percent:g} % or +{pods} pods per {period:.0f} s",
                               "scaleUp policies Percent 100 and Pods 4 per 15 s, selectPolicy Max")
        if replicas > model.max_replicas:
            raise DrillFailure(where, f"scaled to {replicas} replicas", f"maxReplicaCount is {model.max_replicas}",
                               "check the HPA KEDA created")

    replay.play(PLAY_SECONDS, check)
    result = replay.judge(PLAY_SECONDS)
    reached = [t for t, r in replay.observed if r >= model.max_replicas]
    if reached:
        result.numbers["max_reached_after_surge_s"] = round(reached[0] - SURGE_AT, 1)
    if not reached:
        raise DrillFailure(so.ref, f"did not reach maxReplicaCount {model.max_replicas} within "
                           f"{PLAY_SECONDS - SURGE_AT:.0f} s of every pod running at {SURGE:g} %",
                           f"it ended at {result.numbers['final_replicas']:g}", "check the trigger's query and target")
    ctx.say(f"surge as the policy says and as predicted ({TOLERANCE.describe()})")
    return result


SPEC = DrillSpec(
    name="surge",
    title="Model A scales up under a surge no faster than its behaviour allows, up to its maximum, as predicted",
    summary="every model A pod at 95 %: +100 % or +4 pods per 15 s up to maxReplicaCount 10; the real HPA's timeline "
    "matches the simulator's",
    duration_seconds=300,
    timeout_seconds=900,
    needs=("prometheus", "testbed"),
    run=run,
    variants=("surge-seed-scaledobject",),
)
