"""A model of the Kubernetes HorizontalPodAutoscaler controller, faithful to its source.

Read from kubernetes/kubernetes (master, autoscaling/v2):
- pkg/controller/podautoscaler/replica_calculator.go: `Tolerances.isWithin`, `GetResourceReplicas`,
  `calcPlainMetricReplicas`, `GetObjectMetricReplicas`, `GetObjectPerPodMetricReplicas`,
  `getUsageRatioReplicaCount`, `GetExternalMetricReplicas`, `GetExternalPerPodMetricReplicas`, `groupPods`.
- pkg/controller/podautoscaler/metrics/utilization.go: `GetResourceUtilizationRatio` (integer percent),
  `GetMetricUsageRatio` (integer average of milli-values).
- pkg/controller/podautoscaler/horizontal.go: `reconcileAutoscaler` (disabled at 0 replicas, clamping to
min/max
  before metrics, `recordInitialRecommendation`), `computeReplicasForMetrics` (max proposal wins; no scaling
  when all
  metrics fail; no scale-down when some fail), `normalizeDesiredReplicas` (legacy path: max recommendation
  over the
  downscale stabilization window, scale-up capped at max(2 x current, 4)),
  `normalizeDesiredReplicasWithBehaviors`,
  `stabilizeRecommendationWithBehaviors`, `convertDesiredReplicasWithBehaviorRate`,
  `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors` (period start = current -
  added + deleted within the period), `storeScaleEvent` / `markScaleEventsOutdated`.
- pkg/apis/autoscaling/v2/defaults.go: behavior defaults (scale-up: window 0, Pods 4 and Percent 100 per 15
s, Max;
  scale-down: window = controller flag 300 s, Percent 100 per 15 s, Max).

Quantities are milli-values (ints) as in the controller, so integer divisions round the way Kubernetes rounds.
Not modeled: the CPU initialization period (callers pass `cpu_unready` per pod), container-level resource
metrics,
pod-level requests, the controller's work-queue jitter (every sync is exactly `SYNC_PERIOD_SECONDS` apart).

Window edges. The controller stamps recommendations and scale events with `time.Now()` during one sync and
compares them with a cutoff `time.Now() - window` taken during a later one (horizontal.go
`getReplicasChangePerPeriod`, `stabilizeRecommendationWithBehaviors`, `normalizeDesiredReplicas`). Syncs come from
two sources, the informer resync every sync period (`AddEventHandlerWithResyncPeriod`) and the re-queue after each
reconcile (`processNextWorkItem`, `AddRateLimited`), so a record made exactly one window (a multiple of the sync
period) before a sync may fall on either side of that cutoff: the real controller leaves it out at that sync or
counts it once more. `HorizontalController.edge_counts` picks the side: False leaves it out, True counts it, None
(default) compares the simulator's exact grid as the source writes the comparison. A prediction that must hold for
any real run simulates both (gpu_policy.drills: the accepted band is their union).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

SYNC_PERIOD_SECONDS = 15  # kube-controller-manager --horizontal-pod-autoscaler-sync-period default
DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance default (config/v1alpha1/defaults.go)
DOWNSCALE_STABILIZATION_SECONDS = 300  # --horizontal-pod-autoscaler-downscale-stabilization default
SCALE_UP_LIMIT_FACTOR = 2.0  # horizontal.go, legacy path only
SCALE_UP_LIMIT_MINIMUM = 4.0
MAX_INT32 = 2**31 - 1

SelectPolicy = Literal["Max", "Min", "Disabled"]
TargetType = Literal["Utilization", "AverageValue", "Value"]
SourceType = Literal["Resource", "Pods", "Object", "External"]


class MetricError(Exception):
    """A metric the controller could not compute (the metrics API failed or returned nothing usable)."""


# -- the spec ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScalingPolicy:
    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int | None = None
    select_policy: SelectPolicy = "Max"
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float | None = None  # behavior.scaleUp|scaleDown.tolerance (HPAConfigurableTolerance gate)

    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


def default_rules(given: ScalingRules | None, default: ScalingRules) -> ScalingRules:
    """autoscaling/v2 defaulting: an absent direction takes the default; absent fields inside it too."""
    if given is None:
        return default
    return replace(
        given,
        stabilization_window_seconds=(
            given.stabilization_window_seconds
            if given.stabilization_window_seconds is not None
            else default.stabilization_window_seconds
        ),
        policies=given.policies or default.policies,
    )


def behavior_from_spec(spec: dict | None) -> Behavior | None:
    """`spec.behavior` of an HPA (or KEDA's horizontalPodAutoscalerConfig.behavior) -> Behavior with defaults."""
    if spec is None:
        return None

    def rules(raw: dict | None) -> ScalingRules | None:
        if raw is None:
            return None
        policies = tuple(
            ScalingPolicy(str(p["type"]), int(p["value"]), int(p["periodSeconds"]))  # type: ignore[arg-type]
            for p in raw.get("policies") or []
        )
        window = raw.get("stabilizationWindowSeconds")
        tolerance = raw.get("tolerance")
        return ScalingRules(
            None if window is None else int(window),
            str(raw.get("selectPolicy") or "Max"),  # type: ignore[arg-type]
            policies,
            None if tolerance is None else parse_quantity(tolerance),
        )

    return Behavior(
        default_rules(rules(spec.get("scaleUp")), DEFAULT_SCALE_UP),
        default_rules(rules(spec.get("scaleDown")), DEFAULT_SCALE_DOWN),
    )


def parse_quantity(value: object) -> float:
    """A Kubernetes quantity (numbers, m/k/M/G/Ki/Mi/Gi suffixes) as a float."""
    text = str(value).strip()
    suffixes = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 1024.0,
        "Mi": 1024.0**2,
        "Gi": 1024.0**3,
        "Ti": 1024.0**4,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def milli(value: float) -> int:
    """Quantity.MilliValue(): the controller works on int64 milli-units."""
    return math.ceil(round(value * 1000, 6))


@dataclass(frozen=True)
class Tolerances:
    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def is_within(self, usage_ratio: float) -> bool:
        # replica_calculator.go Tolerances.isWithin
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


def tolerances_for(
    behavior: Behavior | None, configurable: bool, default: float = DEFAULT_TOLERANCE
) -> Tolerances:
    """Per-direction tolerance from behavior only when the HPAConfigurableTolerance gate is on (beta in 1.34)."""
    if behavior is None or not configurable:
        return Tolerances(default, default)
    down = behavior.scale_down.tolerance
    up = behavior.scale_up.tolerance
    return Tolerances(default if down is None else down, default if up is None else up)


# -- replica calculation (replica_calculator.go)
# ---------------------------------------------------------------
@dataclass(frozen=True)
class PodSample:
    """One pod as the replica calculator sees it. `value` None = no metric for the pod (missing)."""

    name: str
    value: int | None = None  # milli-value of the metric (resource usage in milli-units, or a pods metric)
    request: int | None = None  # milli-value of the resource request (Resource metrics only)
    phase: Literal["Running", "Pending", "Failed"] = "Running"
    ready: bool = True
    deleting: bool = False
    cpu_unready: bool = False  # the CPU initialization-period verdict of groupPods, precomputed by the caller


@dataclass
class _Groups:
    ready_count: int
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def _group_pods(pods: Sequence[PodSample], metrics: dict[str, int], cpu: bool) -> _Groups:
    groups = _Groups(0)
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            groups.ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            groups.unready.add(pod.name)
            continue
        if pod.name not in metrics:
            groups.missing.add(pod.name)
            continue
        # Readiness only matters for CPU (groupPods checks `resource == v1.ResourceCPU`).
        if cpu and pod.cpu_unready:
            groups.unready.add(pod.name)
            continue
        groups.ready_count += 1
    return groups


def _resource_utilization_ratio(
    metrics: dict[str, int], requests: dict[str, int], target: int
) -> tuple[float, int]:
    metrics_total = 0
    requests_total = 0
    for name, value in metrics.items():
        if name not in requests:
            continue  # extraneous metrics (pods that do not exist) are skipped
        metrics_total += value
        requests_total += requests[name]
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = (metrics_total * 100) // requests_total
    return utilization / target, utilization


def _metric_usage_ratio(metrics: dict[str, int], target: int) -> tuple[float, int]:
    usage = sum(metrics.values()) // len(metrics)  # int64 division
    return usage / target, usage


def _replicas_with_missing_and_unready(
    current: int,
    metrics: dict[str, int],
    groups: _Groups,
    tolerances: Tolerances,
    ratio_of: Callable[[dict[str, int]], float],
    assumed_below: Callable[[str], int],
) -> int:
    """The shared second half of GetResourceReplicas and calcPlainMetricReplicas (replica_calculator.go): pods
    without metrics count as at target (`assumed_below`) when scaling down and as 0 when scaling up, unready pods
    as 0 when scaling up; the result is dropped if it lands in tolerance or reverses the direction."""
    usage_ratio = ratio_of(metrics)
    scale_up_with_unready = bool(groups.unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(usage_ratio):
            return current
        return math.ceil(usage_ratio * groups.ready_count)
    if groups.missing and usage_ratio != 1.0:
        for name in groups.missing:
            metrics[name] = assumed_below(name) if usage_ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in groups.unready:
            metrics[name] = 0
    new_ratio = ratio_of(metrics)
    if tolerances.is_within(new_ratio) or (usage_ratio < 1.0 < new_ratio) or (usage_ratio > 1.0 > new_ratio):
        return current
    new_replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return current
    return new_replicas


def resource_utilization_replicas(
    current: int,
    target_utilization: int,
    pods: Sequence[PodSample],
    tolerances: Tolerances,
    resource: str = "cpu",
) -> int:
    """GetResourceReplicas: target type Utilization of a Resource metric."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    metrics = {p.name: p.value for p in pods if p.value is not None}
    if not metrics:
        raise MetricError(
            f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )
    groups = _group_pods(pods, metrics, resource == "cpu")
    for name in groups.ignored | groups.unready:
        metrics.pop(name, None)
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request is None:
            raise MetricError(f"missing request for {resource}")
        requests[pod.name] = pod.request
    fallback = max(100, target_utilization)
    return _replicas_with_missing_and_unready(
        current, metrics, groups, tolerances,
        ratio_of=lambda values: _resource_utilization_ratio(values, requests, target_utilization)[0],
        assumed_below=lambda name: requests[name] * fallback // 100,
    )


def plain_metric_replicas(
    current: int, target_usage: int, pods: Sequence[PodSample], tolerances: Tolerances, resource: str = ""
) -> int:
    """calcPlainMetricReplicas: Pods metrics (AverageValue) and Resource metrics with an AverageValue target."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    metrics = {p.name: p.value for p in pods if p.value is not None}
    groups = _group_pods(pods, metrics, resource == "cpu")
    for name in groups.ignored | groups.unready:
        metrics.pop(name, None)
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return _replicas_with_missing_and_unready(
        current, metrics, groups, tolerances,
        ratio_of=lambda values: _metric_usage_ratio(values, target_usage)[0],
        assumed_below=lambda name: target_usage,
    )


def usage_ratio_replicas(
    current: int, usage_ratio: float, ready_pods: int, tolerances: Tolerances, pods: int | None = None
) -> int:
    """getUsageRatioReplicaCount: Object and External metrics with a Value target (scale by READY pods).

    `pods`: the pods the selector returns (default: `current`). getReadyPodsCount fails only when there is
    no pod at all ("no pods returned by selector while calculating replica count"); pods that exist but are
    not Running and Ready count 0, so the proposal is ceil(ratio x 0) = 0 and the controller clamps it to
    minReplicas (kubernetes pkg/controller/podautoscaler/replica_calculator.go)."""
    if current != 0:
        if tolerances.is_within(usage_ratio):
            return current
        if (current if pods is None else pods) == 0:
            raise MetricError(
                "unable to calculate ready pods: no pods returned by selector while calculating replica count"
            )
        return min(MAX_INT32, math.ceil(usage_ratio * ready_pods))
    return math.ceil(usage_ratio)


def object_value_replicas(
    current: int, usage: int, target: int, ready_pods: int, tolerances: Tolerances, pods: int | None = None
) -> int:
    return usage_ratio_replicas(current, usage / target, ready_pods, tolerances, pods)


def per_pod_total_replicas(
    status_replicas: int, usage: int, target_per_pod: int, tolerances: Tolerances
) -> int:
    """GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas (AverageValue target).

    `desired = ceil(total / target)`: the current replica count only enters the tolerance test.
    """
    replicas = status_replicas
    usage_ratio = usage / (target_per_pod * replicas) if replicas else math.inf
    if not tolerances.is_within(usage_ratio):
        replicas = min(MAX_INT32, math.ceil(usage / target_per_pod))
    return replicas


def external_value_replicas(
    current: int,
    values: Sequence[int],
    target: int,
    ready_pods: int,
    tolerances: Tolerances,
    pods: int | None = None,
) -> int:
    if not values:
        raise MetricError("no metrics returned from external metrics API")
    return usage_ratio_replicas(current, sum(values) / target, ready_pods, tolerances, pods)


def external_per_pod_replicas(
    status_replicas: int, values: Sequence[int], target_per_pod: int, tolerances: Tolerances
) -> int:
    if not values:
        raise MetricError("no metrics returned from external metrics API")
    return per_pod_total_replicas(status_replicas, sum(values), target_per_pod, tolerances)


# -- the controller (horizontal.go)
# ----------------------------------------------------------------------------
@dataclass
class _Event:
    change: int
    at: float
    outdated: bool = False


@dataclass
class _Recommendation:
    replicas: int
    at: float


@dataclass(frozen=True)
class Decision:
    desired: int  # the replicas the controller writes (== current when it does not rescale)
    proposal: int | None  # the metrics' proposal before normalization (None when metrics failed)
    reason: str  # the limiting condition / why: DesiredWithinRange, ScaleUpLimit, ScaleDownStabilized, ...
    rescale: bool
    error: str = ""


def _changes_in_period(period: int, events: list[_Event], now: float, edge_counts: bool = False) -> int:
    """getReplicasChangePerPeriod: the events after now - period (`timestamp.After(cutoff)`); with `edge_counts`,
    also one exactly at the cutoff (see "Window edges")."""
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff or (edge_counts and e.at == cutoff))


def _period_start(current: int, up_events: list[_Event], down_events: list[_Event], period: int, now: float,
                  edge_counts: bool = False) -> int:
    """Replicas at the start of a policy's period: current - added + removed within it (horizontal.go)."""
    return (current - _changes_in_period(period, up_events, now, edge_counts)
            + _changes_in_period(period, down_events, now, edge_counts))


def scale_up_limit(
    current: int, up_events: list[_Event], down_events: list[_Event], rules: ScalingRules, now: float,
    edge_counts: bool = False,
) -> int:
    if rules.select_policy == "Disabled":
        return current
    result: int | None = None
    for policy in rules.policies:
        start = _period_start(current, up_events, down_events, policy.period_seconds, now, edge_counts)
        # Percent rounds up, or a small workload would never grow.
        proposed = start + policy.value if policy.type == "Pods" else math.ceil(start * (1 + policy.value / 100))
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if rules.select_policy == "Min" else max(result, proposed)
    return current if result is None else result


def scale_down_limit(
    current: int, up_events: list[_Event], down_events: list[_Event], rules: ScalingRules, now: float,
    edge_counts: bool = False,
) -> int:
    if rules.select_policy == "Disabled":
        return current
    result: int | None = None
    for policy in rules.policies:
        start = _period_start(current, up_events, down_events, policy.period_seconds, now, edge_counts)
        # Percent truncates: int32(float64(start) * (1 - value/100)).
        proposed = start - policy.value if policy.type == "Pods" else int(start * (1 - policy.value / 100))
        if result is None:
            result = proposed
        else:
            result = max(result, proposed) if rules.select_policy == "Min" else min(result, proposed)
    return current if result is None else result


def pods_removed_within(
    current: int, minimum: int, rules: ScalingRules, window: int, sync_period: int = SYNC_PERIOD_SECONDS
) -> int:
    """How many of `current` pods the controller may remove within `window` seconds when every sync asks for
    `minimum`: convertDesiredReplicasWithBehaviorRate's scale-down limit applied at each sync (0, sync_period,
    ... < window), with the scale-down events of the earlier syncs counted in each policy's period."""
    replicas = current
    down_events: list[_Event] = []
    now = 0
    while now < window and replicas > minimum:
        limit = min(scale_down_limit(replicas, [], down_events, rules, now), replicas)
        new = max(limit, minimum)
        if new < replicas:
            down_events.append(_Event(replicas - new, now))
            replicas = new
        now += sync_period
    return current - replicas


@dataclass(frozen=True)
class MetricProposal:
    """One metric's outcome for a sync: a replica proposal, or the error the controller saw."""

    name: str
    replicas: int | None = None
    error: str = ""


class HorizontalController:
    """The per-HPA state of the controller (recommendations, scale events) and one reconcile per sync."""

    def __init__(
        self,
        min_replicas: int | None,
        max_replicas: int,
        behavior: Behavior | None,
        downscale_stabilization_seconds: int = DOWNSCALE_STABILIZATION_SECONDS,
        edge_counts: bool | None = None,
    ) -> None:
        self.edge_counts = edge_counts
        """Whether a record exactly one window old still counts (module docstring, "Window edges")."""
        self.min_replicas = 1 if min_replicas is None else min_replicas
        self.max_replicas = max_replicas
        self.downscale_window = downscale_stabilization_seconds
        if behavior is not None and behavior.scale_down.stabilization_window_seconds is None:
            # maybeInitScaleDownStabilizationWindow: the controller flag fills the unset window
            behavior = replace(
                behavior,
                scale_down=replace(
                    behavior.scale_down, stabilization_window_seconds=downscale_stabilization_seconds
                ),
            )
        self.behavior = behavior
        self.recommendations: list[_Recommendation] | None = None
        self.up_events: list[_Event] = []
        self.down_events: list[_Event] = []

    # computeReplicasForMetrics
    @staticmethod
    def combine(proposals: Sequence[MetricProposal], spec_replicas: int) -> tuple[int | None, str]:
        replicas = 0
        invalid: list[MetricProposal] = []
        for p in proposals:
            if p.replicas is None:
                invalid.append(p)
            elif replicas == 0 or p.replicas > replicas:
                replicas = p.replicas
        if invalid and (len(invalid) >= len(proposals) or replicas < spec_replicas):
            what = (
                "all metrics failed" if len(invalid) >= len(proposals) else "a metric failed, no scale-down"
            )
            return None, f"{what}: {invalid[0].name}: {invalid[0].error}"
        return replicas, ""

    def reconcile(self, now: float, current: int, proposals: Sequence[MetricProposal]) -> Decision:
        if self.recommendations is None:  # recordInitialRecommendation
            self.recommendations = [_Recommendation(current, now)]
        if current == 0 and self.min_replicas != 0:
            return Decision(0, None, "ScalingDisabled", False)
        if current > self.max_replicas:
            return self._rescale(now, current, self.max_replicas, None, "TooManyReplicas")
        if current < self.min_replicas:
            return self._rescale(now, current, self.min_replicas, None, "TooFewReplicas")
        proposal, error = self.combine(proposals, current)
        if proposal is None:
            return Decision(current, None, "FailedGetMetrics", False, error)
        if self.behavior is None:
            desired, reason = self._normalize_legacy(now, current, proposal)
        else:
            desired, reason = self._normalize_with_behaviors(now, current, proposal)
        return self._rescale(now, current, desired, proposal, reason)

    def _rescale(self, now: float, current: int, desired: int, proposal: int | None, reason: str) -> Decision:
        if desired == current:
            return Decision(current, proposal, reason, False)
        self._store_scale_event(now, current, desired)
        return Decision(desired, proposal, reason, True)

    # legacy path: spec.behavior absent
    def _normalize_legacy(self, now: float, current: int, proposal: int) -> tuple[int, str]:
        assert self.recommendations is not None
        stabilized = proposal
        cutoff = now - self.downscale_window
        old_index = None
        for i, rec in enumerate(self.recommendations):
            if rec.at < cutoff or (self.edge_counts is False and rec.at == cutoff):  # timestamp.Before(cutoff)
                old_index = i
            elif rec.replicas > stabilized:
                stabilized = rec.replicas
        new = _Recommendation(proposal, now)
        if old_index is not None:
            self.recommendations[old_index] = new
        else:
            self.recommendations.append(new)
        reason = "ScaleDownStabilized" if stabilized != proposal else "DesiredWithinRange"
        limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        if self.max_replicas > limit:
            maximum, max_reason = limit, "ScaleUpLimit"
        else:
            maximum, max_reason = self.max_replicas, "TooManyReplicas"
        if stabilized < self.min_replicas:
            return self.min_replicas, "TooFewReplicas"
        if stabilized > maximum:
            return maximum, max_reason
        return stabilized, reason

    def stabilize(self, now: float, current: int, proposal: int) -> tuple[int, str]:
        """stabilizeRecommendationWithBehaviors: lowest in the up window, highest in the down window."""
        assert self.behavior is not None and self.recommendations is not None
        up_window = self.behavior.scale_up.stabilization_window_seconds or 0
        down_window = self.behavior.scale_down.stabilization_window_seconds or 0
        up_cutoff, down_cutoff = now - up_window, now - down_window
        up_rec = down_rec = proposal
        old_index = None
        edge = bool(self.edge_counts)  # timestamp.After(cutoff); the edge counted only when asked
        for i, rec in enumerate(self.recommendations):
            if rec.at > up_cutoff or (edge and rec.at == up_cutoff):
                up_rec = min(rec.replicas, up_rec)
            if rec.at > down_cutoff or (edge and rec.at == down_cutoff):
                down_rec = max(rec.replicas, down_rec)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                old_index = i
        recommendation = max(current, up_rec)
        recommendation = min(recommendation, down_rec)
        new = _Recommendation(proposal, now)
        if old_index is not None:
            self.recommendations[old_index] = new
        else:
            self.recommendations.append(new)
        reason = "ScaleUpStabilized" if proposal >= current else "ScaleDownStabilized"
        return recommendation, reason

    def _normalize_with_behaviors(self, now: float, current: int, proposal: int) -> tuple[int, str]:
        assert self.behavior is not None
        stabilized, stabilize_reason = self.stabilize(now, current, proposal)
        desired, reason = self.rate_limit(now, current, stabilized)
        if reason == "DesiredWithinRange" and stabilized != proposal:
            reason = stabilize_reason
        return desired, reason

    def rate_limit(self, now: float, current: int, desired: int) -> tuple[int, str]:
        """convertDesiredReplicasWithBehaviorRate."""
        assert self.behavior is not None
        if desired > current:
            limit = max(
                scale_up_limit(current, self.up_events, self.down_events, self.behavior.scale_up, now,
                               bool(self.edge_counts)),
                current,
            )
            if self.max_replicas > limit:
                maximum, reason = limit, "ScaleUpLimit"
            else:
                maximum, reason = self.max_replicas, "TooManyReplicas"
            if desired > maximum:
                return maximum, reason
        elif desired < current:
            limit = min(
                scale_down_limit(current, self.up_events, self.down_events, self.behavior.scale_down, now,
                                 bool(self.edge_counts)),
                current,
            )
            if self.min_replicas < limit:
                minimum, reason = limit, "ScaleDownLimit"
            else:
                minimum, reason = self.min_replicas, "TooFewReplicas"
            if desired < minimum:
                return minimum, reason
        return desired, "DesiredWithinRange"

    def _store_scale_event(self, now: float, previous: int, new: int) -> None:
        if self.behavior is None:
            return  # storeScaleEvent: no behavior, no events
        if new > previous:
            events, rules, change = self.up_events, self.behavior.scale_up, new - previous
        else:
            events, rules, change = self.down_events, self.behavior.scale_down, previous - new
        cutoff = now - rules.longest_period()
        old_index = None
        for i, event in enumerate(events):
            if event.at < cutoff:
                event.outdated = True
            if event.outdated:
                old_index = i
        if old_index is not None:
            events[old_index] = _Event(change, now)
        else:
            events.append(_Event(change, now))
