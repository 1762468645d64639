"""The AWS GPU instance catalogue and the instance types a NodePool admits, derived as Karpenter derives them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.catalogue import catalogue, instance_facts, known_types, on_demand_price
from gpu_policy.graph.nodes.labels import ABSENT, canonical_key, narrow, one_of
from gpu_policy.graph.nodes.model import nodepools, placements, reachable, shapes_of
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext

DEFAULTS = PolicySet.defaults()
REFERENCE = PolicySet.load()


def context(text: str, policy: PolicySet = DEFAULTS) -> CheckContext:
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    return CheckContext(graph=ResourceGraph(docs), policy=policy)


def pool(requirements: str, *, group: str = "karpenter.k8s.aws", kind: str = "EC2NodeClass",
         limits: str = '{nvidia.com/gpu: "8"}', api: str = "karpenter.sh/v1") -> str:
    return f"""
apiVersion: {api}
kind: NodePool
metadata: {{name: p}}
spec:
  template:
    spec:
      nodeClassRef: {{group: {group}, kind: {kind}, name: default}}
      requirements: {requirements}
  limits: {limits}
---
"""


def admitted(text: str) -> list[str]:
    ctx = context(text)
    return [s.instance_type or "" for s in shapes_of(ctx, nodepools(ctx)[0]).shapes]


# -- the catalogue ----------------------------------------------------------------------------------------------
def test_catalogue_holds_every_current_nvidia_family_with_karpenters_label_values() -> None:
    families = catalogue().families()
    for family in ("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "g4dn", "g5", "g5g", "g6", "g6e",
                   "gr6", "g6f", "g4ad"):
        assert family in families, family
    t4 = instance_facts(None, "g4dn.xlarge")
    assert t4 is not None
    assert (t4["vcpu"], t4["memoryMiB"], t4["gpuCount"], t4["gpuName"], t4["gpuMemoryMiB"]) == \
        (4, 16384, 1, "t4", 16384)
    assert instance_facts(None, "g5g.xlarge")["arch"] == "arm64"  # type: ignore[index]
    assert instance_facts(None, "p5.48xlarge")["memoryMiB"] == 2048 * 1024  # type: ignore[index]


def test_amd_gpus_are_not_nvidia_gpus() -> None:
    amd = instance_facts(None, "g4ad.xlarge")
    assert amd is not None and amd["gpuCount"] == 1 and amd["nvidiaGpus"] == 0
    assert amd["gpuManufacturer"] == "amd"


def test_prices_are_dated_and_sourced_and_a_profile_overrides_them() -> None:
    price = on_demand_price(DEFAULTS, "g4dn.xlarge")
    assert price is not None and price.usd == Decimal("0.526") and price.as_of == catalogue().prices_as_of
    assert on_demand_price(DEFAULTS, "p5e.48xlarge") is None  # no us-east-1 on-demand price
    reference = on_demand_price(REFERENCE, "p4d.24xlarge")
    assert reference is not None and reference.usd == Decimal("21.96") and "cost.yaml" in reference.source


def test_a_profile_may_add_a_type_the_catalogue_lacks() -> None:
    policy = PolicySet.layered([("t", {"instance-types": {"instanceTypes": {"x9.large": {
        "gpuModel": "Z1", "gpuCount": 2, "gpuMemoryGiB": 48, "vcpu": 16, "memoryGiB": 128}}}}, {})])
    facts = instance_facts(policy, "x9.large")
    assert facts is not None and facts["gpuName"] == "z1" and facts["memoryMiB"] == 128 * 1024
    assert "x9.large" in known_types(policy) and "x9.large" not in known_types(DEFAULTS)


# -- requirement semantics (kubernetes-sigs/karpenter pkg/scheduling/requirement.go) ------------------------------
def test_bounds_are_integer_comparisons_and_never_hold_on_an_absent_label() -> None:
    assert narrow(one_of(["4"]), "Gte", ["4"]) == one_of(["4"])
    assert narrow(one_of(["4"]), "Gt", ["4"]) is None
    assert narrow(one_of(["4"]), "Lte", ["4"]) == one_of(["4"])
    assert narrow(one_of(["x"]), "Lt", ["9"]) is None  # not an integer: never within bounds
    assert narrow(ABSENT, "Gt", ["0"]) is None
    assert narrow(ABSENT, "NotIn", ["0"]) == ABSENT  # NotIn holds on a node without the label


def test_keys_are_normalized_and_auto_mode_labels_are_the_instance_labels() -> None:
    assert canonical_key("beta.kubernetes.io/arch") == "kubernetes.io/arch"
    assert canonical_key("eks.amazonaws.com/instance-gpu-name", True) == "karpenter.k8s.aws/instance-gpu-name"
    assert canonical_key("eks.amazonaws.com/instance-gpu-name", False) == "eks.amazonaws.com/instance-gpu-name"
    assert canonical_key("karpenter.k8s.aws/instance-family", True).startswith("~unmodelled~")


# -- admissible types -------------------------------------------------------------------------------------------
def test_family_and_size_requirements_bound_the_pool() -> None:
    text = pool("[{key: karpenter.k8s.aws/instance-family, operator: In, values: [g5]}, "
                "{key: karpenter.k8s.aws/instance-size, operator: NotIn, values: [48xlarge]}]",
                limits="{}")
    assert admitted(text) == ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.12xlarge",
                              "g5.16xlarge", "g5.24xlarge"]
    ctx = context(text)
    assert shapes_of(ctx, nodepools(ctx)[0]).others is None  # every g5 has GPUs: nothing outside the catalogue


def test_gpu_count_bound_and_memory_gt_select_across_families() -> None:
    text = pool("[{key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: [\"4\"]}, "
                "{key: karpenter.k8s.aws/instance-gpu-memory, operator: Gte, values: [\"80000\"]}]", limits="{}")
    assert set(admitted(text)) == {"p4de.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge",
                                   "p6-b200.48xlarge", "p6-b300.48xlarge", "g7e.48xlarge"}


def test_pool_limits_exclude_types_whose_single_node_exceeds_them() -> None:
    text = pool("[{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}]",
                limits='{nvidia.com/gpu: "4"}')
    assert "g6e.48xlarge" not in admitted(text) and "g6e.24xlarge" in admitted(text)


def test_a_pool_without_gpu_requirements_also_admits_types_outside_the_catalogue() -> None:
    ctx = context(pool("[{key: karpenter.k8s.aws/instance-gpu-count, operator: NotIn, values: [\"0\"]}]"))
    found = shapes_of(ctx, nodepools(ctx)[0])
    assert found.others is not None  # NotIn holds on types without the label: CPU types stay admissible
    ctx = context(pool("[{key: karpenter.k8s.aws/instance-gpu-count, operator: Exists}]"))
    assert shapes_of(ctx, nodepools(ctx)[0]).others is None


def test_auto_mode_pool_reads_eks_labels_for_requirements_and_pods() -> None:
    text = pool("[{key: eks.amazonaws.com/instance-gpu-name, operator: In, values: [l4]}]",
                group="eks.amazonaws.com", kind="NodeClass") + """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: n}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      nodeSelector: {eks.amazonaws.com/instance-gpu-count: "1", eks.amazonaws.com/compute-type: auto}
      containers: [{name: c, image: i, resources: {limits: {nvidia.com/gpu: "1"}}}]
"""
    ctx = context(text)
    assert nodepools(ctx)[0].auto_mode
    assert {s.instance_type.partition(".")[0] for s in shapes_of(ctx, nodepools(ctx)[0]).shapes  # type: ignore
            } == {"g6", "g6f", "gr6", "gr6f"}  # g6f/gr6f: a fraction of one L4
    [pod] = placements(ctx)
    landed = reachable(ctx, pod).shapes
    assert landed and all(s.facts and s.facts["gpuCount"] == 1 for s in landed)


def test_v1beta1_nodepools_are_not_modelled() -> None:
    ctx = context(pool("[]", api="karpenter.sh/v1beta1"))
    assert nodepools(ctx) == []


@pytest.mark.parametrize("name", ["g4dn.xlarge", "g6.xlarge", "p5.4xlarge"])
def test_every_catalogue_type_has_consistent_gpu_facts(name: str) -> None:
    facts = instance_facts(None, name)
    assert facts is not None and facts["gpuCount"] >= 1 and facts["gpuMemoryMiB"] > 0


def test_catalogue_data_is_whole() -> None:
    import datetime as dt

    found = catalogue()
    dt.date.fromisoformat(found.prices_as_of)
    assert found.price_region == "us-east-1" and "zz_generated.pricing_aws.go" in found.price_source
    assert len(found.types) >= 70
    for name, facts in found.types.items():
        assert name.startswith(facts["family"] + "."), name
        assert facts["vcpu"] > 0 and facts["memoryMiB"] > 0 and facts["gpuMemoryMiB"] > 0, name
        assert facts["gpuManufacturer"] in ("nvidia", "amd") and facts["arch"] in ("amd64", "arm64"), name
        assert "onDemandUSD" not in facts or facts["onDemandUSD"] > 0, name
    priced = [n for n, f in found.types.items() if "onDemandUSD" in f]
    assert len(priced) == len(found.types) - 1  # p5e.48xlarge: Capacity Blocks only in us-east-1
