"""Drills `surge` and `scale-down` with the real KEDA and HPA on the testbed (`up --with keda`): each passes on the
reference ScaledObjects, matching the simulator within replay.TOLERANCE (the surge for model A and for model B, which
gives GPUs back), and fails on its broken variants with the ScaledObject named: the seed's (avg + AverageValue), and
model B with minReplicaCount 0 (slow: set GPU_POLICY_DRILLS_SLOW=1). One testbed for the module; the drills run one
after the other in it, each in its own namespace, which it deletes."""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.drills.base import DrillFailure
from gpu_policy.drills.runner import run_drill
from gpu_policy.testbed import cluster
from gpu_policy.testbed.prometheus import prometheus_binary
from tests.drills.conftest import SLOW_ENV, Variant, drills_or_skip, variants
from tests.testbed.conftest import running_testbed

pytestmark = [pytest.mark.testbed,
              pytest.mark.skipif(prometheus_binary() is None, reason="needs /usr/bin/prometheus (see .ci/setup)")]


@pytest.fixture(scope="module")
def keda_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    drills_or_skip()
    if "components" not in inspect.signature(running_testbed).parameters:
        pytest.skip("this testbed cannot start KEDA yet (`testbed up --with keda` comes with the controllers work)")
    yield from running_testbed(tmp_path_factory, components=("keda",))  # type: ignore[call-arg]


@pytest.mark.parametrize("drill", ["surge", "scale-down"])
def test_drill_passes_on_the_reference_and_matches_the_simulator(
    drill: str, keda_testbed: cluster.State, tmp_path: Path
) -> None:
    result = run_drill(drill, report_dir=tmp_path, kubeconfig=keda_testbed.kubeconfig)
    assert result.numbers["differences"] == 0
    assert result.numbers["final_replicas"] == (10 if drill == "surge" else 2)
    report = json.loads((tmp_path / "drills" / f"{drill}.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "passed"
    csv = (tmp_path / "drills" / f"{drill}-observed-vs-predicted.csv").read_text(encoding="utf-8")
    assert csv.startswith("time_s,observed,predicted,accepted_low,accepted_high,within")
    if drill == "scale-down":  # the 300 s window, less at most one sync that saw the load before it fell
        assert result.numbers["first_removal_after_fall_s"] >= 300 - 16
    if drill == "surge":  # model B, idle from the surge on, gives GPUs back down to its SLA minimum after its window
        assert result.numbers["model_b_differences"] == 0
        assert result.numbers["model_b_final_replicas"] == 1
        assert result.numbers["model_b_first_removal_after_fall_s"] >= 300 - 16
        csv_b = (tmp_path / "drills" / "surge-model-b-observed-vs-predicted.csv").read_text(encoding="utf-8")
        assert csv_b.startswith("time_s,observed,predicted")


@pytest.mark.parametrize("variant", [v for v in variants() if v.drill in ("surge", "scale-down")],
                         ids=lambda v: v.name)
def test_drill_fails_on_its_broken_variant(variant: Variant, keda_testbed: cluster.State) -> None:
    if variant.slow and os.environ.get(SLOW_ENV) != "1":
        pytest.skip(f"{variant.name} fails only after KEDA's 300 s cooldownPeriod: set {SLOW_ENV}=1")
    with pytest.raises(DrillFailure) as raised:
        run_drill(variant.drill, variant.manifests, kubeconfig=keda_testbed.kubeconfig)
    expect = variant.data["expect"]
    assert raised.value.resource.startswith(expect["resource"]), raised.value.line()
    assert re.search(r" \(\S+\.yaml:\d+\)$", raised.value.resource), raised.value.line()  # file:line, always
    if "at" in expect:
        assert raised.value.resource.endswith(f"/{expect['at']})"), raised.value.line()
    assert expect["message"] in raised.value.line()
