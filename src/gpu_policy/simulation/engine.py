"""The time loop: a workload, the autoscalers that write its replicas, a metric trace, and what happens.

Every `SYNC_PERIOD_SECONDS` each autoscaler (the HPA KEDA creates for a ScaledObject, and any plain HPA
aimed at
the same workload) reconciles once, in a fixed order, each reading the replica count the previous one wrote -
two controllers writing one `spec.replicas` is exactly what the cluster does when both exist.

Pods: created pods become ready `pod_ready_seconds` after creation (0 by default: the controllers' behaviour
alone;
GPU model servers often need minutes, pass it to see them). Scale-down removes the newest pods first.
The metric is the trace at the sync instant unless `metric_delay_seconds` is given (the DCGM exporter's
collection interval, Prometheus' scrape interval and KEDA's query, as one fixed delay). Not modeled: node
provisioning (Karpenter) and pending pods without capacity, the KEDA operator's activity loop (scale to/from
zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document
from gpu_policy.simulation.hpa import (
    SYNC_PERIOD_SECONDS,
    Decision,
    HorizontalController,
    MetricError,
    MetricProposal,
    behavior_from_spec,
    external_per_pod_replicas,
    external_value_replicas,
    milli,
    parse_quantity,
    tolerances_for,
)
from gpu_policy.simulation.keda import FallbackState, ScaledObjectModel, Trigger
from gpu_policy.simulation.traces import Trace


class SimulationError(Exception):
    """The manifests cannot be simulated (missing object, unsupported metric); the message says which."""


def configurable_tolerance_enabled(kubernetes_version: str) -> bool:
    """HPAConfigurableTolerance: alpha (off) in 1.33, beta (on) from 1.34."""
    try:
        major, minor = (int(x) for x in kubernetes_version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (1, 34)


@dataclass
class Autoscaler:
    """One writer of the workload's replicas."""

    name: str
    controller: HorizontalController
    scaled_object: ScaledObjectModel | None = None
    hpa_metrics: tuple[dict, ...] = ()  # plain HPA metric specs
    fallback: FallbackState = field(default_factory=FallbackState)
    configurable_tolerance: bool = False


@dataclass(frozen=True)
class Sample:
    time: float
    metric: float | None  # the (first) trigger's value as KEDA returns it (None = error)
    desired: int | None  # the metrics' proposal before behavior (None when metrics failed)
    replicas: int  # spec.replicas after this sync
    ready: int
    reason: str
    writer: str
    fallback: bool = False
    error: str = ""


@dataclass
class Trajectory:
    workload: str
    trace: Trace
    samples: list[Sample]
    min_replicas: int
    max_replicas: int
    notes: list[str] = field(default_factory=list)

    def replicas_at(self, t: float) -> int:
        value = self.samples[0].replicas
        for s in self.samples:
            if s.time > t:
                break
            value = s.replicas
        return value

    def after(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.time >= t]


@dataclass
class Workload:
    namespace: str
    name: str
    autoscalers: list[Autoscaler]
    deployment: Document | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def workload_for_scaled_object(graph: ResourceGraph, name: str, kubernetes_version: str) -> Workload:
    docs = [d for d in graph.of_kind("ScaledObject") if d.name == name]
    if not docs:
        raise SimulationError(f"no ScaledObject named {name!r} in the manifests under test")
    so = ScaledObjectModel.from_document(docs[0])
    configurable = configurable_tolerance_enabled(kubernetes_version)
    autoscalers = [
        Autoscaler(
            so.hpa_name,
            HorizontalController(so.hpa_min_replicas, so.max_replicas, so.behavior),
            scaled_object=so,
            configurable_tolerance=configurable,
        )
    ]
    for hpa in graph.of_kind("HorizontalPodAutoscaler"):
        target = (hpa.spec or {}).get("scaleTargetRef") or {}
        if (
            hpa.namespace == so.namespace
            and target.get("name") == so.target_name
            and (target.get("kind") or "") == so.target_kind
        ):
            spec = hpa.spec or {}
            behavior = behavior_from_spec(spec.get("behavior")) if "behavior" in spec else None
            min_replicas = spec.get("minReplicas")
            autoscalers.append(
                Autoscaler(
                    f"HorizontalPodAutoscaler/{hpa.name}",
                    HorizontalController(
                        None if min_replicas is None else int(min_replicas),
                        int(spec["maxReplicas"]),
                        behavior,
                    ),
                    hpa_metrics=tuple(spec.get("metrics") or ()),
                    configurable_tolerance=configurable,
                )
            )
    deployment = graph.get(so.target_kind, so.target_name, so.namespace)
    return Workload(so.namespace, so.target_name, autoscalers, deployment)


def _keda_external_value(
    autoscaler: Autoscaler, trigger: Trigger, per_pod: list[float], replicas: int, ready: int
) -> tuple[float | None, str, bool]:
    """What KEDA's metrics adapter answers the HPA for one trigger (after fallback)."""
    so = autoscaler.scaled_object
    assert so is not None
    value: float | None
    try:
        if trigger.type != "prometheus":
            raise MetricError(f"trigger type {trigger.type!r} is not modeled by the simulator")
        value, error = trigger.scaler_value(per_pod), ""
    except MetricError as exc:
        value, error = None, str(exc)
    return autoscaler.fallback.observe(so, trigger, value, error, replicas, ready)


def _proposal_for_trigger(
    autoscaler: Autoscaler, trigger: Trigger, value: float | None, error: str, replicas: int, ready: int
) -> MetricProposal:
    if value is None:
        return MetricProposal(trigger.metric_name, None, error)
    tolerances = tolerances_for(autoscaler.controller.behavior, autoscaler.configurable_tolerance)
    target = milli(trigger.threshold)
    if trigger.metric_type == "AverageValue":
        return MetricProposal(
            trigger.metric_name, external_per_pod_replicas(replicas, [milli(value)], target, tolerances)
        )
    if trigger.metric_type == "Value":
        try:
            return MetricProposal(
                trigger.metric_name,
                external_value_replicas(replicas, [milli(value)], target, ready, tolerances),
            )
        except MetricError as exc:
            return MetricProposal(trigger.metric_name, None, str(exc))
    return MetricProposal(trigger.metric_name, None, f"metricType {trigger.metric_type} is not modeled")


def _plain_hpa_proposals(
    autoscaler: Autoscaler, keda: Autoscaler | None, keda_values: dict[str, tuple], replicas: int, ready: int
) -> list[MetricProposal]:
    """A plain HPA reading KEDA's external metrics (selector scaledobject.keda.sh/name) - or failing to."""
    out = []
    tolerances = tolerances_for(autoscaler.controller.behavior, autoscaler.configurable_tolerance)
    for spec in autoscaler.hpa_metrics:
        if spec.get("type") != "External":
            out.append(
                MetricProposal(
                    str(spec.get("type")), None, f"{spec.get('type')} metrics of a plain HPA are not modeled"
                )
            )
            continue
        external = spec.get("external") or {}
        metric_name = str((external.get("metric") or {}).get("name", ""))
        labels = ((external.get("metric") or {}).get("selector") or {}).get("matchLabels") or {}
        so_name = labels.get("scaledobject.keda.sh/name")
        if keda is None or keda.scaled_object is None or so_name != keda.scaled_object.name:
            out.append(MetricProposal(metric_name, None, "no external metrics adapter answers this metric"))
            continue
        if metric_name not in keda_values:
            # KEDA names its metrics s<index>-<trigger type>; metadata.metricName has been ignored since v2.12
            out.append(
                MetricProposal(
                    metric_name,
                    None,
                    f"no matching metrics found for {metric_name} "
                    f"(KEDA serves {', '.join(sorted(keda_values))})",
                )
            )
            continue
        value, error, _ = keda_values[metric_name]
        if value is None:
            out.append(MetricProposal(metric_name, None, error))
            continue
        target = external.get("target") or {}
        if target.get("type") == "AverageValue" or "averageValue" in target:
            proposal = external_per_pod_replicas(
                replicas, [milli(value)], milli(parse_quantity(target["averageValue"])), tolerances
            )
            out.append(MetricProposal(metric_name, proposal))
        else:
            try:
                out.append(
                    MetricProposal(
                        metric_name,
                        external_value_replicas(
                            replicas,
                            [milli(value)],
                            milli(parse_quantity(target["value"])),
                            ready,
                            tolerances,
                        ),
                    )
                )
            except MetricError as exc:
                out.append(MetricProposal(metric_name, None, str(exc)))
    return out


@dataclass
class _Pods:
    created_at: list[float]

    def count(self) -> int:
        return len(self.created_at)

    def ready(self, now: float, delay: float) -> int:
        return sum(1 for c in self.created_at if now - c >= delay)

    def resize(self, replicas: int, now: float) -> None:
        if replicas > len(self.created_at):
            self.created_at += [now] * (replicas - len(self.created_at))
        else:
            del self.created_at[replicas:]  # newest first (the ReplicaSet controller prefers young pods)


def simulate(
    workload: Workload,
    trace: Trace,
    initial_replicas: int,
    *,
    pod_ready_seconds: float = 0.0,
    duration_seconds: float | None = None,
    sync_period: int = SYNC_PERIOD_SECONDS,
    metric_delay_seconds: float = 0.0,
    edge_counts: bool | None = None,
) -> Trajectory:
    """Run every autoscaler of the workload against the trace; one sample per sync.

    `sync_period`: kube-controller-manager's --horizontal-pod-autoscaler-sync-period. `metric_delay_seconds`: how
    old the metric the HPA reads is (scrape interval, exporter collection interval, KEDA's query): at sync t the
    pods report the trace at t - delay, shared among the pods that existed and were ready then and still exist
    (removed pods' series are gone). 0 (default): the trace at the sync instant. `edge_counts`: whether the
    controllers count a record exactly one window old (gpu_policy.simulation.hpa, "Window edges"); None keeps each
    controller's own setting."""
    if edge_counts is not None:
        for autoscaler in workload.autoscalers:
            autoscaler.controller.edge_counts = edge_counts
    duration = trace.duration_seconds if duration_seconds is None else duration_seconds
    pods = _Pods([-1e9] * initial_replicas)  # the initial pods are long ready
    replicas = initial_replicas
    samples: list[Sample] = []
    keda = next((a for a in workload.autoscalers if a.scaled_object is not None), None)
    t = 0.0
    while t <= duration:
        ready = pods.ready(t, pod_ready_seconds)
        if metric_delay_seconds > 0:
            seen = t - metric_delay_seconds
            per_pod = trace.per_pod_utilization(
                max(0.0, seen), pods.ready(seen, pod_ready_seconds), sum(1 for c in pods.created_at if c <= seen)
            )
        else:
            per_pod = trace.per_pod_utilization(t, ready, pods.count())
        keda_values: dict[str, tuple] = {}
        first_metric: float | None = None
        for autoscaler in workload.autoscalers:
            proposals: list[MetricProposal]
            fallback_active = False
            if autoscaler.scaled_object is not None:
                proposals = []
                for trigger in autoscaler.scaled_object.triggers:
                    value, error, fb = _keda_external_value(autoscaler, trigger, per_pod, replicas, ready)
                    keda_values[trigger.metric_name] = (value, error, fb)
                    fallback_active = fallback_active or fb
                    if first_metric is None and trigger.index == 0:
                        first_metric = value
                    proposals.append(
                        _proposal_for_trigger(autoscaler, trigger, value, error, replicas, ready)
                    )
            else:
                proposals = _plain_hpa_proposals(autoscaler, keda, keda_values, replicas, ready)
            decision: Decision = autoscaler.controller.reconcile(t, replicas, proposals)
            if decision.rescale:
                replicas = decision.desired
                pods.resize(replicas, t)
            reason = decision.reason + (" (fallback)" if fallback_active else "")
            samples.append(
                Sample(
                    t,
                    first_metric,
                    decision.proposal,
                    replicas,
                    pods.ready(t, pod_ready_seconds),
                    reason,
                    autoscaler.name,
                    fallback_active,
                    decision.error,
                )
            )
        t += sync_period
    main = workload.autoscalers[0].controller
    return Trajectory(workload.ref, trace, samples, main.min_replicas, main.max_replicas)


def writers(trajectory: Trajectory) -> Sequence[str]:
    return sorted({s.writer for s in trajectory.samples})
