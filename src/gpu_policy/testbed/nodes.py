"""The testbed's fake nodes: kwok keeps them Ready and "runs" the pods bound to them; nothing real is behind them.

Each GPU node is what Karpenter (AWS provider) would launch from a reference NodePool (manifests/karpenter/
nodepools.yaml): the pool's template labels and taints, `karpenter.sh/nodepool`, the capacity type, and the instance
labels the AWS provider derives from the EC2 instance type, here computed from the project's catalogue
(policies/instance-types.yaml): `karpenter.k8s.aws/instance-{category,family,generation,size}` from the name,
`instance-cpu` (vCPUs), `instance-memory` (MiB), `instance-gpu-{name,manufacturer,count,memory}` (gpu-memory in MiB
per GPU, as in Karpenter's own e2e expectations: g4dn.8xlarge -> "16384" for one 16 GiB T4). Capacity is the
instance's vCPUs, memory and GPUs; `pods` is the kubelet default 110 (EKS derives it from ENIs). One untainted CPU
node without a NodePool takes system pods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.resources import reference_manifests_dir

#: kwok manages only nodes with this annotation (`--manage-nodes-with-annotation-selector`), as its docs advise.
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
GPU_RESOURCE = "nvidia.com/gpu"
REGION = "us-east-1"
ZONE = "us-east-1a"
AWS = "karpenter.k8s.aws"
_INSTANCE_NAME = re.compile(r"^(?P<category>[a-z]+)(?P<generation>\d+)[a-z-]*\.(?P<size>\S+)$")


class NodeSpecError(ValueError):
    """The catalogue or the reference NodePools lack what a fake node needs."""


@dataclass(frozen=True)
class FakeNode:
    name: str
    instance_type: str
    capacity_type: str
    nodepool: str | None = None
    nodeclass: str | None = None


#: Which nodes the testbed makes: one per reference GPU NodePool shape the reference workloads need, and a CPU node.
FAKE_NODES: tuple[FakeNode, ...] = (
    FakeNode("kwok-p4d-ondemand-0", "p4d.24xlarge", "on-demand", "gpu-inference-pool", "gpu-nodeclass"),
    FakeNode("kwok-g5-ondemand-0", "g5.48xlarge", "on-demand", "gpu-inference-pool", "gpu-nodeclass"),
    FakeNode("kwok-g5-spot-0", "g5.12xlarge", "spot", "gpu-spot-pool", "gpu-spot-nodeclass"),
    FakeNode("kwok-system-0", "m5.xlarge", "on-demand"),
)
#: The CPU node is not in the GPU catalogue: m5.xlarge, 4 vCPU, 16 GiB.
_SYSTEM_CAPACITY = {"cpu": "4", "memory": "16Gi"}


def _catalogue(policies: Path | None) -> dict[str, dict[str, Any]]:
    """Facts of the fake nodes' instance types: the bundled AWS GPU catalogue, or the profile's own entries."""
    from gpu_policy.errors import GpuPolicyError
    from gpu_policy.graph.nodes.catalogue import instance_facts
    from gpu_policy.policy.loader import PolicySet

    try:
        policy = PolicySet.load(policies)
    except GpuPolicyError as exc:
        raise NodeSpecError(str(exc)) from exc
    out: dict[str, dict[str, Any]] = {}
    for node in FAKE_NODES:
        facts = instance_facts(policy, node.instance_type)
        if facts is not None:
            out[node.instance_type] = facts
    return out


def _nodepools(manifests: Path | None) -> dict[str, dict[str, Any]]:
    path = (manifests or reference_manifests_dir()) / "karpenter" / "nodepools.yaml"
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise NodeSpecError(f"{path}: cannot read the reference NodePools: {exc}") from exc
    return {
        str(doc["metadata"]["name"]): doc
        for doc in documents
        if isinstance(doc, dict) and doc.get("kind") == "NodePool" and isinstance(doc.get("metadata"), dict)
    }


def instance_labels(instance_type: str, facts: dict[str, Any]) -> dict[str, str]:
    """The karpenter.k8s.aws/instance-* labels of a GPU instance type, from its catalogue entry."""
    match = _INSTANCE_NAME.match(instance_type)
    if match is None:
        raise NodeSpecError(f"instance type {instance_type!r} is not <family>.<size>")
    try:
        return {
            f"{AWS}/instance-category": match.group("category"),
            f"{AWS}/instance-family": instance_type.split(".", 1)[0],
            f"{AWS}/instance-generation": match.group("generation"),
            f"{AWS}/instance-size": match.group("size"),
            f"{AWS}/instance-cpu": str(int(facts["vcpu"])),
            f"{AWS}/instance-memory": str(int(facts["memoryMiB"])),
            f"{AWS}/instance-gpu-name": str(facts["gpuName"]),
            f"{AWS}/instance-gpu-manufacturer": str(facts["gpuManufacturer"]),
            f"{AWS}/instance-gpu-count": str(int(facts["gpuCount"])),
            f"{AWS}/instance-gpu-memory": str(int(facts["gpuMemoryMiB"])),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise NodeSpecError(f"catalogue entry of {instance_type} lacks {exc}") from exc


def node_manifest(
    node: FakeNode, catalogue: dict[str, dict[str, Any]], pools: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": node.name,
        "node.kubernetes.io/instance-type": node.instance_type,
        "karpenter.sh/capacity-type": node.capacity_type,
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": ZONE,
        "type": "kwok",
    }
    taints: list[dict[str, Any]] = []
    capacity = dict(_SYSTEM_CAPACITY)
    if node.nodepool is not None:
        pool = pools.get(node.nodepool)
        facts = catalogue.get(node.instance_type)
        if pool is None:
            raise NodeSpecError(f"fake node {node.name}: reference NodePool {node.nodepool} not found")
        if facts is None:
            raise NodeSpecError(f"fake node {node.name}: {node.instance_type} is not in the GPU instance catalogue")
        template = pool.get("spec", {}).get("template", {})
        labels.update({str(k): str(v) for k, v in (template.get("metadata", {}).get("labels") or {}).items()})
        labels.update(instance_labels(node.instance_type, facts))
        labels.update({"karpenter.sh/nodepool": node.nodepool, "karpenter.sh/registered": "true",
                       "karpenter.sh/initialized": "true"})  # fmt: skip
        if node.nodeclass:
            labels[f"{AWS}/ec2nodeclass"] = node.nodeclass
        taints = [dict(t) for t in template.get("spec", {}).get("taints") or []]
        capacity = {
            "cpu": str(facts["vcpu"]),
            "memory": f"{facts['memoryGiB']}Gi",
            GPU_RESOURCE: str(facts["gpuCount"]),
        }
    capacity["pods"] = "110"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels, "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]}},
        "spec": {"taints": taints},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def node_manifests(policies: Path | None = None, manifests: Path | None = None) -> list[dict[str, Any]]:
    catalogue, pools = _catalogue(policies), _nodepools(manifests)
    return [node_manifest(node, catalogue, pools) for node in FAKE_NODES]
