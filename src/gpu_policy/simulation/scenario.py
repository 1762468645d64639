"""What the Gherkin steps call: set up workloads from the manifests, run traces, assert, write the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.policy.loader import PolicySet
from gpu_policy.simulation import checks
from gpu_policy.simulation.engine import Trajectory, Workload, simulate, workload_for_scaled_object
from gpu_policy.simulation.expectations import Expectation
from gpu_policy.simulation.report import chart_prefix, write_report
from gpu_policy.simulation.traces import load_trace


@dataclass
class ScalingSetup:
    graph: ResourceGraph
    policy: PolicySet
    report_dir: Path | None
    initial: dict[str, int] = field(default_factory=dict)  # ScaledObject name -> starting replicas
    pod_ready_seconds: float = 0.0
    workloads: dict[str, Workload] = field(default_factory=dict)
    results: dict[str, Trajectory] = field(default_factory=dict)
    """ScaledObject name -> the run where the HPA leaves out a record exactly one window old."""
    edge_results: dict[str, Trajectory] = field(default_factory=dict)
    """The same run where it counts that record: a real controller may do either at any window's edge
    (gpu_policy.simulation.hpa, "Window edges"), so an expectation must hold on both."""
    runtimes: dict[str, float] = field(default_factory=dict)
    expectations: dict[str, list[Expectation]] = field(default_factory=dict)
    """ScaledObject name -> what the scenario's `Then` steps expected of it (drawn on its chart)."""

    def add(self, scaled_object: str, replicas: int) -> None:
        version = str(self.policy.cluster.get("kubernetesVersion", "1.33"))
        self.workloads[scaled_object] = workload_for_scaled_object(self.graph, scaled_object, version)
        self.initial[scaled_object] = replicas

    def only(self) -> str:
        if len(self.workloads) != 1:
            raise AssertionError(
                f"the scenario set up {len(self.workloads)} ScaledObjects; name the one meant"
            )
        return next(iter(self.workloads))

    def run(self, scaled_object: str, trace_name: str) -> Trajectory:
        workload = self.workloads[scaled_object]
        trace = load_trace(trace_name)
        started = time.perf_counter()
        # a fresh controller state per run: reuse the set-up objects by rebuilding them
        self.add(scaled_object, self.initial[scaled_object])
        workload = self.workloads[scaled_object]
        traj = simulate(
            workload, trace, self.initial[scaled_object], pod_ready_seconds=self.pod_ready_seconds,
            edge_counts=False,
        )
        self.add(scaled_object, self.initial[scaled_object])
        self.edge_results[scaled_object] = simulate(
            self.workloads[scaled_object], trace, self.initial[scaled_object],
            pod_ready_seconds=self.pod_ready_seconds, edge_counts=True,
        )
        self.runtimes[scaled_object] = time.perf_counter() - started
        self.results[scaled_object] = traj
        return traj

    def on_both_edges(self, scaled_object: str, check: Callable[[Trajectory], str | None]) -> str | None:
        """The check's problem on the run that leaves the window's edge out, else on the one that counts it (said
        so): what the steps expect must hold however the real controller's timers fall."""
        problem = check(self.results[scaled_object])
        if problem is None and scaled_object in self.edge_results:
            late = check(self.edge_results[scaled_object])
            if late is not None:
                problem = (f"{late} (when the HPA still counts a change or recommendation made exactly one window "
                           "earlier, which it does when its resync timer starts the sync; see "
                           "gpu_policy.simulation.hpa)")
        return problem

    def expect(self, scaled_object: str, expectation: Expectation) -> None:
        self.expectations.setdefault(scaled_object, []).append(expectation)

    def write_charts(self, feature_file: str, scenario: str, status: str) -> list[Path]:
        """When the scenario has ended: each run's CSV and chart under the report folder, titled with the scenario
        and marked with its outcome (PASSED, FAILED, or SKIPPED when a step skipped it before its end)."""
        if self.report_dir is None:
            return []
        written: list[Path] = []
        for scaled_object, traj in self.results.items():
            workload = self.workloads[scaled_object]
            subtitle = (f"ScaledObject {workload.namespace}/{scaled_object} scaling {traj.workload}, "
                        f"from {self.initial[scaled_object]} replicas, under the trace {traj.trace.name!r}")
            written += write_report(traj, self.report_dir, chart_prefix(feature_file, scenario), scaled_object,
                                    title=scenario, subtitle=subtitle,
                                    expectations=self.expectations.get(scaled_object, []), status=status)
        return written

    def fail_message(self, scaled_object: str, problem: str) -> str:
        why = checks.explain(self.workloads[scaled_object], self.results[scaled_object])
        return problem + ("\nwhy:\n  " + why.replace("\n", "\n  ") if why else "")

    def sla_minimum(self, scaled_object: str) -> int:
        workload = self.workloads[scaled_object]
        value = self.policy.sla_min_replicas(workload.namespace, workload.name)
        if value is None:
            raise AssertionError(f"policies/sla.yaml has no minReplicas for {workload.ref}")
        return value

    def max_replicas(self, scaled_object: str) -> int:
        return self.workloads[scaled_object].autoscalers[0].controller.max_replicas
