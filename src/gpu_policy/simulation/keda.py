"""KEDA ScaledObject -> the HPA KEDA creates, the prometheus scaler's answer, and `fallback`.

Read from kedacore/keda (v2.20):
- pkg/scaling/resolver + controllers/keda/hpa.go: KEDA owns HPA `keda-hpa-<name>`; minReplicas =
minReplicaCount
  (1 when it is 0: KEDA itself handles 0 <-> 1 with activation), maxReplicas = maxReplicaCount (default 100),
  `advanced.horizontalPodAutoscalerConfig.behavior` is copied verbatim.
- pkg/scalers/scaler.go GetMetricTargetType: trigger `metricType` defaults to AverageValue.
- pkg/scalers/prometheus_scaler.go: `threshold` is the target; the metric is named `s<index>-prometheus`
  (metadata.metricName is ignored since v2.12); an empty result is 0 with ignoreNullValues (default true) or
  the error "prometheus metrics 'prometheus' target may be lost, the result is empty"; more than one series is
  "prometheus query ... returned multiple elements".
- pkg/fallback/fallback.go GetMetricsWithFallback / doFallback (v2.18+): every failed metrics request
  increments the trigger's NumberOfFailures; once it is strictly greater than failureThreshold KEDA returns
  `target * replicas` as a milli-quantity, `int64(target * 1000 * replicas)` with a float target (behavior
  static: fallback.replicas; currentReplicas/IfHigher/IfLower use the workload's replicas). For a Value
  target, replicas are divided by the target's ready replicas first (no fallback when none is ready:
  "error performing fallback"). A success resets the count to 0. The HPA then turns that value into the
  fallback replica count through its own tolerance, stabilization windows and rate policies.
- activationThreshold only governs 0 <-> 1 (ignored when minReplicaCount >= 1); pollingInterval is the
operator's
  activity loop and does not pace the HPA between 1 and N replicas, which asks the metrics adapter every 15 s.

Not modeled: scalingModifiers (composite metrics), useCachedMetrics, scale to/from zero (idle and activation),
non-prometheus triggers other than as a constant, and Prometheus' own evaluation (see `query_shape`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_policy.loading.document import Document
from gpu_policy.promql.text import is_bare_selector, outer_aggregation
from gpu_policy.simulation.hpa import Behavior, MetricError, behavior_from_spec, milli, parse_quantity

QueryShape = Literal["sum", "avg", "max", "min", "count", "series", "unknown"]

_SHAPES: frozenset[str] = frozenset({"sum", "avg", "max", "min", "count"})


def query_shape(query: str) -> QueryShape:
    """The OUTER aggregation of a PromQL query, the only thing the simulator needs to know.

    `sum(x)` / `avg(x)` / `max(x)` / `min(x)` / `count(x)` (with optional by/without, which makes several series
    unless the grouping collapses them - treated as one series here), a bare selector (`series`: one series per
    pod), anything else (`unknown`: binary operators, functions such as rate() at the top, subqueries) is not
    modeled and the simulator refuses it rather than guessing.
    """
    aggregation = outer_aggregation(query)
    if aggregation is not None:
        if aggregation.whole and aggregation.operator in _SHAPES:
            return aggregation.operator  # type: ignore[return-value]
        return "unknown"
    if is_bare_selector(query):
        return "series"
    return "unknown"


def evaluate_query(shape: QueryShape, per_pod: Sequence[float]) -> list[float]:
    """The series Prometheus returns for `shape` over the pods' utilization samples (empty list = no series)."""
    if not per_pod:
        return []  # an aggregation over nothing returns no series, not 0
    if shape == "sum":
        return [float(sum(per_pod))]
    if shape == "avg":
        return [float(statistics.fmean(per_pod))]
    if shape == "max":
        return [float(max(per_pod))]
    if shape == "min":
        return [float(min(per_pod))]
    if shape == "count":
        return [float(len(per_pod))]
    if shape == "series":
        return [float(v) for v in per_pod]
    raise MetricError(
        "query shape not modeled by the simulator (only an outer sum/avg/max/min/count or a bare selector is)"
    )


@dataclass(frozen=True)
class Trigger:
    index: int
    type: str
    metric_type: Literal["AverageValue", "Value", "Utilization"]
    threshold: float
    query: str
    ignore_null_values: bool
    activation_threshold: float | None
    name: str

    @property
    def metric_name(self) -> str:
        return f"s{self.index}-{self.type}"

    @property
    def shape(self) -> QueryShape:
        return query_shape(self.query) if self.type == "prometheus" else "unknown"

    def scaler_value(self, per_pod: Sequence[float]) -> float:
        """prometheus_scaler.go ExecutePromQuery: one value, 0 for an empty answer with ignoreNullValues."""
        series = evaluate_query(self.shape, per_pod)
        if not series:
            if self.ignore_null_values:
                return 0.0
            raise MetricError("prometheus metrics 'prometheus' target may be lost, the result is empty")
        if len(series) > 1:
            raise MetricError(f"prometheus query {self.query.strip()} returned multiple elements")
        return series[0]


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "t"}


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: str = "static"


@dataclass(frozen=True)
class ScaledObjectModel:
    name: str
    namespace: str
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    polling_interval: int
    cooldown_period: int
    behavior: Behavior | None
    triggers: tuple[Trigger, ...]
    fallback: Fallback | None
    doc: Document | None = field(default=None, compare=False)

    @property
    def hpa_name(self) -> str:
        return f"keda-hpa-{self.name}"

    @property
    def hpa_min_replicas(self) -> int:
        return self.min_replicas if self.min_replicas > 0 else 1

    @classmethod
    def from_document(cls, doc: Document) -> ScaledObjectModel:
        spec = doc.spec or {}
        target = spec.get("scaleTargetRef") or {}
        triggers = []
        for i, raw in enumerate(spec.get("triggers") or []):
            meta = raw.get("metadata") or {}
            threshold = meta.get("threshold") if meta.get("threshold") is not None else meta.get("value")
            activation = meta.get("activationThreshold")
            triggers.append(
                Trigger(
                    index=i,
                    type=str(raw.get("type", "")),
                    metric_type=str(raw.get("metricType") or "AverageValue"),  # type: ignore[arg-type]
                    threshold=parse_quantity(threshold) if threshold is not None else 0.0,
                    query=str(meta.get("query", "")),
                    ignore_null_values=_as_bool(meta.get("ignoreNullValues"), True),
                    activation_threshold=parse_quantity(activation) if activation is not None else None,
                    name=str(raw.get("name", "")),
                )
            )
        fallback_raw = spec.get("fallback")
        fallback = None
        if fallback_raw:
            fallback = Fallback(
                int(fallback_raw.get("failureThreshold", 0)),
                int(fallback_raw.get("replicas", 0)),
                str(fallback_raw.get("behavior") or "static"),
            )
        hpa_config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
        return cls(
            name=doc.name,
            namespace=doc.namespace,
            target_kind=str(target.get("kind") or "Deployment"),
            target_name=str(target.get("name", "")),
            min_replicas=int(spec.get("minReplicaCount", 0)),
            max_replicas=int(spec.get("maxReplicaCount", 100)),
            polling_interval=int(spec.get("pollingInterval", 30)),
            cooldown_period=int(spec.get("cooldownPeriod", 300)),
            behavior=behavior_from_spec(hpa_config.get("behavior")),
            triggers=tuple(triggers),
            fallback=fallback,
            doc=doc,
        )


def fallback_replicas(fb: Fallback, current_replicas: int) -> float:
    """doFallback's replica count by `fallback.behavior` (an unknown behavior falls back to `replicas`)."""
    if fb.behavior == "currentReplicas":
        return float(current_replicas)
    if fb.behavior == "currentReplicasIfHigher":
        return float(max(current_replicas, fb.replicas))
    if fb.behavior == "currentReplicasIfLower":
        return float(min(current_replicas, fb.replicas))
    return float(fb.replicas)


def do_fallback(
    fb: Fallback, metric_type: str, target: float, current_replicas: int, ready_replicas: int
) -> float | None:
    """kedacore/keda pkg/fallback/fallback.go doFallback (v2.18+, kedacore/keda#6655): the metric value that
    makes the HPA settle on the fallback replica count, or None when KEDA cannot compute it ("error performing
    fallback").

    AverageValue: target x replicas (the HPA divides by the target). Value: the HPA multiplies value / target
    by the READY pods, so replicas are first divided by the ready replica count; with no ready replica
    KEDA logs "readyReplicas is zero, cannot do fallback" and returns no metric. The target is read as a float
    (AsApproximateFloat64) and the result is `NewMilliQuantity(int64(normalisationValue*1000*replicas))`, so
    a fractional threshold such as "0.8" is kept, not truncated to 0."""
    replicas = fallback_replicas(fb, current_replicas)
    if metric_type == "Value":
        if ready_replicas <= 0:
            return None
        replicas /= ready_replicas
    normalisation = target if metric_type in ("AverageValue", "Value") else 0.0
    return int(normalisation * 1000 * replicas) / 1000


@dataclass
class FallbackState:
    """The ScaledObject's `status.health[metric].numberOfFailures` as KEDA keeps it per metric."""

    failures: dict[str, int] = field(default_factory=dict)

    def observe(
        self,
        so: ScaledObjectModel,
        trigger: Trigger,
        value: float | None,
        error: str,
        current_replicas: int,
        ready_replicas: int | None = None,
    ) -> tuple[float | None, str, bool]:
        """GetMetricsWithFallback: (metric value for the HPA, error, fallback active).

        `ready_replicas`: Running and Ready pods of the target (getReadyReplicasCount), needed by Value
        triggers; None means every current replica is ready."""
        if not error:
            self.failures[trigger.metric_name] = 0
            return value, "", False
        count = self.failures.get(trigger.metric_name, 0) + 1
        self.failures[trigger.metric_name] = count
        fb = so.fallback
        if fb is None:
            return None, error, False
        if fb.failure_threshold < 0 or fb.replicas < 0:
            return None, error, False  # HasValidFallback
        if count <= fb.failure_threshold:
            return None, error, False
        if fb.behavior == "scalingModifiers":
            # a placeholder for the scalingModifiers formula's `??`; formulas are not modeled
            return None, error, False
        ready = current_replicas if ready_replicas is None else ready_replicas
        # the HPA's target is the trigger's threshold as a milli-quantity
        fallback_value = do_fallback(fb, trigger.metric_type, milli(trigger.threshold) / 1000,
                                     current_replicas, ready)
        if fallback_value is None:
            return None, "error performing fallback", False
        return fallback_value, "", True
