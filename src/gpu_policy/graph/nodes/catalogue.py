"""The AWS GPU instance catalogue: facts about every current EC2 instance type with GPUs, shipped as data.

`src/gpu_policy/data/aws-gpu-instances.yaml` holds, per family and size, what Karpenter labels a node of the type
with (vCPUs, memory MiB, GPU name / manufacturer / count / memory MiB, arch) and an on-demand us-east-1 price with
its date; its header cites the sources. A policy profile may add or correct types in
`instance-types.yaml instanceTypes` (the older, GiB-based fact format) and prices in `cost.yaml onDemandHourlyUSD`;
those win over the catalogue.

Facts are returned as one dict shape every caller shares (`facts()`):
vcpu, memoryMiB, memoryGiB, gpuCount, nvidiaGpus, gpuName, gpuModel, gpuManufacturer, gpuMemoryMiB, gpuMemoryGiB,
arch, family. `nvidiaGpus` is what a node offers as `nvidia.com/gpu` (AMD GPUs are `amd.com/gpu`:
aws/karpenter-provider-aws pkg/providers/instancetype/types.go nvidiaGPUs / amdGPUs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import yaml

CATALOGUE_PATH = Path(__file__).resolve().parents[2] / "data" / "aws-gpu-instances.yaml"
CATALOGUE_LABEL = "the bundled AWS GPU instance catalogue (gpu_policy/data/aws-gpu-instances.yaml)"


class _Policy(Protocol):
    @property
    def instance_types(self) -> dict[str, Any]: ...

    @property
    def cost(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Catalogue:
    types: dict[str, dict[str, Any]]
    """instance type -> facts (the shape of `facts()`), with `onDemandUSD` where priced."""
    prices_as_of: str
    price_region: str
    price_source: str

    def families(self) -> frozenset[str]:
        return frozenset(f["family"] for f in self.types.values())


def _lower_kabob(text: str) -> str:
    """aws/karpenter-provider-aws types.go lowerKabobCase: lower case, spaces to dashes."""
    return text.replace(" ", "-").lower()


@cache
def catalogue() -> Catalogue:
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    types: dict[str, dict[str, Any]] = {}
    for family, spec in data["families"].items():
        shared = {k: v for k, v in spec.items() if k not in ("sizes", "source")}
        for name, size in spec["sizes"].items():
            raw = {**shared, **size}
            gpus = int(raw["gpuCount"])
            manufacturer = str(raw["gpuManufacturer"])
            types[name] = {
                "family": family,
                "vcpu": int(raw["vcpu"]),
                "memoryMiB": int(raw["memoryMiB"]),
                "memoryGiB": Decimal(int(raw["memoryMiB"])) / 1024,
                "gpuCount": gpus,
                "nvidiaGpus": gpus if manufacturer == "nvidia" else 0,
                "gpuName": str(raw["gpuName"]),
                "gpuModel": str(raw["gpuModel"]),
                "gpuManufacturer": manufacturer,
                "gpuMemoryMiB": int(raw["gpuMemoryMiB"]),
                "gpuMemoryGiB": Decimal(int(raw["gpuMemoryMiB"])) / 1024,
                "arch": str(raw["arch"]),
                **({"onDemandUSD": Decimal(str(raw["onDemandUSD"]))} if "onDemandUSD" in raw else {}),
            }
    return Catalogue(types, str(data["pricesAsOf"]), str(data["priceRegion"]), str(data["priceSource"]))


def _from_policy(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's instance-types.yaml entry (GiB-based) in the catalogue's shape."""
    gpus = int(raw.get("gpuCount", 0))
    manufacturer = _lower_kabob(str(raw.get("gpuManufacturer", "NVIDIA")))
    memory_mib = int(Decimal(str(raw["memoryGiB"])) * 1024)
    gpu_mib = int(Decimal(str(raw.get("gpuMemoryGiB", 0))) * 1024)
    model = str(raw.get("gpuModel", ""))
    out: dict[str, Any] = {
        "family": name.partition(".")[0],
        "vcpu": int(raw["vcpu"]),
        "memoryMiB": memory_mib,
        "memoryGiB": Decimal(memory_mib) / 1024,
        "gpuCount": gpus,
        "nvidiaGpus": gpus if manufacturer == "nvidia" else 0,
        "gpuName": _lower_kabob(model),
        "gpuModel": model,
        "gpuManufacturer": manufacturer,
        "gpuMemoryMiB": gpu_mib,
        "gpuMemoryGiB": Decimal(gpu_mib) / 1024,
    }
    if "arch" in raw:
        out["arch"] = str(raw["arch"])
    return out


def instance_facts(policy: _Policy | None, name: str) -> dict[str, Any] | None:
    """Facts of one instance type: the profile's own entry when it has one, else the catalogue's; None when
    neither knows the type (a type without GPUs, or one newer than the catalogue)."""
    if policy is not None:
        own = (policy.instance_types.get("instanceTypes") or {}).get(name)
        if isinstance(own, Mapping):
            return _from_policy(name, own)
    found = catalogue().types.get(name)
    return dict(found) if found is not None else None


def known_types(policy: _Policy | None) -> list[str]:
    """Every GPU instance type the catalogue or the profile describes (catalogue order, then the profile's)."""
    names = list(catalogue().types)
    if policy is not None:
        names += [n for n in policy.instance_types.get("instanceTypes") or {} if n not in catalogue().types]
    return names


@dataclass(frozen=True)
class Price:
    usd: Decimal
    source: str
    as_of: str


def on_demand_price(policy: _Policy | None, name: str) -> Price | None:
    """The on-demand hourly price of a type: the profile's cost.yaml onDemandHourlyUSD first, else the catalogue's
    us-east-1 price (only when the profile's region is us-east-1 or unset)."""
    if policy is not None:
        own = (policy.cost.get("onDemandHourlyUSD") or {}).get(name)
        if own is not None:
            return Price(Decimal(str(own)), "cost.yaml onDemandHourlyUSD", str(policy.cost.get("pricesAsOf", "?")))
        region = policy.cost.get("region")
        if region is not None and region != catalogue().price_region:
            return None
    found = catalogue().types.get(name)
    if found is None or "onDemandUSD" not in found:
        return None
    return Price(found["onDemandUSD"], f"catalogue ({catalogue().price_region})", catalogue().prices_as_of)
