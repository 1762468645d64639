"""Drill `surge`: model A's GPUs go to 95 % (a per-pod load that does not ease as pods are added); the real KEDA +
HPA scale A up no faster than policies/scaling.yaml allows (per 15 s: +100 % or +4 pods, the larger), up to
maxReplicaCount, and as gpu_policy.simulation predicts. Meanwhile model B, whose traffic goes elsewhere at the same
instant, gives its GPUs back: the real KEDA + HPA scale B down to its SLA minimum (policies/sla.yaml) and never below,
after its stabilisation window and no faster than the policy, as predicted (the seed: "Model B GPU 사용률 < 30% ->
Model B Pod 스케일 인", "Model B의 최소 SLA를 보장하기 위해 minReplicas").

Traces: model A (per pod, %) `BEFORE` until `SURGE_AT` s, then 95; model B (demand, GPU-%) `B_INITIAL` pods each at
its trigger's threshold (the HPA holds them), then 0 (idle: a query that sums idle GPUs reads 0, KEDA's scaler is not
active) from `SURGE_AT`. Both play on the same exporters and Prometheus (one GPU per pod on its node: A's pods on the
p4d node, B's on a g5 node), in one namespace. Before t = 0 the drill checks that each HPA reads the per-pod load (the
seed's avg(...) + AverageValue reads half of it at 2 replicas and never scales). At every tick, an increase of A
beyond the scale-up limit (replicas 15 s before, doubled or plus 4) or beyond maxReplicaCount fails the drill at
once, and so does B below its SLA minimum (a minReplicaCount of 0 lets KEDA scale the idle B to zero after its
cooldownPeriod), B removing pods before its window or faster than the policy (drills/scale_down.py
`scale_down_guard`). Pods beyond the testbed's 8 p4d GPUs stay Pending (no Karpenter here; drill `surge-capacity`
runs the surge's Karpenter half): they report no utilisation, as on a cluster, and the HPA's AverageValue proposal
does not depend on them. Both timelines are compared with the simulator's; the drill plays until B's predicted last
removal plus a minute."""

from __future__ import annotations

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec, located
from gpu_policy.drills.compare import value_at
from gpu_policy.drills.replay import (
    MODEL_B,
    TICK_SECONDS,
    TOLERANCE,
    Replay,
    model_a,
    play_together,
    scaled_workload,
)
from gpu_policy.drills.scale_down import (
    SETTLE_SECONDS,
    ScaleDownPolicy,
    falling_trace,
    last_predicted_change,
    scale_down_guard,
    settled_numbers,
)
from gpu_policy.simulation.traces import Trace

INITIAL = 2
BEFORE = 40.0
SURGE = 95.0
SURGE_AT = 30.0
PLAY_SECONDS = 180.0
"""Model A reaches its maximum within this (the drill plays longer, for model B)."""
B_INITIAL = 3
"""Model B's replicas before it goes idle: two removals down to the reference's SLA minimum 1 (25 % per 60 s)."""


def run(ctx: DrillContext) -> DrillResult:
    from gpu_policy.policy.loader import PolicySet

    so, model, deployment = model_a(ctx, "surge")
    so_b, model_b, deployment_b = scaled_workload(ctx, MODEL_B, "model B giving GPUs back during the surge")
    rules = PolicySet.load().scaling.get("scaleUp") or {}
    percent = float(rules.get("percent", 100))
    pods = int(rules.get("pods", 4))
    period = float(rules.get("periodSeconds", 15))
    b_policy = ScaleDownPolicy.load(model_b.namespace, model_b.target_name)
    b_high = B_INITIAL * model_b.triggers[0].threshold
    replay_b = Replay(ctx, so_b, deployment_b, falling_trace(b_high, 0.0, SURGE_AT, 0.0), B_INITIAL, label="model-b")
    until = max(PLAY_SECONDS, SURGE_AT + b_policy.window, last_predicted_change(replay_b, SURGE_AT)) + SETTLE_SECONDS
    replay_b.trace = falling_trace(b_high, 0.0, SURGE_AT, until)
    trace = Trace("surge", "per_pod", int(until), (0.0, SURGE_AT - 1e-3, SURGE_AT, until),
                  (BEFORE, BEFORE, SURGE, SURGE), marks={"rise": SURGE_AT})
    replay = Replay(ctx, so, deployment, trace, INITIAL)
    replay.start()
    replay_b.start(alongside=replay)
    read = replay.check_reads_load(BEFORE)
    read_b = replay_b.check_reads_load(model_b.triggers[0].threshold)
    ctx.say(f"the HPA reads {read:g} per pod at {INITIAL} replicas; every pod goes to {SURGE:g} % at "
            f"t={SURGE_AT:.0f} s; policy: per {period:.0f} s at most +{percent:g} % or +{pods} pods; max "
            f"{model.max_replicas}")
    ctx.say(f"model B's HPA reads {read_b:g} per pod at {B_INITIAL} replicas; model B goes idle at "
            f"t={SURGE_AT:.0f} s; policy: {b_policy.describe()}")
    where = located(so)

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

    play_together([(replay, check), (replay_b, scale_down_guard(replay_b, b_policy, SURGE_AT))], until)
    result = replay.judge(until)
    reached = [t for t, r in replay.observed if r >= model.max_replicas]
    if reached:
        result.numbers["max_reached_after_surge_s"] = round(reached[0] - SURGE_AT, 1)
    if not reached:
        raise DrillFailure(so.ref, f"did not reach maxReplicaCount {model.max_replicas} within "
                           f"{until - SURGE_AT:.0f} s of every pod running at {SURGE:g} %",
                           f"it ended at {result.numbers['final_replicas']:g}", "check the trigger's query and target")
    given_back = replay_b.judge(until)
    result.observations += [f"model B {line}" for line in given_back.observations]
    result.numbers.update({f"model_b_{key}": value for key, value in given_back.numbers.items()})
    result.numbers.update({f"model_b_{key}": value for key, value in settled_numbers(replay_b, SURGE_AT).items()})
    final_b = given_back.numbers["final_replicas"]
    if final_b != max(b_policy.sla_min, model_b.min_replicas):
        raise DrillFailure(so_b.ref, f"ended at {final_b:g} replicas while idle",
                           f"model B gives its GPUs back down to its SLA minimum {b_policy.sla_min}",
                           "check minReplicaCount and the trigger's query")
    ctx.say(f"surge as the policy says and as predicted; model B gave back down to {final_b:g} "
            f"({TOLERANCE.describe()})")
    return result


SPEC = DrillSpec(
    name="surge",
    title="Model A scales up under a surge no faster than its behaviour allows, while model B gives GPUs back "
    "down to its SLA minimum, as predicted",
    summary="every model A pod at 95 %: +100 % or +4 pods per 15 s up to maxReplicaCount 10, while the idle model B "
    "gives GPUs back 3 -> 2 -> 1 after its 300 s window, never below its SLA minimum 1; both real HPAs' timelines "
    "match the simulator's",
    duration_seconds=560,
    timeout_seconds=1200,
    needs=("prometheus", "testbed"),
    run=run,
    variants=("surge-seed-scaledobject", "surge-model-b-scales-to-zero"),
)
