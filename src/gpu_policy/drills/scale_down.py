"""Drill `scale-down`: model A's load drops; the real KEDA + HPA remove no replica before the stabilisation window,
then no faster than policies/scaling.yaml allows, never below the SLA minimum, and as gpu_policy.simulation predicts.

Trace (demand, GPU-%): `INITIAL` replicas each exactly at the trigger's threshold (so the HPA holds them) until
`FALL_AT` s, then `LOW` (half a GPU's worth). Before t = 0 the drill checks that the HPA reads the per-pod load (the
seed's avg(...) + AverageValue reads 1/replicas of it). Then, at every tick: a removal before FALL_AT + window - one
sync (the last sync that saw the high load may precede the fall by up to a sync period), more pods removed within a
period than the policy allows, or fewer replicas than the SLA minimum fails the drill at once. At the end the
observed timeline is compared with the simulator's (see gpu_policy.drills.compare; tolerance in replay.TOLERANCE).
It lasts the window plus the removals: about 10 minutes with the reference's 300 s window and 25 %/60 s.
"""

from __future__ import annotations

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec
from gpu_policy.drills.compare import value_at
from gpu_policy.drills.replay import HPA_SYNC_SECONDS, TICK_SECONDS, TOLERANCE, Replay, model_a
from gpu_policy.simulation.traces import Trace

INITIAL = 6
FALL_AT = 60.0
LOW = 50.0
SETTLE_SECONDS = 60.0
"""Played after the prediction's last change, to see that nothing else happens."""


def run(ctx: DrillContext) -> DrillResult:
    from gpu_policy.policy.loader import PolicySet

    so, model, deployment = model_a(ctx, "scale-down")
    policies = PolicySet.load()
    rules = policies.scaling.get("scaleDown") or {}
    window = float(rules.get("minStabilizationWindowSeconds", 300))
    percent = float(rules.get("maxPercentPerPeriod", 25))
    period = float(rules.get("periodSeconds", 60))
    sla_min = policies.sla_min_replicas(model.namespace, model.target_name) or 1
    high = INITIAL * model.triggers[0].threshold
    replay = Replay(ctx, so, deployment, _trace(high, 0.0), INITIAL)
    prediction_end = _prediction_end(replay)
    until = max(FALL_AT + window, prediction_end) + SETTLE_SECONDS
    replay.trace = _trace(high, until)
    replay.start()
    read = replay.check_reads_load(model.triggers[0].threshold)
    ctx.say(f"the HPA reads {read:g} per pod at {INITIAL} replicas; load falls to {LOW:g} at t={FALL_AT:.0f} s; "
            f"policy: nothing removed for {window:.0f} s, then at most {percent:g} % per {period:.0f} s, never "
            f"below {sla_min}; playing {until:.0f} s")
    where = f"{so.ref} ({so.source}:{so.line})"

    def check(t: float, replicas: int) -> None:
        history = replay.observed
        if len(history) < 2 or history[-1][1] >= history[-2][1] or history[-1][0] != round(t, 1):
            return
        after_fall = t - FALL_AT
        if after_fall < window - HPA_SYNC_SECONDS - TICK_SECONDS:
            raise DrillFailure(where, f"a replica was removed {after_fall:.0f} s after the load fell "
                               f"({history[-2][1]} -> {replicas})",
                               f"policies/scaling.yaml holds scale-down for {window:.0f} s of lower load "
                               "(stabilisation window)",
                               f"set behavior.scaleDown.stabilizationWindowSeconds: {window:.0f}")
        # the HPA counts the events strictly inside the last period; a tick of observation lag each side
        start = value_at(history, t - period + 2 * TICK_SECONDS)
        floor = int(start * (1 - percent / 100))
        if replicas < floor:
            raise DrillFailure(where, f"{start - replicas} of {start} replicas removed within {period:.0f} s "
                               f"(t={t:.0f} s)", f"policies/scaling.yaml allows {percent:g} % per {period:.0f} s",
                               f"scaleDown policy Percent {percent:g} per {period:.0f} s")
        if replicas < sla_min:
            raise DrillFailure(where, f"scaled to {replicas} replicas", f"policies/sla.yaml keeps at least {sla_min}",
                               f"minReplicaCount: {sla_min}")

    replay.play(until, check)
    result = replay.judge(until)
    removals = [(t, r) for (t, r), (_, before) in zip(replay.observed[1:], replay.observed, strict=False)
                if r < before]
    if removals:
        result.numbers["first_removal_after_fall_s"] = round(removals[0][0] - FALL_AT, 1)
    final = result.numbers["final_replicas"]
    if final != max(sla_min, model.min_replicas):
        raise DrillFailure(so.ref, f"ended at {final} replicas under a load of {LOW:g} GPU-%",
                           f"the load needs 1, the SLA minimum is {sla_min}", "check minReplicaCount")
    ctx.say(f"scale-down as the policy says and as predicted ({TOLERANCE.describe()})")
    return result


def _trace(high: float, duration: float) -> Trace:
    end = max(duration, FALL_AT + 1)
    return Trace("scale-down", "demand", int(end), (0.0, FALL_AT - 1e-3, FALL_AT, end), (high, high, LOW, LOW),
                 marks={"fall": FALL_AT})


def _prediction_end(replay: Replay) -> float:
    """When the simulator's last change happens on a long trace (how long the drill must play)."""
    replay.trace = _trace(replay.trace.values[0], 1800.0)
    timeline = _timeline(replay)
    changes = [t for (t, r), (_, before) in zip(timeline, [(0.0, INITIAL), *timeline], strict=False) if r != before]
    return max(changes, default=FALL_AT)


def _timeline(replay: Replay) -> list[tuple[float, int]]:
    from gpu_policy.drills.compare import predicted_timeline

    return predicted_timeline(replay.prediction(edge_counts=True))  # the later of the two edges ends last


SPEC = DrillSpec(
    name="scale-down",
    title="Model A's scale-down waits its stabilisation window, then removes no faster than the policy, as predicted",
    summary="load drops from 6 pods at the target to half a GPU: nothing removed for 300 s, then at most 25 % per "
    "60 s down to the SLA minimum 2; the real HPA's timeline matches the simulator's",
    duration_seconds=660,
    timeout_seconds=1200,
    needs=("prometheus", "testbed"),
    run=run,
    variants=("scale-down-seed-scaledobject",),
)
