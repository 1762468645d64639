"""The shared Karpenter node model: instance-type labels, requirement operators, tolerations, placement."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.catalogue import instance_facts
from gpu_policy.graph.nodes.labels import (
    ABSENT,
    ANY,
    UNKNOWN,
    LabelState,
    always_holds,
    instance_labels,
    narrow,
    one_of,
)
from gpu_policy.graph.nodes.model import (
    extended_resource_toleration,
    nodepools,
    placement_of,
    placements,
    reachable,
    selects,
    shapes_of,
)
from gpu_policy.graph.nodes.placement import every_node_failure, shape_rejects
from gpu_policy.graph.nodes.resources import allocatable, kube_reserved_cpu_millis
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext

POLICY = PolicySet.load()


def context(text: str, ert: bool = True) -> CheckContext:
    docs, errors = to_documents(text, "x.yaml")
    assert not errors
    policy = POLICY
    if not ert:
        policy = copy.deepcopy(POLICY)
        policy.cluster["eks"]["extendedResourceToleration"] = False
    return CheckContext(graph=ResourceGraph(docs), policy=policy)


def pool(requirements: str, extra: str = "", name: str = "gpu") -> str:
    return f"""
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {{name: {name}}}
spec:
  template:
    metadata: {{labels: {{team: ml}}}}
    spec:
      requirements:
{requirements}
      taints: [{{key: nvidia.com/gpu, value: "true", effect: NoSchedule}}]
      nodeClassRef: {{group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}}
{extra}---
"""


TYPES = "        - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.12xlarge, p4d.24xlarge]}\n"


def pod(spec: str, resources: str = "{limits: {nvidia.com/gpu: 1}, requests: {cpu: '1', memory: 1Gi}}") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d, namespace: ns}}
spec:
  selector: {{matchLabels: {{app: d}}}}
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
{spec}
      containers:
        - name: c
          resources: {resources}
---
"""


# -- labels Karpenter puts on a node (aws/karpenter-provider-aws types.go computeRequirements) ----------------
def test_labels_of_a_gpu_instance_type() -> None:
    labels = instance_labels("p4d.24xlarge", instance_facts(POLICY, "p4d.24xlarge"))
    expected = {
        "node.kubernetes.io/instance-type": "p4d.24xlarge",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "karpenter.k8s.aws/instance-family": "p4d",
        "karpenter.k8s.aws/instance-size": "24xlarge",
        "karpenter.k8s.aws/instance-category": "p",
        "karpenter.k8s.aws/instance-generation": "4",
        "karpenter.k8s.aws/instance-cpu": "96",
        "karpenter.k8s.aws/instance-memory": str(1152 * 1024),
        "karpenter.k8s.aws/instance-gpu-name": "a100",  # lowerKabobCase of EC2's "A100"
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-count": "8",
        "karpenter.k8s.aws/instance-gpu-memory": "40960",  # per GPU, MiB
    }
    for key, value in expected.items():
        assert labels[key] == one_of([value]), key
    assert instance_labels("g5.48xlarge", instance_facts(POLICY, "g5.48xlarge"))[
        "karpenter.k8s.aws/instance-gpu-name"] == one_of(["a10g"])


def test_labels_without_facts_and_without_gpus() -> None:
    graviton = instance_labels("g5g.2xlarge", None)
    assert graviton["kubernetes.io/arch"] == one_of(["arm64"])
    assert graviton["karpenter.k8s.aws/instance-generation"] == one_of(["5"])
    assert graviton["karpenter.k8s.aws/instance-gpu-count"] == UNKNOWN
    cpu_only = instance_labels("m7i.large", {"vcpu": 2, "memoryGiB": 8, "gpuCount": 0})
    assert cpu_only["karpenter.k8s.aws/instance-gpu-count"] == ABSENT
    assert cpu_only["karpenter.k8s.aws/instance-category"] == one_of(["m"])


# -- requirement operators ------------------------------------------------------------------------------------
FOUR = one_of(["4"])
FOUR_OR_EIGHT = one_of(["4", "8"])


@pytest.mark.parametrize(("state", "operator", "values", "some", "every"), [
    (FOUR_OR_EIGHT, "In", ["8"], one_of(["8"]), False),
    (FOUR_OR_EIGHT, "In", ["1"], None, False),
    (FOUR_OR_EIGHT, "NotIn", ["4"], one_of(["8"]), False),
    (FOUR, "NotIn", ["8"], FOUR, True),
    (FOUR, "Exists", [], FOUR, True),
    (FOUR, "DoesNotExist", [], None, False),
    (FOUR_OR_EIGHT, "Gt", ["4"], one_of(["8"]), False),
    (FOUR_OR_EIGHT, "Gt", ["3"], FOUR_OR_EIGHT, True),
    (FOUR_OR_EIGHT, "Lt", ["5"], FOUR, False),
    (FOUR, "Gt", ["x"], None, False),  # Gt takes one integer
    (ANY, "In", ["a"], one_of(["a"]), False),
    (ANY, "Exists", [], ANY, True),
    (ANY, "DoesNotExist", [], None, False),
    (ABSENT, "In", ["a"], None, False),
    (ABSENT, "NotIn", ["a"], ABSENT, True),
    (ABSENT, "DoesNotExist", [], ABSENT, True),
    (ABSENT, "Gt", ["1"], None, False),
    (UNKNOWN, "DoesNotExist", [], ABSENT, False),
    (UNKNOWN, "In", ["a"], one_of(["a"]), False),
    (FOUR, "Foo", ["4"], None, False),
])
def test_each_operator_narrows_and_holds(state: LabelState, operator: str, values: list[str],
                                         some: LabelState | None, every: bool) -> None:
    assert narrow(state, operator, values) == some
    assert always_holds(state, operator, values) is every


# -- NodePool parsing and shapes ------------------------------------------------------------------------------
def test_pool_parsing_defaults_and_instance_type_bounds() -> None:
    reqs = (TYPES + "        - {key: node.kubernetes.io/instance-type, operator: NotIn, values: [g5.12xlarge]}\n")
    extra = ("      startupTaints: [{key: example.com/init, effect: NoSchedule}]\n"
             "  limits: {nvidia.com/gpu: \"16\"}\n")
    (parsed,) = nodepools(context(pool(reqs, extra)))
    assert parsed.weight == 0
    assert parsed.capacity_types == frozenset({"on-demand"})  # no capacity-type requirement
    assert parsed.instance_types == ("p4d.24xlarge",)
    assert parsed.startup_taints == [{"key": "example.com/init", "effect": "NoSchedule"}]
    assert parsed.nodeclass_ref == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}
    assert parsed.limits == {"nvidia.com/gpu": Decimal(16)} and parsed.gpu


def test_gpu_pool_detected_from_limits_alone() -> None:
    text = pool("        - {key: karpenter.k8s.aws/instance-category, operator: In, values: [c]}\n",
                "  limits: {nvidia.com/gpu: \"8\"}\n").replace(
        '[{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]', "[]")
    (parsed,) = nodepools(context(text))
    assert parsed.gpu
    assert not nodepools(context(text.replace('  limits: {nvidia.com/gpu: "8"}\n', "")))[0].gpu


@pytest.mark.parametrize(("requirement", "kept"), [
    ("{key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ['4']}", ["p4d.24xlarge"]),
    ("{key: karpenter.k8s.aws/instance-gpu-count, operator: Lt, values: ['8']}", ["g5.12xlarge"]),
    ("{key: karpenter.k8s.aws/instance-gpu-name, operator: NotIn, values: [a100]}", ["g5.12xlarge"]),
    ("{key: karpenter.k8s.aws/instance-gpu-count, operator: DoesNotExist}", []),
    ("{key: karpenter.k8s.aws/instance-family, operator: Exists}", ["g5.12xlarge", "p4d.24xlarge"]),
    ("{key: karpenter.k8s.aws/instance-family, operator: In, values: [g5], minValues: 2}", []),
])
def test_requirements_filter_instance_types(requirement: str, kept: list[str]) -> None:
    ctx = context(pool(TYPES + f"        - {requirement}\n"))
    found = shapes_of(ctx, nodepools(ctx)[0])
    assert [s.instance_type for s in found.shapes] == kept
    if not kept:
        assert found.excluded


def test_allocatable_follows_the_aws_provider() -> None:
    assert kube_reserved_cpu_millis(96) == 60 + 10 + 10 + 230
    room = allocatable(instance_facts(POLICY, "g5.12xlarge") or {}, 0.075)
    mib = 192 * 1024
    assert room.memory == (mib - -(-mib * 75 // 1000) - (11 * 110 + 255) - 100) * 2**20
    assert room.gpus == 4


# -- tolerations ----------------------------------------------------------------------------------------------
def test_extended_resource_toleration_only_for_pods_requesting_the_gpu() -> None:
    text = pool(TYPES) + pod("      priorityClassName: x") + pod("      priorityClassName: x", "{}").replace(
        "name: d,", "name: e,")
    ctx = context(text)
    assert extended_resource_toleration(ctx)
    gpu_pod, cpu_pod = sorted(placements(ctx), key=lambda p: p.template.owner.name)
    added = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert added in gpu_pod.effective_tolerations(True)
    assert added not in gpu_pod.effective_tolerations(False)
    assert added not in cpu_pod.effective_tolerations(True)
    shape = shapes_of(ctx, nodepools(ctx)[0]).shapes[0]
    assert shape_rejects(gpu_pod, shape, True) is None
    assert shape_rejects(gpu_pod, shape, False) == "untolerated taint nvidia.com/gpu=true:NoSchedule"
    assert reachable(context(text, ert=False), gpu_pod).shapes == []


# -- placement: why a candidate is rejected -------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "reason"), [
    ("      nodeSelector: {karpenter.k8s.aws/instance-gpu-name: h100}",
     "karpenter.k8s.aws/instance-gpu-name In [h100] (node: a10g)"),
    ("      nodeSelector: {gpu-type: a100}", "gpu-type In [a100] (node: absent)"),  # custom label: undefined
    ("      nodeSelector: {karpenter.sh/capacity-type: spot}", "karpenter.sh/capacity-type In [spot]"),
])
def test_pod_rejected_with_a_reason(spec: str, reason: str) -> None:
    ctx = context(pool(TYPES) + pod(spec))
    (placed,) = placements(ctx)
    g5 = shapes_of(ctx, nodepools(ctx)[0]).shapes[0]
    rejected = shape_rejects(placed, g5, True)
    assert rejected is not None and reason in rejected
    assert not selects(ctx, nodepools(ctx)[0], placed)


def test_well_known_and_template_labels_select_and_requests_must_fit() -> None:
    ctx = context(pool(TYPES) + pod("      nodeSelector: {team: ml, topology.kubernetes.io/zone: us-east-1a}",
                                    "{limits: {nvidia.com/gpu: 8}, requests: {cpu: '1', memory: 1Gi}}"))
    found = reachable(ctx, placements(ctx)[0])
    assert [s.instance_type for s in found.shapes] == ["p4d.24xlarge"]
    ctx = context(pool(TYPES) + pod("", "{limits: {nvidia.com/gpu: 1}, requests: {memory: 190Gi}}")
                  + "")
    g5 = shapes_of(ctx, nodepools(ctx)[0]).shapes[0]
    assert "requests 190.0Gi memory, g5.12xlarge offers" in (shape_rejects(placements(ctx)[0], g5, True) or "")


def test_affinity_terms_are_ored_and_an_empty_term_matches_nothing() -> None:
    affinity = """      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [p5]}]
              - matchExpressions: [{key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["4"]}]"""
    ctx = context(pool(TYPES) + pod(affinity))
    assert [s.instance_type for s in reachable(ctx, placements(ctx)[0]).shapes] == ["p4d.24xlarge"]
    empty = affinity.split("              - matchExpressions")[0] + "              - {}"
    ctx = context(pool(TYPES) + pod(empty))
    assert reachable(ctx, placements(ctx)[0]).shapes == []


def test_every_node_failure_for_daemonsets() -> None:
    ctx = context(pool(TYPES) + pod("      nodeSelector: {karpenter.k8s.aws/instance-gpu-manufacturer: nvidia}"))
    placed = placement_of(ctx, placements(ctx)[0].template)
    shapes = shapes_of(ctx, nodepools(ctx)[0]).shapes
    assert all(every_node_failure(placed, s) is None for s in shapes)
    ctx = context(pool(TYPES) + pod('      nodeSelector: {karpenter.k8s.aws/instance-gpu-count: "8"}'))
    failures = [every_node_failure(placements(ctx)[0], s) for s in shapes_of(ctx, nodepools(ctx)[0]).shapes]
    assert failures[1] is None
    assert failures[0] is not None and "instance-gpu-count may be 4" in failures[0][0]
