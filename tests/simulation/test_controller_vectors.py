"""The simulator against the controllers' own unit-test cases (inputs and expected replicas copied as numbers).

Sources: kubernetes/kubernetes pkg/controller/podautoscaler/replica_calculator_test.go and horizontal_test.go
(TestScalingWithRules, TestNormalizeDesiredReplicasWithBehavior, TestCalculateScale{Up,Down}Limit...), and
kedacore/keda pkg/fallback/fallback_test.go. The k8s test harness gives each pod two containers, so a pod's
metric
is 2 x level and its request 2 x 1000m: ratios (and so replicas) are those of level / 1000m.
"""

from __future__ import annotations

import pytest

from gpu_policy.simulation.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    HorizontalController,
    MetricError,
    PodSample,
    ScalingPolicy,
    ScalingRules,
    Tolerances,
    _Event,
    _Recommendation,
    external_per_pod_replicas,
    external_value_replicas,
    object_value_replicas,
    per_pod_total_replicas,
    plain_metric_replicas,
    pods_removed_within,
    resource_utilization_replicas,
    scale_down_limit,
    scale_up_limit,
)
from gpu_policy.simulation.keda import Fallback, FallbackState, ScaledObjectModel, Trigger

TOL = Tolerances()


def cpu_pods(
    levels: list[int],
    n_pods: int | None = None,
    unready: tuple[int, ...] = (),
    phases: dict[int, str] | None = None,
    deleting: tuple[int, ...] = (),
) -> list[PodSample]:
    n = len(levels) if n_pods is None else n_pods
    pods = []
    for i in range(n):
        value = 2 * levels[i] if i < len(levels) else None
        pods.append(
            PodSample(
                f"p{i}",
                value,
                2000,
                (phases or {}).get(i, "Running"),  # type: ignore[arg-type]
                deleting=i in deleting,
                cpu_unready=i in unready,
            )
        )
    return pods


# replica_calculator_test.go ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "current", "pods", "target", "expected"),
    [
        ("TestReplicaCalcScaleUp", 3, cpu_pods([300, 500, 700]), 30, 5),
        ("TestReplicaCalcScaleUpUnreadyLessScale", 3, cpu_pods([300, 500, 700], unready=(0,)), 30, 4),
        ("TestReplicaCalcScaleUpUnreadyNoScale", 3, cpu_pods([400, 500, 700], unready=(1, 2)), 30, 3),
        (
            "TestReplicaCalcScaleUpIgnoresFailedPods",
            2,
            cpu_pods([500, 700], 4, phases={2: "Failed", 3: "Failed"}),
            30,
            4,
        ),
        ("TestReplicaCalcScaleUpIgnoresDeletionPods", 2, cpu_pods([500, 700], 4, deleting=(2, 3)), 30, 4),
        ("TestReplicaCalcScaleDown", 5, cpu_pods([100, 300, 500, 250, 250]), 50, 3),
        (
            "TestReplicaCalcScaleDownExcludeUnreadyPods",
            5,
            cpu_pods([100, 300, 500, 250, 250], unready=(3, 4)),
            50,
            2,
        ),
        (
            "TestReplicaCalcScaleDownExcludeUnscheduledPods",
            5,
            cpu_pods([100], 5, phases={1: "Pending", 2: "Pending", 3: "Pending", 4: "Pending"}),
            50,
            1,
        ),
        ("TestReplicaCalcMissingMetrics", 4, cpu_pods([400, 95], 4), 100, 3),
    ],
)
def test_resource_utilization(
    name: str, current: int, pods: list[PodSample], target: int, expected: int
) -> None:
    assert resource_utilization_replicas(current, target, pods, TOL) == expected, name


def test_replica_calc_tolerance() -> None:
    # TestReplicaCalcTolerance: requests 0.9/1.0/1.1, levels 1010/1030/1020, target 100 -> 3 (102 % is
    # within 10 %)
    pods = [
        PodSample(f"p{i}", 2 * lvl, 2 * req)
        for i, (lvl, req) in enumerate([(1010, 900), (1030, 1000), (1020, 1100)])
    ]
    assert resource_utilization_replicas(3, 100, pods, TOL) == 3


def test_replica_calc_superfluous_metrics() -> None:
    # TestReplicaCalcSuperfluousMetrics: 4 pods (levels 4000/9500/3000/7000), target 100 -> 24; the two
    # metrics of
    # pods that do not exist are skipped by the calculator and have no pod to attach to here
    pods = cpu_pods([4000, 9500, 3000, 7000])
    assert resource_utilization_replicas(4, 100, pods, TOL) == 24


@pytest.mark.parametrize(
    ("name", "current", "levels", "n_pods", "target", "expected"),
    [
        ("TestReplicaCalcScaleUpCM", 3, [20000, 10000, 30000], 3, 15000, 4),
        ("TestReplicaCalcScaleDownCM", 5, [12000] * 5, 5, 20000, 3),
        ("TestReplicaCalcToleranceCM", 3, [20000, 21000, 21000], 3, 20000, 3),
        ("TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", 5, [20000, 19000, 21000], 5, 20000, 5),
    ],
)
def test_pods_metric(
    name: str, current: int, levels: list[int], n_pods: int, target: int, expected: int
) -> None:
    pods = [PodSample(f"p{i}", levels[i] if i < len(levels) else None) for i in range(n_pods)]
    assert plain_metric_replicas(current, target, pods, TOL) == expected, name


@pytest.mark.parametrize(
    ("name", "call", "expected"),
    [
        ("TestReplicaCalcScaleUpCMObject", lambda: object_value_replicas(3, 20000, 15000, 3, TOL), 4),
        (
            "TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods",
            lambda: object_value_replicas(3, 50000, 10000, 1, TOL),
            5,
        ),
        ("TestReplicaCalcScaleDownCMObject", lambda: object_value_replicas(5, 12000, 20000, 5, TOL), 3),
        ("TestReplicaCalcToleranceCMObject", lambda: object_value_replicas(3, 20666, 20000, 3, TOL), 3),
        ("TestReplicaCalcScaleUpCMPerPodObject", lambda: per_pod_total_replicas(3, 20000, 5000, TOL), 4),
        ("TestReplicaCalcScaleDownPerPodCMObject", lambda: per_pod_total_replicas(5, 6000, 2000, TOL), 3),
        ("TestReplicaCalcTolerancePerPodCMObject", lambda: per_pod_total_replicas(4, 20166, 5000, TOL), 4),
        (
            "TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods",
            lambda: external_value_replicas(3, [8600], 4400, 1, TOL),
            2,
        ),
        ("TestReplicaCalcScaleDownCMExternal", lambda: external_value_replicas(5, [8600], 14334, 5, TOL), 3),
        ("TestReplicaCalcToleranceCMExternal", lambda: external_value_replicas(3, [8600], 8888, 3, TOL), 3),
        (
            "TestReplicaCalcScaleUpPerPodCMExternal",
            lambda: external_per_pod_replicas(3, [8600], 2150, TOL),
            4,
        ),
        (
            "TestReplicaCalcScaleDownPerPodCMExternal",
            lambda: external_per_pod_replicas(5, [8600], 2867, TOL),
            3,
        ),
        (
            "TestReplicaCalcTolerancePerPodCMExternal",
            lambda: external_per_pod_replicas(3, [8600], 2900, TOL),
            3,
        ),
    ],
)
def test_object_and_external(name: str, call, expected: int) -> None:  # type: ignore[no-untyped-def]
    assert call() == expected, name


# horizontal_test.go TestScalingWithRules (convertDesiredReplicasWithBehaviorRate) ------------------------
def rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> ScalingRules:
    """generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow)."""
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, "Max", tuple(policies))


def uniform_events(changes: list[int], period: int, now: float) -> list[_Event]:
    """generateEventsUniformDistribution: events at the centres of equal segments of the last `period` s."""
    segment = period / len(changes)
    return [_Event(c, now - (period - segment * (i + 1) + segment / 2)) for i, c in enumerate(changes)]


NOW = 10_000.0


@pytest.mark.parametrize(
    (
        "name",
        "up",
        "down",
        "up_events",
        "down_events",
        "minimum",
        "maximum",
        "current",
        "desired",
        "expected",
        "condition",
    ),
    [
        ("scaleUp with default behavior", None, None, [], [], 1, 1000, 10, 50, 20, "ScaleUpLimit"),
        (
            "scaleUp with pods policy larger than percent policy",
            rules(100, 60, 100, 60, 0),
            None,
            [],
            [],
            1,
            1000,
            10,
            500,
            110,
            "ScaleUpLimit",
        ),
        (
            "scaleUp with percent policy larger than pods policy",
            rules(2, 60, 100, 60, 0),
            None,
            [],
            [],
            1,
            1000,
            10,
            500,
            20,
            "ScaleUpLimit",
        ),
        (
            "scaleUp with pod policy limitation",
            rules(30, 60, 0, 0, 0),
            None,
            [],
            [],
            1,
            1000,
            10,
            50,
            40,
            "ScaleUpLimit",
        ),
        (
            "scaleUp with percent policy limitation",
            rules(0, 0, 200, 60, 0),
            None,
            [],
            [],
            1,
            1000,
            10,
            50,
            30,
            "ScaleUpLimit",
        ),
        (
            "scaleDown with percent policy larger than pod policy",
            None,
            rules(20, 60, 1, 60, 300),
            [],
            [],
            1,
            1000,
            100,
            2,
            80,
            "ScaleDownLimit",
        ),
        (
            "scaleDown with pod policy larger than percent policy",
            None,
            rules(2, 60, 1, 60, 300),
            [],
            [],
            1,
            1000,
            100,
            2,
            98,
            "ScaleDownLimit",
        ),
        (
            "scaleDown with spec MinReplicas limitation with large percent policy",
            None,
            rules(0, 0, 100, 60, 300),
            [],
            [],
            5,
            1000,
            10,
            2,
            5,
            "TooFewReplicas",
        ),
        (
            "scaleDown with percent policy limitation",
            None,
            rules(0, 0, 50, 60, 300),
            [],
            [],
            1,
            1000,
            10,
            5,
            5,
            "DesiredWithinRange",
        ),
        (
            "scaleUp with spec MaxReplicas limitation with large pod policy and events",
            rules(300, 60, 0, 0, 0),
            None,
            [1, 5, 9],
            [],
            1,
            200,
            100,
            500,
            200,
            "TooManyReplicas",
        ),
        (
            "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
            rules(5, 120, 0, 0, 0),
            None,
            [1, 5, 9],
            [],
            1,
            1000,
            100,
            500,
            100,
            "ScaleUpLimit",
        ),
        (
            "scaleUp with pod policy and previous scale up events",
            rules(150, 120, 0, 0, 0),
            None,
            [1, 5, 9],
            [],
            1,
            1000,
            100,
            500,
            235,
            "ScaleUpLimit",
        ),
        (
            "scaleUp with percent policy and previous scale up events",
            rules(0, 0, 200, 120, 0),
            None,
            [1, 5, 9],
            [],
            1,
            1000,
            100,
            500,
            255,
            "ScaleUpLimit",
        ),
        (
            "scaleDown with pod policy limitation and previous events",
            None,
            rules(5, 120, 0, 0, 300),
            [],
            [1, 5, 9],
            1,
            1000,
            100,
            2,
            100,
            "ScaleDownLimit",
        ),
        (
            "scaleDown with percent policy limitation and previous events",
            None,
            rules(0, 0, 50, 120, 300),
            [],
            [2, 4, 6],
            1,
            1000,
            100,
            0,
            56,
            "ScaleDownLimit",
        ),
        (
            "scaleDown with previous events preventing further scale down",
            None,
            rules(0, 0, 10, 120, 300),
            [],
            [10, 10, 10],
            1,
            1000,
            100,
            0,
            100,
            "ScaleDownLimit",
        ),
        (
            "scaleDown with with previous events still allowing more scale down",
            None,
            rules(0, 0, 1000, 120, 300),
            [],
            [10, 10, 10],
            1,
            1000,
            10,
            5,
            5,
            "DesiredWithinRange",
        ),
    ],
)
def test_scaling_with_rules(
    name: str,
    up: ScalingRules | None,
    down: ScalingRules | None,
    up_events: list[int],
    down_events: list[int],
    minimum: int,
    maximum: int,
    current: int,
    desired: int,
    expected: int,
    condition: str,
) -> None:
    controller = HorizontalController(
        minimum, maximum, Behavior(up or DEFAULT_SCALE_UP, down or DEFAULT_SCALE_DOWN)
    )
    controller.up_events = uniform_events(up_events, 120, NOW) if up_events else []
    controller.down_events = uniform_events(down_events, 120, NOW) if down_events else []
    assert controller.rate_limit(NOW, current, desired) == (expected, condition), name


@pytest.mark.parametrize(
    ("name", "recs", "current", "desired", "up_window", "down_window", "expected"),
    [
        ("simple scale down stabilization", [(4, -120), (5, -60)], 100, 3, 0, 180, 5),
        ("simple scale up stabilization", [(4, -120), (5, -60)], 1, 7, 300, 0, 4),
        ("no scale down stabilization", [(1, -120), (2, -60)], 100, 3, 300, 0, 3),
        (
            "scale down stabilization, reuse one of obsolete recommendation element",
            [(10, -600), (4, -60), (5, -120), (9, -540)],
            100,
            3,
            0,
            180,
            5,
        ),
        (
            "scale up stabilization, reuse one of obsolete recommendation element",
            [(10, -6000), (6, -60), (5, -120), (9, -180)],
            1,
            100,
            300,
            300,
            5,
        ),
    ],
)
def test_stabilization(
    name: str,
    recs: list[tuple[int, int]],
    current: int,
    desired: int,
    up_window: int,
    down_window: int,
    expected: int,
) -> None:
    """TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors)."""
    controller = HorizontalController(1, 1000, Behavior(ScalingRules(up_window), ScalingRules(down_window)))
    controller.recommendations = [_Recommendation(r, NOW + at) for r, at in recs]
    assert controller.stabilize(NOW, current, desired)[0] == expected, name


def test_select_policy_min() -> None:
    """TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors (selectPolicy Min)."""
    both = (ScalingPolicy("Pods", 2, 60), ScalingPolicy("Percent", 50, 60))
    assert scale_up_limit(1, [], [], ScalingRules(300, "Min", both), NOW) == 2
    assert scale_down_limit(5, [], [], ScalingRules(300, "Min", both), NOW) == 3


def test_legacy_scale_up_limit_and_disabled() -> None:
    """TestConvertDesiredReplicasWithRules: without behavior, 3 -> 1000 is capped at max(2 x 3, 4) = 6; and
    selectPolicy Disabled never scales in that direction."""
    legacy = HorizontalController(1, 2000, None)
    assert legacy.reconcile(0, 3, []).desired == 3  # no metrics at all: nothing to do
    from gpu_policy.simulation.hpa import MetricProposal

    assert legacy.reconcile(15, 3, [MetricProposal("m", 1000)]).desired == 6
    disabled = HorizontalController(1, 100, Behavior(ScalingRules(0, "Disabled", DEFAULT_SCALE_UP.policies)))
    assert disabled.reconcile(0, 3, [MetricProposal("m", 50)]).desired == 3


def test_some_metrics_failing_blocks_scale_down_but_not_scale_up() -> None:
    """TestNoScaleDownOneMetricInvalid (5 -> stays 5) and TestScaleUpOneMetricEmpty (3 -> 4)."""
    from gpu_policy.simulation.hpa import MetricProposal

    down = HorizontalController(2, 6, None)
    assert down.reconcile(0, 5, [MetricProposal("cpu", 3), MetricProposal("x", None, "boom")]).desired == 5
    up = HorizontalController(2, 6, None)
    assert up.reconcile(0, 3, [MetricProposal("cpu", 4), MetricProposal("qps", None, "boom")]).desired == 4
    assert (
        up.reconcile(15, 4, [MetricProposal("a", None, "x"), MetricProposal("b", None, "y")]).rescale is False
    )


# kedacore/keda pkg/fallback/fallback_test.go --------------------------------------------------------------
def _so(fallback: Fallback | None, metric_type: str = "AverageValue") -> tuple[ScaledObjectModel, Trigger]:
    trigger = Trigger(0, "prometheus", metric_type, 10.0, "sum(x)", False, None, "")  # type: ignore[arg-type]
    return ScaledObjectModel(
        "so", "ns", "Deployment", "app", 1, 10, 30, 300, None, (trigger,), fallback
    ), trigger


def test_keda_fallback_vectors() -> None:
    so, trigger = _so(Fallback(3, 10))
    state = FallbackState({trigger.metric_name: 3})
    # "should return a normalised metric when number of failures are beyond threshold": 3 -> 4 failures,
    # value 100
    assert state.observe(so, trigger, None, "Some error", 1) == (100.0, "", True)
    assert state.failures[trigger.metric_name] == 4
    # "should bump the number of failures when metrics call fails": 0 -> 1, error propagated
    state = FallbackState({trigger.metric_name: 0})
    assert state.observe(so, trigger, None, "Some error", 1) == (None, "Some error", False)
    assert state.failures[trigger.metric_name] == 1
    # "should reset the health status when scaler metrics are available": 5 failures -> 0, value passes
    # through
    state = FallbackState({trigger.metric_name: 5})
    assert state.observe(so, trigger, 6.0, "", 1) == (6.0, "", False)
    assert state.failures[trigger.metric_name] == 0
    # "should return error when fallback is enabled but scaledobject has invalid parameter" (threshold -3)
    bad, bad_trigger = _so(Fallback(-3, 10))
    assert FallbackState({bad_trigger.metric_name: 3}).observe(bad, bad_trigger, None, "Some error", 1)[1]
    # "should behave as if fallback is disabled when the metrics spec target type is not average value
    # metric" was removed upstream with kedacore/keda#6655 (v2.18): isFallbackEnabled no longer looks at the
    # target type, so a Value trigger now falls back (see test_keda_fallback_value_triggers).


@pytest.mark.parametrize(("behavior", "current", "expected"), [
    # fallback_test.go "should use fallback replicas when current replicas is lower when behavior is
    # 'currentReplicasIfHigher'": 10 replicas x target 10, current 4
    ("currentReplicasIfHigher", 4, 100.0),
    # "should use current replicas when behavior is 'currentReplicas'": 6 x 10
    ("currentReplicas", 6, 60.0),
    # "should ignore current replicas when behavior is 'static'": 10 x 10
    ("static", 15, 100.0),
    ("currentReplicasIfLower", 4, 40.0),
])
def test_keda_fallback_behaviors(behavior: str, current: int, expected: float) -> None:
    so, trigger = _so(Fallback(3, 10, behavior))
    assert FallbackState({trigger.metric_name: 3}).observe(so, trigger, None, "some error", current) == (
        expected, "", True)


def test_keda_fallback_value_triggers() -> None:
    """pkg/fallback/fallback.go doFallback (v2.18+, kedacore/keda#6655): for a Value target the replicas are
    divided by the ready replicas, so the HPA's ceil(ready x value / target) lands on fallback.replicas; no
    ready replica means no fallback ("readyReplicas is zero, cannot do fallback" -> "error performing
    fallback"). Vectors computed from doFallback: the fallback_test.go versions in the reference index hold no
    Value-trigger case."""
    so, trigger = _so(Fallback(3, 10), "Value")
    # 10 replicas / 4 ready x target 10 = 25; the HPA then asks ceil(4 x 25 / 10) = 10 replicas
    value, error, active = FallbackState({trigger.metric_name: 3}).observe(so, trigger, None, "e", 4, 4)
    assert (value, error, active) == (25.0, "", True)
    assert external_value_replicas(4, [25000], 10000, 4, TOL) == 10
    # 10 / 3 ready: int64(10 x 1000 x 3.333...) milli = 33333 -> 33.333; ceil(3 x 33.333 / 10) = 10
    assert FallbackState({trigger.metric_name: 3}).observe(so, trigger, None, "e", 5, 3)[0] == 33.333
    assert external_value_replicas(5, [33333], 10000, 3, TOL) == 10
    # no ready replica: the error stays, fallback inactive
    assert FallbackState({trigger.metric_name: 3}).observe(so, trigger, None, "e", 4, 0) == (
        None, "error performing fallback", False)
    # below the threshold the scaler's error is returned whatever the type
    assert FallbackState({trigger.metric_name: 0}).observe(so, trigger, None, "e", 4, 4) == (None, "e", False)


def test_keda_fallback_fractional_threshold() -> None:
    """normalisationValue is AsApproximateFloat64() of the target and the metric is
    NewMilliQuantity(int64(normalisationValue * 1000 * replicas)): a threshold of 0.8 with 10 fallback
    replicas gives 8 (8000 milli), not int64(0.8) x 10 = 0 as before v2.18's float port."""
    trigger = Trigger(0, "prometheus", "AverageValue", 0.8, "sum(x)", False, None, "")
    so = ScaledObjectModel("so", "ns", "Deployment", "app", 1, 20, 30, 300, None, (trigger,), Fallback(3, 10))
    value, _, active = FallbackState({trigger.metric_name: 3}).observe(so, trigger, None, "e", 2)
    assert (value, active) == (8.0, True)
    # the HPA then proposes ceil(8000 / 800) = 10 replicas
    assert external_per_pod_replicas(2, [8000], 800, TOL) == 10
    # 0.25 per pod x 3 replicas = 750 milli
    quarter = Trigger(0, "prometheus", "AverageValue", 0.25, "sum(x)", False, None, "")
    so = ScaledObjectModel("so", "ns", "Deployment", "app", 1, 20, 30, 300, None, (quarter,), Fallback(0, 3))
    assert FallbackState().observe(so, quarter, None, "e", 1)[0] == 0.75


def test_usage_ratio_with_pods_but_none_ready_proposes_zero() -> None:
    """getUsageRatioReplicaCount x getReadyPodsCount: pods exist but none is Running and Ready -> ready
    count 0 -> ceil(ratio x 0) = 0 (clamped to minReplicas by the controller); only an empty pod list is
    an error."""
    assert external_value_replicas(3, [8600], 4400, 0, TOL) == 0
    assert object_value_replicas(3, 20000, 10000, 0, TOL, pods=3) == 0
    with pytest.raises(MetricError, match="no pods returned by selector"):
        external_value_replicas(3, [8600], 4400, 0, TOL, pods=0)
    # within tolerance the current count is kept before pods are even listed
    assert external_value_replicas(3, [4400], 4400, 0, TOL, pods=0) == 3


@pytest.mark.parametrize(("policies", "select", "current", "minimum", "removed"), [
    ((ScalingPolicy("Percent", 25, 60),), "Max", 2, 1, 1),   # int32(2 x 0.75) = 1
    ((ScalingPolicy("Percent", 25, 60),), "Max", 4, 1, 1),
    ((ScalingPolicy("Percent", 25, 60),), "Max", 5, 1, 2),   # int32(3.75) = 3
    ((ScalingPolicy("Pods", 1, 15),), "Max", 10, 1, 4),      # syncs at 0, 15, 30, 45
    ((ScalingPolicy("Pods", 1, 15),), "Max", 3, 1, 2),       # stops at the minimum
    ((ScalingPolicy("Percent", 10, 30),), "Max", 3, 1, 2),   # 3 -> 2 at 0s, 2 -> 1 at 30s
    ((ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)), "Min", 10, 1, 1),
    ((ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)), "Max", 10, 1, 4),
    ((ScalingPolicy("Pods", 4, 60),), "Disabled", 10, 1, 0),
])
def test_pods_removed_within_a_window(
    policies: tuple[ScalingPolicy, ...], select: str, current: int, minimum: int, removed: int
) -> None:
    rules = ScalingRules(None, select, policies)  # type: ignore[arg-type]
    assert pods_removed_within(current, minimum, rules, 60) == removed
