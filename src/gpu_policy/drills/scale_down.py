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

from collections.abc import Callable
from dataclasses import dataclass

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec, located
from gpu_policy.drills.compare import value_at
from gpu_policy.drills.replay import HPA_SYNC_SECONDS, TICK_SECONDS, TOLERANCE, Replay, model_a
from gpu_policy.simulation.traces import Trace

INITIAL = 6
FALL_AT = 60.0
LOW = 50.0
SETTLE_SECONDS = 60.0
"""Played after the prediction's last change, to see that nothing else happens."""


@dataclass(frozen=True)
class ScaleDownPolicy:
    """What policies/scaling.yaml and policies/sla.yaml allow a workload's scale-down."""

    window: float
    percent: float
    period: float
    sla_min: int

    @classmethod
    def load(cls, namespace: str, deployment: str) -> ScaleDownPolicy:
        from gpu_policy.policy.loader import PolicySet

        policies = PolicySet.load()
        rules = policies.scaling.get("scaleDown") or {}
        return cls(float(rules.get("minStabilizationWindowSeconds", 300)), float(rules.get("maxPercentPerPeriod", 25)),
                   float(rules.get("periodSeconds", 60)), policies.sla_min_replicas(namespace, deployment) or 1)

    def describe(self) -> str:
        return (f"nothing removed for {self.window:.0f} s, then at most {self.percent:g} % per {self.period:.0f} s, "
                f"never below {self.sla_min}")


def scale_down_guard(replay: Replay, policy: ScaleDownPolicy, fall_at: float) -> Callable[[float, int], None]:
    """The check run at every tick once the load falls at `fall_at`: a removal before the window less one sync (the
    last sync that saw the high load may precede the fall by up to a sync period), fewer replicas than the SLA
    minimum, or more pods removed within a period than the policy allows fails the drill at once."""
    so = replay.scaled_object
    where = located(so)

    def check(t: float, replicas: int) -> None:
        history = replay.observed
        if len(history) < 2 or history[-1][1] >= history[-2][1] or history[-1][0] != round(t, 1):
            return
        if replicas < policy.sla_min:
            raise DrillFailure(where, f"scaled to {replicas} replicas (t={t:.0f} s)",
                               f"policies/sla.yaml keeps at least {policy.sla_min}",
                               f"minReplicaCount: {policy.sla_min}")
        after_fall = t - fall_at
        if after_fall < policy.window - HPA_SYNC_SECONDS - TICK_SECONDS:
            raise DrillFailure(where, f"a replica was removed {after_fall:.0f} s after the load fell "
                               f"({history[-2][1]} -> {replicas})",
                               f"policies/scaling.yaml holds scale-down for {policy.window:.0f} s of lower load "
                               "(stabilisation window)",
                               f"set behavior.scaleDown.stabilizationWindowSeconds: {policy.window:.0f}")
        # the HPA counts the events strictly inside the last period; a tick of observation lag each side
        start = value_at(history, t - policy.period + 2 * TICK_SECONDS)
        floor = int(start * (1 - policy.percent / 100))
        if replicas < floor:
            raise DrillFailure(where, f"{start - replicas} of {start} replicas removed within {policy.period:.0f} s "
                               f"(t={t:.0f} s)",
                               f"policies/scaling.yaml allows {policy.percent:g} % per {policy.period:.0f} s",
                               f"scaleDown policy Percent {policy.percent:g} per {policy.period:.0f} s")

    return check


def run(ctx: DrillContext) -> DrillResult:
    so, model, deployment = model_a(ctx, "scale-down")
    policy = ScaleDownPolicy.load(model.namespace, model.target_name)
    high = INITIAL * model.triggers[0].threshold
    replay = Replay(ctx, so, deployment, falling_trace(high, LOW, FALL_AT, 0.0), INITIAL)
    until = max(FALL_AT + policy.window, last_predicted_change(replay, FALL_AT)) + SETTLE_SECONDS
    replay.trace = falling_trace(high, LOW, FALL_AT, until)
    replay.start()
    read = replay.check_reads_load(model.triggers[0].threshold)
    ctx.say(f"the HPA reads {read:g} per pod at {INITIAL} replicas; load falls to {LOW:g} at t={FALL_AT:.0f} s; "
            f"policy: {policy.describe()}")
    replay.play(until, scale_down_guard(replay, policy, FALL_AT))
    result = replay.judge(until)
    result.numbers.update(settled_numbers(replay, FALL_AT))
    final = result.numbers["final_replicas"]
    if final != max(policy.sla_min, model.min_replicas):
        raise DrillFailure(so.ref, f"ended at {final} replicas under a load of {LOW:g} GPU-%",
                           f"the load needs 1, the SLA minimum is {policy.sla_min}", "check minReplicaCount")
    ctx.say(f"scale-down as the policy says and as predicted ({TOLERANCE.describe()})")
    return result


def settled_numbers(replay: Replay, fall_at: float) -> dict[str, float]:
    """`first_removal_after_fall_s` when the replay removed a replica."""
    removals = [t for (t, r), (_, before) in zip(replay.observed[1:], replay.observed, strict=False) if r < before]
    return {"first_removal_after_fall_s": round(removals[0] - fall_at, 1)} if removals else {}


def falling_trace(high: float, low: float, fall_at: float, duration: float) -> Trace:
    """A demand trace at `high` until `fall_at` s, then `low`, lasting `duration` s (at least past the fall)."""
    end = max(duration, fall_at + 1)
    return Trace("scale-down", "demand", int(end), (0.0, fall_at - 1e-3, fall_at, end), (high, high, low, low),
                 marks={"fall": fall_at})


def last_predicted_change(replay: Replay, fall_at: float) -> float:
    """When the simulator's last change happens on a long version of the replay's falling trace (how long the drill
    must play); the later of the two window edges, which ends last."""
    from gpu_policy.drills.compare import predicted_timeline

    values = replay.trace.values
    long_trace = falling_trace(values[0], values[-1], fall_at, 1800.0)
    timeline = predicted_timeline(replay.prediction(edge_counts=True, trace=long_trace))
    changes = [t for (t, r), (_, before) in zip(timeline, [(0.0, replay.initial_replicas), *timeline], strict=False)
               if r != before]
    return max(changes, default=fall_at)


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
