"""Drills `surge` and `scale-down` with the real KEDA and HPA on the testbed (`up --with keda`): each passes on the
reference ScaledObject, matching the simulator within replay.TOLERANCE, and fails on the seed's (avg + AverageValue)
with the ScaledObject named. One testbed for the module; the drills run one after the other in it, each in its own
namespace, which it deletes."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.drills.base import DrillFailure
from gpu_policy.drills.runner import run_drill
from gpu_policy.testbed import cluster
from gpu_policy.testbed.prometheus import prometheus_binary
from tests.drills.conftest import Variant, drills_or_skip, variants
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


@pytest.mark.parametrize("variant", [v for v in variants() if v.drill in ("surge", "scale-down")],
                         ids=lambda v: v.name)
def test_drill_fails_on_the_seed_scaledobject(variant: Variant, keda_testbed: cluster.State) -> None:
    with pytest.raises(DrillFailure) as raised:
        run_drill(variant.drill, variant.manifests, kubeconfig=keda_testbed.kubeconfig)
    expect = variant.data["expect"]
    assert raised.value.resource.startswith(expect["resource"]), raised.value.line()
    assert expect["message"] in raised.value.line()
