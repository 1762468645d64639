"""Steps that simulate scaling behaviour (gpu_policy.simulation holds the logic; these only wire it).

Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
When GPU demand follows the trace "surge"
Then it reaches 10 replicas within 60 seconds
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from gpu_policy.engine import RunResult
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.budgets import effective_budgets
from gpu_policy.simulation import checks
from gpu_policy.simulation.disruption import (
    BusinessHours,
    business_hour_violations,
    reference_week,
)
from gpu_policy.simulation.engine import SimulationError, Trajectory
from gpu_policy.simulation.expectations import Expectation
from gpu_policy.simulation.scenario import ScalingSetup

_SETUP = pytest.StashKey[ScalingSetup]()
_FAILED = pytest.StashKey[bool]()
_STEPS_DONE = pytest.StashKey[int]()


def _check(setup: ScalingSetup, name: str, problem: str | None) -> None:
    if problem:
        pytest.fail(setup.fail_message(name, problem), pytrace=False)


def _judge(setup: ScalingSetup, name: str, problem: str | None, label: str, start: float, end: float | None,
           replicas: int | None = None) -> None:
    """Record what was expected (for the chart), then fail the step when it did not hold."""
    setup.expect(name, Expectation(label, start, end, replicas, problem is None))
    _check(setup, name, problem)


def _new_setup(run: RunResult, options: dict[str, Any], request: pytest.FixtureRequest) -> ScalingSetup:
    setup = ScalingSetup(run.graph, run.policy, options.get("report_dir"))
    request.node.stash[_SETUP] = setup  # the charts are written when the scenario ends (pytest_bdd_after_scenario)
    return setup


# -- the charts, written when the scenario has ended (its outcome is known) ---------------------------------------
def pytest_bdd_after_step(request: pytest.FixtureRequest) -> None:
    request.node.stash[_STEPS_DONE] = request.node.stash.get(_STEPS_DONE, 0) + 1


def pytest_bdd_step_error(request: pytest.FixtureRequest) -> None:
    request.node.stash[_FAILED] = True


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    setup = request.node.stash.get(_SETUP, None)
    if setup is None or setup.report_dir is None:
        return
    if request.node.stash.get(_FAILED, False):
        status = "FAILED"
    elif request.node.stash.get(_STEPS_DONE, 0) == len(scenario.steps):
        status = "PASSED"
    else:
        status = "SKIPPED"
    setup.write_charts(feature.filename, scenario.name, status)


def _skip_unless_present(graph: ResourceGraph, kind: str, name: str) -> None:
    """A scenario about a named object of the reference system is skipped, with this reason, on a set that does not
    hold that object at all (a team's partial set); when the object is there, the scenario judges it."""
    if not any(doc.name == name for doc in graph.of_kind(kind)):
        pytest.skip(f"the manifests under test hold no {kind} named {name!r}")


def _skip_without_sla(scaling: ScalingSetup, name: str) -> None:
    """The SLA floor is the policy's (sla.yaml minReplicas): without one for this workload there is nothing to hold
    it to."""
    workload = scaling.workloads[name]
    if scaling.policy.sla_min_replicas(workload.namespace, workload.name) is None:
        pytest.skip(f"the SLA policy in force ({scaling.policy.source_of('sla')}) sets no minimum for {workload.ref}")


@given(parsers.parse('the ScaledObject "{name}" at {replicas:d} replicas'), target_fixture="scaling")
def scaled_object_at(
    gpu_policy_run: RunResult, gpu_policy_options: dict[str, Any], name: str, replicas: int,
    request: pytest.FixtureRequest,
) -> ScalingSetup:
    _skip_unless_present(gpu_policy_run.graph, "ScaledObject", name)
    setup = _new_setup(gpu_policy_run, gpu_policy_options, request)
    try:
        setup.add(name, replicas)
    except SimulationError as exc:
        pytest.fail(str(exc), pytrace=False)
    return setup


@given(parsers.parse('the ScaledObject "{name}" also at {replicas:d} replicas'), target_fixture="scaling")
def another_scaled_object_at(scaling: ScalingSetup, name: str, replicas: int) -> ScalingSetup:
    _skip_unless_present(scaling.graph, "ScaledObject", name)
    try:
        scaling.add(name, replicas)
    except SimulationError as exc:
        pytest.fail(str(exc), pytrace=False)
    return scaling


@given(
    parsers.parse("new pods become ready {seconds:d} seconds after they are created"),
    target_fixture="scaling",
)
def pods_ready_after(scaling: ScalingSetup, seconds: int) -> ScalingSetup:
    scaling.pod_ready_seconds = float(seconds)
    return scaling


@when(parsers.parse('GPU demand follows the trace "{trace}"'), target_fixture="scaling")
def demand_follows(scaling: ScalingSetup, trace: str) -> ScalingSetup:
    scaling.run(scaling.only(), trace)
    return scaling


@when(parsers.parse('GPU demand of "{name}" follows the trace "{trace}"'), target_fixture="scaling")
def demand_of_follows(scaling: ScalingSetup, name: str, trace: str) -> ScalingSetup:
    scaling.run(name, trace)
    return scaling


@then(parsers.parse("it reaches {replicas:d} replicas within {seconds:d} seconds"))
def reaches(scaling: ScalingSetup, replicas: int, seconds: int) -> None:
    name = scaling.only()
    traj = scaling.results[name]
    since = traj.trace.marks.get("rise", 0.0)
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.reaches(t, replicas, seconds, since)),
           f">= {replicas} replicas within {seconds} s", since, since + seconds, replicas)


@then(parsers.parse('"{name}" reaches its maximum replicas within {seconds:d} seconds'))
def named_reaches_max(scaling: ScalingSetup, name: str, seconds: int) -> None:
    traj = scaling.results[name]
    since, top = traj.trace.marks.get("rise", 0.0), scaling.max_replicas(name)
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.reaches(t, top, seconds, since)),
           f"its maximum {top} replicas within {seconds} s", since, since + seconds, top)


@then(parsers.parse("replicas never drop within {seconds:d} seconds after the load falls"))
def never_drops(scaling: ScalingSetup, seconds: int) -> None:
    name = scaling.only()
    traj = scaling.results[name]
    fall = traj.trace.mark("fall")
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.never_drops_within(t, seconds, fall)),
           f"no drop for {seconds} s after the load falls", fall, fall + seconds, traj.replicas_at(fall))


@then(parsers.parse("each scale-down step removes at most {percent:d}% per {seconds:d} seconds"))
def scale_down_rate(scaling: ScalingSetup, percent: int, seconds: int) -> None:
    name = scaling.only()
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.scale_down_rate(t, percent, seconds)),
           f"scale-down <= {percent}% per {seconds} s", 0.0, None)


@then(parsers.parse("it settles at its minimum replicas within {seconds:d} seconds after the load falls"))
def settles_at_min(scaling: ScalingSetup, seconds: int) -> None:
    name = scaling.only()
    traj = scaling.results[name]
    fall = traj.trace.mark("fall")
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.settles_at(t, t.min_replicas, seconds,
                                                                            fall)),
           f"settled at the minimum {traj.min_replicas} within {seconds} s", fall, fall + seconds, traj.min_replicas)


@then(parsers.parse("the replica count reverses direction at most {times:d} times"))
def flapping(scaling: ScalingSetup, times: int) -> None:
    name = scaling.only()

    def reversals(traj: Trajectory) -> str | None:
        changes = checks.direction_changes(traj)
        if changes <= times:
            return None
        return (f"{traj.workload} reversed direction {changes} times (at most {times}): "
                + ", ".join(f"t={int(s.time)}s:{s.replicas}" for s in traj.samples))

    _judge(scaling, name, scaling.on_both_edges(name, reversals), f"at most {times} reversals of direction", 0.0, None)


@then(parsers.parse("during the metric outage replicas fall back to {replicas:d} within {seconds:d} seconds"))
def falls_back(scaling: ScalingSetup, replicas: int, seconds: int) -> None:
    name = scaling.only()
    traj = scaling.results[name]
    start, _ = checks.outage_window(traj)
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.falls_back_to(t, replicas, seconds)),
           f"fallback to {replicas} replicas within {seconds} s of the outage", start, start + seconds, replicas)


@then("during the metric outage replicas never scale down")
def no_scale_down_in_outage(scaling: ScalingSetup) -> None:
    name = scaling.only()
    traj = scaling.results[name]
    start, end = checks.outage_window(traj)
    _judge(scaling, name, scaling.on_both_edges(name, checks.never_scales_down_in_outage),
           "no scale-down during the outage", start, end,
           traj.replicas_at(start - 1e-6))


@then(parsers.parse('"{name}" settles at its SLA minimum within {seconds:d} seconds after the load falls'))
def settles_at_sla(scaling: ScalingSetup, name: str, seconds: int) -> None:
    _skip_without_sla(scaling, name)
    traj = scaling.results[name]
    fall, floor = traj.trace.mark("fall"), scaling.sla_minimum(name)
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.settles_at(t, floor, seconds, fall)),
           f"settled at the SLA minimum {floor} within {seconds} s", fall, fall + seconds, floor)


@then(parsers.parse('"{name}" never goes below its SLA minimum'))
def never_below_sla(scaling: ScalingSetup, name: str) -> None:
    _skip_without_sla(scaling, name)
    floor = scaling.sla_minimum(name)
    _judge(scaling, name, scaling.on_both_edges(name, lambda t: checks.never_below(t, floor)),
           f"never below the SLA minimum {floor}",
           0.0, None, floor)


# -- Karpenter disruption budgets ---------------------------------------------------------------------------
@given(parsers.parse('the NodePool "{name}" with {nodes:d} nodes'), target_fixture="nodepool")
def nodepool_with(gpu_policy_run: RunResult, name: str, nodes: int) -> dict[str, Any]:
    _skip_unless_present(gpu_policy_run.graph, "NodePool", name)
    if not gpu_policy_run.policy.cluster.get("businessHours"):
        pytest.skip(f"the cluster policy in force ({gpu_policy_run.policy.source_of('cluster')}) sets no businessHours")
    doc = gpu_policy_run.graph.get("NodePool", name)
    assert doc is not None
    return {
        "name": name,
        "nodes": nodes,
        "budgets": effective_budgets(doc),
        "hours": BusinessHours.from_policy(gpu_policy_run.policy.cluster),
    }


@then("no voluntary disruption happens during business hours")
def no_disruption_in_business_hours(nodepool: dict[str, Any]) -> None:
    """Holds too for a pool with a budget schedule Karpenter cannot parse: Karpenter then fails closed and
    disrupts none of its nodes at any time (disruption-budgets-within-max-percent reports that schedule)."""
    hours = nodepool["hours"]
    found = business_hour_violations(nodepool["budgets"], nodepool["nodes"], hours, reference_week())
    if found:
        first = [f"{m.astimezone(hours.zone):%a %H:%M %Z} ({m:%a %H:%M} UTC): {a}" for m, a in found[:3]]
        pytest.fail(
            f"NodePool {nodepool['name']} ({nodepool['nodes']} nodes) may disrupt nodes during business hours "
            f"({hours.start:%H:%M}-{hours.end:%H:%M} {hours.zone.key}) at {len(found)} of the checked "
            f"5-minute instants of a week, e.g. "
            + "; ".join(first)
            + ". Budget schedules are cron in UTC: shift the schedule by the zone's offset.",
            pytrace=False,
        )
