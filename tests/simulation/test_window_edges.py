"""A real HPA may count a record exactly one window old or not (gpu_policy.simulation.hpa, "Window edges"): the
simulator runs both, and the scaling steps hold an expectation to both."""

from __future__ import annotations

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.loader import load_manifests
from gpu_policy.policy.loader import PolicySet
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.simulation import checks
from gpu_policy.simulation.scenario import ScalingSetup


def _setup() -> ScalingSetup:
    graph = ResourceGraph(load_manifests([str(reference_manifests_dir())]).documents)
    setup = ScalingSetup(graph, PolicySet.load(), None)
    setup.add("model-a-gpu-scaler", 8)
    setup.run("model-a-gpu-scaler", "drop")
    return setup


def _settled(setup: ScalingSetup, late: bool) -> float:
    traj = (setup.edge_results if late else setup.results)["model-a-gpu-scaler"]
    floor = traj.min_replicas
    return next(s.time for s in traj.samples if s.replicas == floor and all(p.replicas == floor
                                                                            for p in traj.after(s.time)))


def test_counting_the_edge_delays_each_rate_limited_step_by_a_sync() -> None:
    setup = _setup()
    early, late = _settled(setup, False), _settled(setup, True)
    assert late > early  # each 60 s period (and the 300 s window) ends one 15 s sync later
    assert (late - early) % 15 == 0


def test_an_expectation_met_only_when_the_edge_is_left_out_fails_and_says_why() -> None:
    setup = _setup()
    fall = setup.results["model-a-gpu-scaler"].trace.mark("fall")
    early, late = _settled(setup, False), _settled(setup, True)

    def within(seconds: float) -> str | None:
        return setup.on_both_edges("model-a-gpu-scaler",
                                   lambda t: checks.settles_at(t, t.min_replicas, seconds, fall))

    assert checks.settles_at(setup.results["model-a-gpu-scaler"], 2, early - fall, fall) is None
    problem = within(early - fall)
    assert problem is not None
    assert f"only {int(late - fall)} s after" in problem and "exactly one window earlier" in problem
    assert within(late - fall) is None
