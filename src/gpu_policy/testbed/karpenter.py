"""Karpenter on the testbed (`up --with karpenter`): Karpenter core of the pinned version with its kwok cloud
provider (kubernetes-sigs/karpenter kwok/main.go), as a local process on 127.0.0.1.

- **Instance types** (`INSTANCE_TYPES_FILE_PATH`, the kwok provider's JSON format, kwok/cloudprovider/helpers.go
  InstanceTypeOptions): every NVIDIA GPU type of the bundled AWS catalogue (gpu_policy/data/aws-gpu-instances.yaml)
  that has a us-east-1 on-demand price, with `nvidia.com/gpu` capacity, its vCPUs and memory, and one on-demand and
  one spot offering per zone of ZONES. Prices: on-demand is the catalogue's (Karpenter's AWS pricing snapshot); spot
  is **70 % of on-demand**, the ratio Karpenter's own kwok instance-type generator uses (kwok/tools/
  gen_instance_types.go: `lo.Ternary(ct == v1.CapacityTypeSpot, price*.7, price)`) - an assumption, not a quote.
  Each offering also carries the `karpenter.k8s.aws/instance-*` labels the AWS provider derives for the type
  (nodes.instance_labels), so the reference NodePools' requirements on them (instance-gpu-count Gt 0) select as on
  EKS; the kwok provider registers offering requirement keys as well-known labels and puts them on the node.
- **Node classes**: the KWOKNodeClass CRD of the pinned release (copied from the module at build time) and one
  KWOKNodeClass per node class name the reference NodePools use (gpu-nodeclass, gpu-spot-nodeclass). Karpenter
  provisions only for a Ready NodePool, and a NodePool is Ready only when its node class's Ready condition is True
  (pkg/controllers/nodepool/readiness/controller.go; Unknown gives NodeClassReadinessUnknown). Real providers run a
  node-class controller that sets it (the AWS provider's EC2NodeClass status controller); the kwok provider at the
  pin has none, so the testbed stands in for it and writes `Ready=True` through the status subresource of each
  KWOKNodeClass it creates, once.
- **Drill NodePools** (`drill_nodepools`): the reference NodePools (manifests/karpenter/nodepools.yaml) with
  `spec.template.spec.nodeClassRef` swapped from the EC2NodeClass to the KWOKNodeClass of the same name (group
  karpenter.kwok.sh, kind KWOKNodeClass) and nothing else changed.
- **Nodes**: the kwok provider creates a Node per NodeClaim with the annotation `kwok.x-k8s.io/node: fake`, which is
  exactly what the testbed's kwok manages (--manage-nodes-with-annotation-selector): kwok makes it Ready with
  the node IP 127.0.0.2 and runs its pods with 127.64.x IPs. With Karpenter the testbed creates no fake GPU node of
  its own: the GPU nodes are the ones Karpenter launches.
- Listeners: metrics and health probe on 127.0.0.1 (source patch of components.py: Karpenter has port options
  only); leader election off.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed.api import http_ok
from gpu_policy.testbed.nodes import REGION, NodeSpecError, instance_labels

LOOPBACK = "127.0.0.1"
PROCESSES = ("karpenter",)
PORTS = ("karpenter-metrics", "karpenter-health")
NODECLASS_CRD = "karpenter.kwok.sh_kwoknodeclasses.yaml"
KWOK_GROUP = "karpenter.kwok.sh"
KWOK_KIND = "KWOKNodeClass"
ZONES = (f"{REGION}a", f"{REGION}b", f"{REGION}c")
#: kwok/tools/gen_instance_types.go: spot offerings at 70 % of the on-demand price.
SPOT_PRICE_RATIO = Decimal("0.7")
GPU_RESOURCE = "nvidia.com/gpu"


def folder(state_dir: Path) -> Path:
    return state_dir / "karpenter"


def instance_types() -> list[dict[str, Any]]:
    """The kwok provider's instance-types file content, from the bundled GPU catalogue (see the module docstring)."""
    from gpu_policy.graph.nodes.catalogue import catalogue

    out = []
    for name, facts in catalogue().types.items():
        if facts["gpuManufacturer"] != "nvidia" or "onDemandUSD" not in facts:
            continue  # AMD GPUs are amd.com/gpu; a type without a us-east-1 price cannot be offered
        try:
            labels = instance_labels(name, facts)
        except NodeSpecError:
            continue
        on_demand = Decimal(facts["onDemandUSD"])
        offerings = []
        for zone in ZONES:
            for capacity_type, price in (("on-demand", on_demand), ("spot", on_demand * SPOT_PRICE_RATIO)):
                requirements = [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity_type]},
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]},
                    *({"key": key, "operator": "In", "values": [value]} for key, value in sorted(labels.items())),
                ]
                offerings.append({"Price": float(price), "Available": True, "Requirements": requirements})
        out.append({
            "name": name,
            "offerings": offerings,
            "architecture": facts["arch"],
            "operatingSystems": ["linux"],
            "resources": {"cpu": str(facts["vcpu"]), "memory": f"{facts['memoryMiB']}Mi",
                          GPU_RESOURCE: str(facts["gpuCount"]), "pods": "110"},
        })  # fmt: skip
    return out


def write_instance_types(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(instance_types(), indent=1) + "\n", encoding="utf-8")
    return path


def env(state_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """Karpenter's options are environment variables (pkg/operator/options, kwok/options)."""
    return {
        "KUBECONFIG": str(state_dir / "karpenter.kubeconfig"),
        "DISABLE_LEADER_ELECTION": "true",
        "METRICS_PORT": str(ports["karpenter-metrics"]),
        "HEALTH_PROBE_PORT": str(ports["karpenter-health"]),
        "INSTANCE_TYPES_FILE_PATH": str(folder(state_dir) / "instance-types.json"),
        "LOG_LEVEL": "info",
        "SYSTEM_NAMESPACE": "kube-system",
        "CLUSTER_NAME": "gpu-policy-testbed",
    }


def argv(binary: Path) -> list[str]:
    return [str(binary)]


def healthy(ports: dict[str, int]) -> bool:
    return http_ok(f"http://{LOOPBACK}:{ports['karpenter-health']}/readyz")


def reference_nodepools(manifests: Path | None = None) -> list[dict[str, Any]]:
    path = (manifests or reference_manifests_dir()) / "karpenter" / "nodepools.yaml"
    documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [d for d in documents if isinstance(d, dict) and d.get("kind") == "NodePool"]


def drill_nodepool(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference NodePool with its nodeClassRef pointing at the KWOKNodeClass of the same name; nothing else."""
    pool = copy.deepcopy(reference)
    ref = pool["spec"]["template"]["spec"]["nodeClassRef"]
    pool["spec"]["template"]["spec"]["nodeClassRef"] = {"group": KWOK_GROUP, "kind": KWOK_KIND, "name": ref["name"]}
    return pool


def drill_nodepools(manifests: Path | None = None) -> list[dict[str, Any]]:
    return [drill_nodepool(pool) for pool in reference_nodepools(manifests)]


def ready_status(generation: int) -> dict[str, Any]:
    """The status a node-class controller writes for a usable node class (operatorpkg status.Condition fields)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                       "lastTransitionTime": now, "observedGeneration": generation}]}}


def node_classes(manifests: Path | None = None) -> list[dict[str, Any]]:
    """One KWOKNodeClass per node class the reference NodePools name."""
    names = sorted({p["spec"]["template"]["spec"]["nodeClassRef"]["name"] for p in reference_nodepools(manifests)})
    return [{"apiVersion": f"{KWOK_GROUP}/v1alpha1", "kind": KWOK_KIND, "metadata": {"name": n}} for n in names]
