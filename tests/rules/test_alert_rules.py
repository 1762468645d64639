"""Edge cases of the static alert rules."""

from __future__ import annotations

import pytest

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

    assert run("DCGM_FI_DEV_GPU_TEMP > 85", "GPU {{ $labels.gpu }} hot")[0][1].endswith("{{ $labels.pod }}")
    assert not run("DCGM_FI_DEV_GPU_TEMP > 85", "GPU {{ .Labels.gpu }} of {{ $labels.pod }} hot")
    assert not run("absent(DCGM_FI_DEV_GPU_UTIL)", "no data")


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
    assert "0.8" in messages and "for 5m; the policy wants 2m" in messages and "severity warning" in messages
