"""Spot rules: the seed's spot Deployment under both EKS profiles, preStop timing, stateless placement."""

from __future__ import annotations

import dataclasses

from gpu_policy.rules.spot import prestop_seconds
from tests.rules._helpers import POLICY, run_rule
from tests.rules._karpenter_docs import deployment, nodepool

POOLS = nodepool("gpu-inference-pool", capacity='["on-demand", "spot"]', weight=100) + nodepool(
    "gpu-spot-pool", capacity='["spot"]', types='["g5.12xlarge"]', weight=50,
    taints='[{key: nvidia.com/gpu, value: "true", effect: NoSchedule}, '
           '{key: karpenter.sh/capacity-type, value: spot, effect: NoSchedule}]')
SEED_SPOT_POD = """\
      terminationGracePeriodSeconds: 120
      containers:
        - name: vllm
          image: vllm
          lifecycle:
            preStop:
              exec:
                command: ["/bin/sh", "-c", "# stop taking requests\\ncurl -X POST
                localhost:8000/drain\\nsleep 90"]
      tolerations:
        - {key: karpenter.sh/capacity-type, operator: Equal, value: spot, effect: NoSchedule}
"""
GPU_REQUEST = """\
          resources: {limits: {nvidia.com/gpu: 1}}
"""


def _profile(ert: bool):  # type: ignore[no-untyped-def]
    return dataclasses.replace(POLICY, cluster={**POLICY.cluster, "eks": {"extendedResourceToleration": ert}})


def test_seed_spot_deployment_fails_the_gpu_taint_under_both_profiles() -> None:
    text = POOLS + deployment("model-serving-spot", SEED_SPOT_POD)
    for ert in (True, False):
        [(resource, message)] = run_rule("spot-pods-tolerate-gpu-taint", text, _profile(ert))
        assert resource == "Deployment/inference/model-serving-spot"
        assert "gpu-spot-pool: nvidia.com/gpu=true:NoSchedule" in message
        assert "requests no nvidia.com/gpu" in message
    # It tolerates the capacity-type taint and selects nothing, and its 90s preStop fits the 120s grace
    # period.
    assert run_rule("spot-pods-tolerate-capacity-type-taint", text) == []
    assert run_rule("spot-graceful-shutdown-fits-notice", text) == []


def test_gpu_request_is_tolerated_only_when_the_profile_has_extended_resource_toleration() -> None:
    pod = SEED_SPOT_POD.replace("          lifecycle:", GPU_REQUEST + "          lifecycle:")
    text = POOLS + deployment("model-serving-spot", pod)
    assert run_rule("spot-pods-tolerate-gpu-taint", text, _profile(True)) == []
    [(_, message)] = run_rule("spot-pods-tolerate-gpu-taint", text, _profile(False))
    assert "eks.extendedResourceToleration is off" in message


def test_pod_selecting_spot_without_the_toleration_fails() -> None:
    pod = SEED_SPOT_POD.replace("      tolerations:\n        - {key: karpenter.sh/capacity-type, operator: "
                                "Equal, "
                                "value: spot, effect: NoSchedule}\n",
                                "      nodeSelector: {karpenter.sh/capacity-type: spot}\n")
    [(_, message)] = run_rule("spot-pods-tolerate-capacity-type-taint", POOLS + deployment("x", pod))
    assert "of NodePool gpu-spot-pool" in message


def test_prestop_durations() -> None:
    assert prestop_seconds({"lifecycle": {"preStop": {"sleep": {"seconds": 40}}}})[0] == 40
    command = ["/bin/sh", "-c", "# sleep 500 in a comment is ignored\nsleep 1m; sleep 5"]
    assert prestop_seconds({"lifecycle": {"preStop": {"exec": {"command": command}}}})[0] == 65
    assert prestop_seconds({"lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 80}}}})[0] is None


def test_default_grace_period_is_shorter_than_a_long_prestop() -> None:
    pod = SEED_SPOT_POD.replace("      terminationGracePeriodSeconds: 120\n", "")
    [(_, message)] = run_rule("spot-graceful-shutdown-fits-notice", POOLS + deployment("x", pod))
    assert "preStop sleeps 90s, not less than the default terminationGracePeriodSeconds 30" in message


def test_statefulset_on_a_mixed_pool_runs_on_spot_unless_pinned_to_on_demand() -> None:
    pod = """\
      containers: [{name: db, image: db, resources: {limits: {nvidia.com/gpu: 1}}}]
"""
    text = POOLS + deployment("db", pod, kind="StatefulSet")
    [(_, message)] = run_rule("spot-runs-stateless-workloads", text)
    assert "spot capacity of NodePool gpu-inference-pool" in message
    pinned = pod + "      nodeSelector: {karpenter.sh/capacity-type: on-demand}\n"
    pinned_set = POOLS + deployment("db", pinned, kind="StatefulSet")
    assert run_rule("spot-runs-stateless-workloads", pinned_set) == []


def test_pvc_pod_tolerating_spot_fails() -> None:
    pod = SEED_SPOT_POD + "      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]\n"
    [(_, message)] = run_rule("spot-runs-stateless-workloads", deployment("x", pod))
    assert "PersistentVolumeClaim volume(s) data" in message
