"""Drills `surge-capacity`, `consolidation` and `spot-interruption` with the real Karpenter (kwok provider) on the
testbed (`up --with karpenter`): each passes on the reference NodePools and workloads, and fails with the right
resource and message on each broken variant. One testbed for the module; the drills run one after the other in it,
each with its own NodePool copies and namespace, which it removes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.drills.base import DrillFailure
from gpu_policy.drills.runner import run_drill
from gpu_policy.testbed import cluster
from tests.drills.conftest import Variant, drills_or_skip, variants
from tests.testbed.conftest import running_testbed

pytestmark = pytest.mark.testbed
DRILLS = ("surge-capacity", "consolidation", "spot-interruption")


@pytest.fixture(scope="module")
def karpenter_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    drills_or_skip()
    yield from running_testbed(tmp_path_factory, components=("karpenter",))


def _nothing_left(state: cluster.State) -> None:
    """The drill removed its NodePool copy, NodeClaims and namespace."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(state.kubeconfig))
    try:
        custom: Any = k8s.CustomObjectsApi(api)
        for plural in ("nodepools", "nodeclaims"):
            assert custom.list_cluster_custom_object("karpenter.sh", "v1", plural)["items"] == [], plural
        core: Any = k8s.CoreV1Api(api)
        names = [str(n.metadata.name) for n in core.list_namespace().items]
        assert not [n for n in names if n.startswith("gpu-policy-drill-")], names
    finally:
        api.close()


def test_surge_capacity_launches_admissible_nodes_for_model_a_at_its_maximum(
    karpenter_testbed: cluster.State, tmp_path: Path
) -> None:
    result = run_drill("surge-capacity", report_dir=tmp_path, kubeconfig=karpenter_testbed.kubeconfig)
    # 10 one-GPU pods on 8-GPU p4d.24xlarge (model A's affinity): 2 NodeClaims, 16 GPUs, every pod running
    assert (result.numbers["nodeclaims"], result.numbers["gpus"], result.numbers["pods_running"]) == (2, 16, 10)
    _nothing_left(karpenter_testbed)


def test_consolidation_waits_for_the_end_of_the_freeze_then_removes_the_emptied_nodes(
    karpenter_testbed: cluster.State, tmp_path: Path
) -> None:
    result = run_drill("consolidation", report_dir=tmp_path, kubeconfig=karpenter_testbed.kubeconfig)
    numbers = result.numbers
    assert numbers["frozen_s"] >= 90  # nothing removed in the last 90+ s of the business day
    assert numbers["consolidatable_after_scale_down_s"] < numbers["frozen_s"]  # Karpenter wanted to, and waited
    assert numbers["removed_nodes"] == 2 and numbers["most_disrupted_at_once"] == 1  # 20 % of 3 nodes = 1
    report = json.loads((tmp_path / "drills" / "consolidation.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "passed" and "cleanupFailures" not in report, report
    _nothing_left(karpenter_testbed)


def test_spot_interruption_drains_reschedules_and_keeps_the_pdb_minimum(
    karpenter_testbed: cluster.State, tmp_path: Path
) -> None:
    result = run_drill("spot-interruption", report_dir=tmp_path, kubeconfig=karpenter_testbed.kubeconfig)
    numbers = result.numbers
    assert numbers["lowest_serving_replicas"] >= numbers["minimum_serving_replicas"] == 1
    assert numbers["drained_after_interruption_s"] <= 120
    report = json.loads((tmp_path / "drills" / "spot-interruption.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "passed" and "cleanupFailures" not in report, report
    _nothing_left(karpenter_testbed)


@pytest.mark.parametrize("variant", [v for v in variants() if v.drill in DRILLS], ids=lambda v: v.name)
def test_drill_fails_on_the_broken_variant(variant: Variant, karpenter_testbed: cluster.State) -> None:
    with pytest.raises(DrillFailure) as raised:
        run_drill(variant.drill, variant.manifests, kubeconfig=karpenter_testbed.kubeconfig)
    expect = variant.data["expect"]
    assert raised.value.resource.startswith(expect["resource"]), raised.value.line()
    assert expect["message"] in raised.value.line()
    _nothing_left(karpenter_testbed)
