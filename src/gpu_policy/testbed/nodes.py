"""The testbed's fake nodes: kwok keeps them Ready and runs the pods bound to them; nothing real is behind them.

They carry the labels and taints a Karpenter (AWS provider) node launched from the reference NodePools would carry
(manifests/karpenter/nodepools.yaml: gpu-inference-pool, on-demand p4d.24xlarge; gpu-spot-pool, spot g5.12xlarge),
plus one untainted CPU node for system pods. Capacities are the instance types' (p4d.24xlarge: 8 GPUs, 96 vCPU,
1152 GiB; g5.12xlarge: 4 GPUs, 48 vCPU, 192 GiB; m5.xlarge: 4 vCPU, 16 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: kwok manages only nodes with this annotation (`--manage-nodes-with-annotation-selector`), as its docs advise.
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
GPU_RESOURCE = "nvidia.com/gpu"
ZONE = "us-east-1a"


@dataclass(frozen=True)
class FakeNode:
    name: str
    nodepool: str | None
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...]  # key, value, effect
    cpu: str
    memory: str
    gpus: int
    instance_type: str
    capacity_type: str

    def manifest(self) -> dict[str, Any]:
        labels = {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": self.name,
            "node.kubernetes.io/instance-type": self.instance_type,
            "karpenter.sh/capacity-type": self.capacity_type,
            "topology.kubernetes.io/zone": ZONE,
            "topology.kubernetes.io/region": "us-east-1",
            "type": "kwok",
            **self.labels,
        }
        if self.nodepool:
            labels["karpenter.sh/nodepool"] = self.nodepool
            labels["karpenter.sh/registered"] = "true"
            labels["karpenter.sh/initialized"] = "true"
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": "110"}
        if self.gpus:
            capacity[GPU_RESOURCE] = str(self.gpus)
            labels["karpenter.k8s.aws/instance-gpu-count"] = str(self.gpus)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels, "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]}},
            "spec": {"taints": [{"key": k, "value": v, "effect": e} for k, v, e in self.taints]},
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


_GPU_TAINT = (GPU_RESOURCE, "true", "NoSchedule")

FAKE_NODES: tuple[FakeNode, ...] = (
    FakeNode(
        name="kwok-gpu-inference-0",
        nodepool="gpu-inference-pool",
        labels={"node-type": "gpu-inference", "workload": "genai", "karpenter.k8s.aws/instance-gpu-name": "a100"},
        taints=(_GPU_TAINT,),
        cpu="96",
        memory="1152Gi",
        gpus=8,
        instance_type="p4d.24xlarge",
        capacity_type="on-demand",
    ),
    FakeNode(
        name="kwok-gpu-spot-0",
        nodepool="gpu-spot-pool",
        labels={"node-type": "gpu-spot", "workload": "genai", "karpenter.k8s.aws/instance-gpu-name": "a10g"},
        taints=(_GPU_TAINT, ("karpenter.sh/capacity-type", "spot", "NoSchedule")),
        cpu="48",
        memory="192Gi",
        gpus=4,
        instance_type="g5.12xlarge",
        capacity_type="spot",
    ),
    FakeNode(
        name="kwok-system-0",
        nodepool=None,
        labels={"node-type": "system"},
        taints=(),
        cpu="4",
        memory="16Gi",
        gpus=0,
        instance_type="m5.xlarge",
        capacity_type="on-demand",
    ),
)
