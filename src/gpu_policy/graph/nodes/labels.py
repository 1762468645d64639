"""The labels a node Karpenter launches carries, and how a node selector expression holds on them.

A node of a NodePool is known only as a set of possibilities per label key (`LabelState`): one of a set of
values, present with a value we cannot predict (zone, hostname), absent, or not modelled at all.

Instance-type labels follow aws/karpenter-provider-aws pkg/providers/instancetype/types.go
`computeRequirements`: `node.kubernetes.io/instance-type`, `kubernetes.io/arch`, `kubernetes.io/os`,
`karpenter.k8s.aws/instance-cpu`, `instance-memory` (MiB), `instance-category` and `instance-generation`
(regex `(^[a-z]+)(\\-[0-9]+tb)?([0-9]+).*\\.`), `instance-family` and `instance-size` (the two halves of the
name), `instance-capability-flex`, and for a type with one kind of GPU `instance-gpu-name` and
`instance-gpu-manufacturer` (`lowerKabobCase`: lower case, spaces to dashes: "a100", "a10g", "nvidia"),
`instance-gpu-count` and `instance-gpu-memory` (per GPU, MiB). Zone, region, zone-id and hostname are set
but not predictable here.

Operators (kubernetes-sigs/karpenter pkg/scheduling/requirement.go `NewRequirementWithFlexibility`, `Has`,
`withinBounds`): In / NotIn / Exists / DoesNotExist, and Gt / Lt / Gte / Lte (the NodePool CRD of v1.14 admits
Gte and Lte) — integer bounds: Gt N is Gte N+1, Lt N is Lte N-1, and a value that is not an integer never
satisfies a bound. NotIn and DoesNotExist hold on a node without the label (`Intersects` lets two
NotIn/DoesNotExist requirements pass), Exists/Gt/Lt do not. Keys are normalized first (pkg/apis/v1/labels.go
`NormalizedLabels`: `beta.kubernetes.io/arch` -> `kubernetes.io/arch`, ...).

EKS Auto Mode nodes carry the same instance facts under `eks.amazonaws.com/instance-*` (the "EKS Auto Mode
Supported Labels" table of docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html, awsdocs/amazon-eks-
user-guide latest/ug/automode/create-node-pool.adoc) plus `eks.amazonaws.com/compute-type: auto`; for an Auto Mode
pool those keys are read as the `karpenter.k8s.aws/` labels of this model, and `karpenter.k8s.aws/` keys are not
modelled (Auto Mode does not document them).

Which labels Karpenter accepts undefined (kubernetes-sigs/karpenter pkg/scheduling/requirements.go
`Compatible` with `AllowUndefinedWellKnownLabels`): a pod requirement on a well-known label the pool does
not define is compatible; on a custom label the pool does not define only NotIn / DoesNotExist are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
ARCH = "kubernetes.io/arch"
OS = "kubernetes.io/os"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
ZONE_ID = "topology.k8s.aws/zone-id"
WINDOWS_BUILD = "node.kubernetes.io/windows-build"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
NODEPOOL = "karpenter.sh/nodepool"
AWS = "karpenter.k8s.aws/"
INSTANCE_FAMILY = AWS + "instance-family"
INSTANCE_CATEGORY = AWS + "instance-category"
INSTANCE_GENERATION = AWS + "instance-generation"
INSTANCE_SIZE = AWS + "instance-size"
INSTANCE_CPU = AWS + "instance-cpu"
INSTANCE_MEMORY = AWS + "instance-memory"
CAPABILITY_FLEX = AWS + "instance-capability-flex"
GPU_NAME = AWS + "instance-gpu-name"
GPU_MANUFACTURER = AWS + "instance-gpu-manufacturer"
GPU_COUNT = AWS + "instance-gpu-count"
GPU_MEMORY = AWS + "instance-gpu-memory"
GPU_LABELS = (GPU_NAME, GPU_MANUFACTURER, GPU_COUNT, GPU_MEMORY)
GFD_LABEL = "nvidia.com/gpu.present"
"""Set by NVIDIA GPU Feature Discovery on a running node, never by Karpenter."""

# kubernetes-sigs/karpenter pkg/apis/v1/labels.go WellKnownLabels, plus the labels the AWS provider registers
# (every karpenter.k8s.aws/ label and topology.k8s.aws/zone-id; aws/karpenter-provider-aws pkg/apis/v1/labels.go).
WELL_KNOWN = frozenset({NODEPOOL, ZONE, REGION, INSTANCE_TYPE, ARCH, OS, CAPACITY_TYPE, WINDOWS_BUILD, ZONE_ID})
# Present on every node with a value the manifests do not determine.
PRESENT_UNPREDICTABLE = (ZONE, REGION, ZONE_ID, HOSTNAME)
_SCHEME = re.compile(r"(^[a-z]+)(-[0-9]+tb)?([0-9]+).*\.")
OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte"})
BOUND_OPERATORS = frozenset({"Gt", "Lt", "Gte", "Lte"})
EKS = "eks.amazonaws.com/"
COMPUTE_TYPE = EKS + "compute-type"
UNMODELLED_PREFIX = "~unmodelled~"
"""Canonical keys with this prefix are not modelled: any value, or none, is possible."""
# kubernetes-sigs/karpenter pkg/apis/v1/labels.go NormalizedLabels.
NORMALIZED = {
    "failure-domain.beta.kubernetes.io/zone": ZONE,
    "beta.kubernetes.io/arch": ARCH,
    "beta.kubernetes.io/os": OS,
    "beta.kubernetes.io/instance-type": INSTANCE_TYPE,
    "failure-domain.beta.kubernetes.io/region": REGION,
}


def canonical_key(key: str, auto_mode: bool = False) -> str:
    """The key this model stores a label under: Karpenter's normalization, and for EKS Auto Mode pools the
    `eks.amazonaws.com/instance-*` labels as their `karpenter.k8s.aws/` equivalents."""
    key = NORMALIZED.get(key, key)
    if auto_mode:
        if key.startswith(EKS + "instance-"):
            return AWS + key[len(EKS):]
        if key.startswith(AWS):
            return UNMODELLED_PREFIX + key
    return key


def is_well_known(key: str) -> bool:
    return key in WELL_KNOWN or key.startswith(AWS)


@dataclass(frozen=True)
class LabelState:
    """What one label key may be on a node: `values` (present, one of them), `any` (present, value unknown),
    `absent`, or `unknown` (not modelled: maybe present, any value)."""

    kind: str
    values: frozenset[str] = frozenset()

    def describe(self) -> str:
        if self.kind == "values":
            return ",".join(sorted(self.values)) or "no possible value"
        return {"any": "any value", "absent": "absent", "unknown": "not modelled"}[self.kind]


ANY = LabelState("any")
ABSENT = LabelState("absent")
UNKNOWN = LabelState("unknown")


def one_of(values: Iterable[Any]) -> LabelState:
    return LabelState("values", frozenset(str(v) for v in values))


def _bound(values: list[str]) -> int | None:
    """Gt/Lt/Gte/Lte take exactly one integer (core/v1 validation; the Karpenter CRD)."""
    if len(values) != 1:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def _compares(value: str, operator: str, bound: int) -> bool:
    """requirement.go withinBounds: only integers are within bounds."""
    try:
        number = int(value)
    except ValueError:
        return False
    if operator == "Gt":
        return number > bound
    if operator == "Lt":
        return number < bound
    if operator == "Gte":
        return number >= bound
    return number <= bound


def narrow(state: LabelState, operator: str, values: list[str]) -> LabelState | None:
    """The part of `state` a node can have and still satisfy `key operator values`; None when no node can."""
    wanted = frozenset(values)
    if operator not in OPERATORS:
        return None
    if operator in BOUND_OPERATORS:
        bound = _bound(values)
        if bound is None or state.kind == "absent":
            return None
        if state.kind == "values":
            kept = frozenset(v for v in state.values if _compares(v, operator, bound))
            return LabelState("values", kept) if kept else None
        return ANY
    if state.kind == "values":
        if operator == "In":
            kept = state.values & wanted
        elif operator == "NotIn":
            kept = state.values - wanted
        elif operator == "Exists":
            kept = state.values
        else:
            return None
        return LabelState("values", kept) if kept else None
    if state.kind == "absent":
        return state if operator in ("NotIn", "DoesNotExist") else None
    # any / unknown
    if operator == "In":
        return one_of(wanted) if wanted else None
    if operator == "Exists":
        return ANY
    if operator == "DoesNotExist":
        return ABSENT if state.kind == "unknown" else None
    return state  # NotIn: some other value (or, if unknown, no label) remains possible


def always_holds(state: LabelState, operator: str, values: list[str]) -> bool:
    """`key operator values` holds on EVERY node of this state."""
    wanted = frozenset(values)
    if state.kind == "values":
        if operator == "In":
            return state.values <= wanted
        if operator == "NotIn":
            return not state.values & wanted
        if operator == "Exists":
            return True
        if operator in BOUND_OPERATORS:
            bound = _bound(values)
            return bound is not None and all(_compares(v, operator, bound) for v in state.values)
        return False
    if state.kind == "any":
        return operator == "Exists"
    if state.kind == "absent":
        return operator in ("NotIn", "DoesNotExist")
    return False


def expression_text(key: str, operator: str, values: list[str]) -> str:
    return f"{key} {operator} [{','.join(values)}]"


def _lower_kabob(text: str) -> str:
    """aws/karpenter-provider-aws types.go lowerKabobCase."""
    return text.replace(" ", "-").lower()


def instance_labels(instance_type: str, facts: Mapping[str, Any] | None) -> dict[str, LabelState]:
    """The labels Karpenter puts on a node of `instance_type` (see the module docstring). Name-derived labels
    are always known; fact-derived ones (cpu, memory, GPUs) only with facts (the GPU instance catalogue, or the
    profile's instanceTypes) — without them they are present with an unknown value (GPU labels: unknown, the type
    may have none)."""
    labels: dict[str, LabelState] = {INSTANCE_TYPE: one_of([instance_type]), OS: one_of(["linux"])}
    family, dot, size = instance_type.partition(".")
    scheme = _SCHEME.match(instance_type)
    if scheme:
        labels[INSTANCE_CATEGORY] = one_of([scheme.group(1)])
        labels[INSTANCE_GENERATION] = one_of([scheme.group(3)])
    if dot and "." not in size:
        labels[INSTANCE_FAMILY] = one_of([family])
        labels[INSTANCE_SIZE] = one_of([size])
    labels[CAPABILITY_FLEX] = one_of(["true" if "-flex" in family else "false"])
    # Graviton families carry a `g` after the generation (c7g, g5g, x2gd); AWS's a1 is Graviton too.
    attributes = family[scheme.end(3) :] if scheme and scheme.end(3) <= len(family) else ""
    labels[ARCH] = one_of(["arm64" if "g" in attributes or family == "a1" else "amd64"])
    if facts is None:
        for key in (INSTANCE_CPU, INSTANCE_MEMORY):
            labels[key] = ANY
        for key in GPU_LABELS:
            labels[key] = UNKNOWN
        return labels
    if facts.get("arch"):
        labels[ARCH] = one_of([str(facts["arch"])])
    labels[INSTANCE_CPU] = one_of([int(facts["vcpu"])])
    memory_mib = facts.get("memoryMiB")
    labels[INSTANCE_MEMORY] = one_of([int(memory_mib) if memory_mib is not None
                                      else int(float(facts["memoryGiB"]) * 1024)])
    gpus = int(facts.get("gpuCount", 0))
    # A type with GPU info carries the four labels even when the count is 0 (fractional-GPU g6f/gr6f: a share
    # of one L4; Karpenter's instance-types reference lists instance-gpu-count 0 and instance-gpu-name l4).
    if gpus > 0 or facts.get("gpuName"):
        name = facts.get("gpuName") or _lower_kabob(str(facts["gpuModel"]))
        labels[GPU_NAME] = one_of([str(name)])
        labels[GPU_MANUFACTURER] = one_of([_lower_kabob(str(facts.get("gpuManufacturer", "NVIDIA")))])
        labels[GPU_COUNT] = one_of([gpus])
        gpu_mib = facts.get("gpuMemoryMiB")
        labels[GPU_MEMORY] = one_of([int(gpu_mib) if gpu_mib is not None
                                     else int(float(facts["gpuMemoryGiB"]) * 1024)])
    else:
        for key in GPU_LABELS:
            labels[key] = ABSENT  # computeRequirements: DoesNotExist unless the type has GPUs
    return labels
