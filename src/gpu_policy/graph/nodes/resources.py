"""What a node of an instance type offers: the capacity Karpenter counts against NodePool limits, and what
pods can request on it (allocatable).

aws/karpenter-provider-aws pkg/providers/instancetype/types.go:
- `memory`: the instance's MiB less ceil(MiB x `vmMemoryOverheadPercent`) (chart setting, default 0.075;
  policies/cluster.yaml karpenter.vmMemoryOverheadPercent). `cpu`: the vCPUs. GPUs: the NVIDIA GPU count.
- `kubeReservedResources`: cpu 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% above; memory
  11 MiB x maxPods + 255 MiB. `evictionThreshold`: 100Mi of memory (kubelet's default memory.available).
  Allocatable = capacity - kube-reserved - eviction threshold (system-reserved is empty by default).
maxPods is modelled as 110 (the kubelet default; AL2023/AL2 derive an ENI-limited count, which reserves more
memory on large types — the fit check is therefore slightly optimistic there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gpu_policy.graph.nodes.labels import GPU_RESOURCE
from gpu_policy.policy.loader import PolicySet

DEFAULT_VM_MEMORY_OVERHEAD = 0.075
MODELLED_MAX_PODS = 110
EVICTION_MEMORY_MIB = 100
MIB = 2**20
GIB = Decimal(2**30)
_CPU_RESERVED_RANGES = ((0, 1000, Decimal("0.06")), (1000, 2000, Decimal("0.01")),
                        (2000, 4000, Decimal("0.005")), (4000, 1 << 31, Decimal("0.0025")))


def vm_memory_overhead(policy: PolicySet) -> float:
    karpenter = policy.cluster.get("karpenter") or {}
    return float(karpenter.get("vmMemoryOverheadPercent", DEFAULT_VM_MEMORY_OVERHEAD))


def karpenter_capacity(facts: Mapping[str, Any], overhead: float) -> dict[str, Decimal]:
    """What Karpenter counts against `spec.limits` for one node of a type before it launches: vCPUs, memory
    less the VM overhead, GPUs, one node."""
    mib = int(facts["memoryMiB"]) if facts.get("memoryMiB") is not None else int(float(facts["memoryGiB"]) * 1024)
    memory = (mib - math.ceil(mib * overhead)) * MIB
    gpus = facts.get("nvidiaGpus", facts.get("gpuCount", 0))  # AMD GPUs are amd.com/gpu, not nvidia.com/gpu
    return {
        "cpu": Decimal(int(facts["vcpu"])),
        "memory": Decimal(memory),
        GPU_RESOURCE: Decimal(int(gpus)),
        "nodes": Decimal(1),
    }


def kube_reserved_cpu_millis(vcpus: int) -> int:
    millis = vcpus * 1000
    total = 0
    for start, end, share in _CPU_RESERVED_RANGES:
        if millis >= start:
            total += int((min(millis, end) - start) * share)
    return total


@dataclass(frozen=True)
class Allocatable:
    cpu: Decimal
    memory: Decimal
    gpus: Decimal

    def get(self, resource: str) -> Decimal:
        return {"cpu": self.cpu, "memory": self.memory, GPU_RESOURCE: self.gpus}.get(resource, Decimal(0))


def allocatable(facts: Mapping[str, Any], overhead: float) -> Allocatable:
    """cpu cores, memory bytes and GPUs a pod can request on a fresh node of this type."""
    capacity = karpenter_capacity(facts, overhead)
    cpu = capacity["cpu"] - Decimal(kube_reserved_cpu_millis(int(facts["vcpu"]))) / 1000
    reserved_mib = 11 * MODELLED_MAX_PODS + 255 + EVICTION_MEMORY_MIB
    return Allocatable(cpu, capacity["memory"] - reserved_mib * MIB, capacity[GPU_RESOURCE])


def format_resource(name: str, value: Decimal) -> str:
    if name == "memory":
        gib = value / GIB
        return f"{gib.quantize(Decimal('0.1')).normalize():f}Gi"
    return f"{value.normalize():f}"


def max_nodes(
    limits: Mapping[str, Decimal], capacity: Mapping[str, Decimal]
) -> tuple[int | None, str | None]:
    """How many nodes of one type Karpenter launches before a limit stops it, and which limit does.

    A node launches only while its capacity fits the remaining limits (kubernetes-sigs/karpenter
    pkg/controllers/provisioning/scheduling/scheduler.go filterByRemainingResources; `Limits.ExceededBy`), so
    n nodes fit iff n x capacity <= limit for every limited resource."""
    best: int | None = None
    binding: str | None = None
    for name, limit in limits.items():
        per_node = capacity.get(name)
        if per_node is None or per_node <= 0:
            continue
        count = int(limit // per_node) if limit >= 0 else 0
        if best is None or count < best:
            best, binding = count, name
    return best, binding
