"""Edge cases of the static alert rules."""

from __future__ import annotations

import pytest

from gpu_policy.policy.loader import PolicySet
from gpu_policy.promql.text import comparison_threshold
from gpu_policy.rules.alerts_static import divides_used_by_free, prom_duration
from tests.rules._helpers import run_rule


@pytest.mark.parametrize(
    ("expr", "wrong"),
    [
        ("(DCGM_FI_DEV_FB_USED / DCGM_FI_DEV_FB_FREE) > 0.9", True),
        ("sum by (gpu) (DCGM_FI_DEV_FB_USED) / sum by (gpu) (DCGM_FI_DEV_FB_FREE) > 0.9", True),
        ("DCGM_FI_DEV_FB_USED / DCGM_FI_DEV_FB_FREE + DCGM_FI_DEV_FB_USED > 0.9", True),
        ("DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9", False),
        ("1 - DCGM_FI_DEV_FB_FREE / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9", False),
    ],
)
def test_memory_ratio(expr: str, wrong: bool) -> None:
    assert divides_used_by_free(expr) is wrong


def test_threshold_and_duration_parsing() -> None:
    assert comparison_threshold("DCGM_FI_DEV_GPU_UTIL > 90") == (">", 90.0)
    assert comparison_threshold('x{a=">5"} >= bool 0.9') == (">=", 0.9)
    assert prom_duration("1h30m") == 5400 and prom_duration("2d") == 172800 and prom_duration("5x") is None


RULE = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {{name: r, namespace: m}}
spec:
  groups:
    - name: g
      rules:
        - alert: {name}
          expr: {expr}
          for: 5m
          labels: {{severity: warning}}
          annotations: {{summary: {summary!r}}}
"""


def test_fleet_average_is_flagged_but_grouped_average_is_not() -> None:
    def run(expr: str) -> list[tuple[str, str]]:
        return run_rule("gpu-alert-not-fleet-average", RULE.format(name="A", expr=expr, summary="s"))

    assert run("avg(DCGM_FI_DEV_GPU_UTIL) > 90")
    assert run("avg by () (DCGM_FI_DEV_GPU_UTIL) > 90")
    assert not run("avg by (pod) (DCGM_FI_DEV_GPU_UTIL) > 90")
    assert not run("avg(DCGM_FI_DEV_GPU_UTIL) by (gpu, Hostname) > 90")
    assert not run("avg(up) > 0")  # not a DCGM alert


def test_summary_must_name_gpu_and_pod_unless_absent() -> None:
    def run(expr: str, summary: str) -> list[tuple[str, str]]:
        return run_rule("gpu-alert-names-gpu-and-pod", RULE.format(name="A", expr=expr, summary=summary))

    assert "{{ $labels.pod }}" in run("DCGM_FI_DEV_GPU_UTIL > 85", "GPU {{ $labels.gpu }} busy")[0][1]
    assert not run("DCGM_FI_DEV_GPU_UTIL > 85", "GPU {{ .Labels.gpu }} of {{ $labels.pod }} busy")
    assert not run("absent(DCGM_FI_DEV_GPU_UTIL)", "no data")


def test_hardware_health_alerts_name_the_gpu_but_not_the_pod() -> None:
    """Temperature, power, clocks, XID, ECC, NVLink: acted on per GPU and node, whatever pod holds the GPU."""
    def run(expr: str, summary: str) -> list[tuple[str, str]]:
        return run_rule("gpu-alert-names-gpu-and-pod", RULE.format(name="A", expr=expr, summary=summary))

    for expr in ("DCGM_FI_DEV_GPU_TEMP > 85", "DCGM_FI_DEV_POWER_USAGE > 400", "DCGM_FI_DEV_SM_CLOCK < 500",
                 "DCGM_FI_DEV_XID_ERRORS > 0", "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[5m]) > 0",
                 "rate(DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL[5m]) > 0"):
        assert not run(expr, "GPU {{ $labels.gpu }} on {{ $labels.Hostname }}"), expr
        found = run(expr, "a GPU is unwell")  # still must name the GPU
        assert len(found) == 1 and "{{ $labels.gpu }}" in found[0][1] and "pod" not in found[0][1], expr
    # a workload metric mixed in makes it a workload alert again
    assert run("DCGM_FI_DEV_GPU_TEMP > 85 and DCGM_FI_DEV_GPU_UTIL > 90", "GPU {{ $labels.gpu }} hot")


def test_alert_conventions_judge_nothing_without_an_alert_policy() -> None:
    """Another team's PrometheusRule under the defaults: no `for`, no summary, an unnamed pod, a fleet average."""
    text = RULE.format(name="TeamAlert", expr="avg(DCGM_FI_DEV_GPU_UTIL) > 90", summary="busy").replace(
        "for: 5m", "")
    for rule_id in ("alert-is-complete", "gpu-alert-names-gpu-and-pod", "gpu-alert-not-fleet-average",
                    "gpu-alert-thresholds-match-policy"):
        assert run_rule(rule_id, text, PolicySet.defaults()) == [], rule_id
    assert run_rule("gpu-alert-not-fleet-average", text)  # the reference profile chose them
    assert "`for`" in run_rule("alert-is-complete", text)[0][1]


def test_policy_alert_found_by_name_compares_threshold_for_and_severity() -> None:
    found = run_rule(
        "gpu-alert-thresholds-match-policy",
        RULE.format(
            name="GPUMemoryPressure",
            expr="DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.8",
            summary="s",
        ),
    )
    messages = " | ".join(m for _, m in found)
    assert "0.8" in messages and "for 5m; the alert policy" in messages and "severity warning" in messages


def test_threshold_direction_follows_the_policy_comparison() -> None:
    def run(expr: str) -> list[str]:
        text = RULE.format(name="HighGPUUtilization", expr=expr, summary="s")
        return [m for _, m in run_rule("gpu-alert-thresholds-match-policy", text)]

    wrong = run("DCGM_FI_DEV_GPU_UTIL < 90")
    assert len(wrong) == 1 and "fires when the series is < 90; the alert policy" in wrong[0]
    assert run("DCGM_FI_DEV_GPU_UTIL <= 90") and run("90 > DCGM_FI_DEV_GPU_UTIL") and run("DCGM_FI_DEV_GPU_UTIL == 90")
    assert run("DCGM_FI_DEV_GPU_UTIL > 90") == []
    assert run("DCGM_FI_DEV_GPU_UTIL >= 90") == []
    assert run("90 < DCGM_FI_DEV_GPU_UTIL") == []  # constant on the left: x above 90
    assert run('DCGM_FI_DEV_GPU_UTIL{pod!="x"} > bool 90') == []  # != inside matchers is no comparison


def test_alerts_may_name_the_gpu_by_uuid() -> None:
    def run(expr: str, summary: str) -> list[tuple[str, str]]:
        return run_rule("gpu-alert-names-gpu-and-pod", RULE.format(name="A", expr=expr, summary=summary))

    assert not run("DCGM_FI_DEV_GPU_TEMP > 85", "GPU {{ $labels.UUID }} on {{ $labels.Hostname }} ({{ $labels.pod }})")
    found = run("DCGM_FI_DEV_GPU_TEMP > 85", "{{ $labels.Hostname }} {{ $labels.pod }} hot")
    assert "{{ $labels.gpu }} or {{ $labels.UUID }}" in found[0][1]


def test_only_labels_surviving_the_outer_aggregation_are_required() -> None:
    def run(expr: str, summary: str) -> list[tuple[str, str]]:
        return run_rule("gpu-alert-names-gpu-and-pod", RULE.format(name="A", expr=expr, summary=summary))

    # by (Hostname): gpu and pod are aggregated away, the kept Hostname is what must be named
    assert not run("max by (Hostname) (DCGM_FI_DEV_FB_USED) > 85", "node {{ $labels.Hostname }} is hot")
    found = run("max by (Hostname) (DCGM_FI_DEV_FB_USED) > 85", "a GPU is hot")
    assert len(found) == 1 and found[0][1].startswith("alert A: summary/description never mention {{ $labels.Hostname")
    assert "gpu" not in found[0][1].split("never mention")[1].split("(")[0]
    # by (UUID, pod): both kept, both required; UUID satisfies the GPU
    assert not run("max by (UUID, pod) (DCGM_FI_DEV_FB_USED) > 85", "{{ $labels.UUID }} {{ $labels.pod }}")
    assert "{{ $labels.pod }}" in run("max by (UUID, pod) (DCGM_FI_DEV_FB_USED) > 85", "{{ $labels.UUID }}")[0][1]
    # without (pod): the pod is gone, the GPU is not
    assert not run("max without (pod) (DCGM_FI_DEV_FB_USED) > 85", "GPU {{ $labels.gpu }}")
    assert run("max without (pod) (DCGM_FI_DEV_FB_USED) > 85", "GPU hot")
    # avg() keeps nothing to name (the fleet-average rule judges it)
    assert not run("avg(DCGM_FI_DEV_GPU_UTIL) > 90", "GPUs busy")


@pytest.mark.parametrize(("expr", "fires"), [
    ('count(up{job="vllm"} == 1) < 40', True),
    ("count(up{job=\"vllm\"}) == 0", True),
    ("sum by (job) (up{job=\"x\"}) < 1", True),
    ('(count(up{job="vllm"} == 1) or vector(0)) < 40', False),
    ('count(up{job="vllm"} == 1) < 40 or absent(up{job="vllm"} == 1)', False),
    ('count(up{job="vllm"}) > 3', False),
    ("sum(up{job=\"x\"}) == 0", False),  # a sum can be 0
    ("count(up) < bool 3", False),
])
def test_too_few_alert_must_fire_when_none_is_left(expr: str, fires: bool) -> None:
    found = run_rule("alert-fires-when-nothing-is-left", RULE.format(name="Few", expr=repr(expr), summary="s"),
                     PolicySet.defaults())
    assert bool(found) is fires, found
    if fires:
        assert found[0][0] == "PrometheusRule/m/r" and "returns no series rather than 0" in found[0][1]
