"""The testbed's pinned upstream versions (testbed/pins.yaml) and where the wrapper modules live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE_DIR.parent / "_bundled" / "testbed"
_SOURCE = _PACKAGE_DIR.parent.parent.parent / "testbed"


class PinsError(ValueError):
    """testbed/pins.yaml is missing or malformed."""


def wrapper_modules_dir() -> Path:
    """The wheel carries a copy under `_bundled/testbed`; an editable install reads the repository's `testbed/`."""
    return _BUNDLED if _BUNDLED.is_dir() else _SOURCE


@dataclass(frozen=True)
class Pins:
    kubernetes: str
    etcd: str
    kwok: str
    keda: str = ""
    karpenter: str = ""

    def version(self, name: str) -> str:
        """The pinned version of one pins.yaml entry (kubernetes, etcd, kwok, keda, karpenter)."""
        value = getattr(self, name, None)
        if not isinstance(value, str) or not value:
            raise PinsError(f"testbed/pins.yaml has no `{name}.version`")
        return value

    @property
    def kubernetes_minor(self) -> str:
        """v1.33.13 -> "1.33", the form of policies/cluster.yaml's kubernetesVersion."""
        parts = self.kubernetes.removeprefix("v").split(".")
        return ".".join(parts[:2])


def _version(data: dict[str, Any], name: str, path: Path) -> str:
    entry = data.get(name)
    version = entry.get("version") if isinstance(entry, dict) else None
    if not isinstance(version, str) or not version.startswith("v"):
        raise PinsError(f"{path}: `{name}.version` must be a Go module version string like v1.2.3, got {version!r}")
    return version


def load_pins(path: Path | None = None) -> Pins:
    path = path or wrapper_modules_dir() / "pins.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PinsError(f"{path}: cannot read the testbed pins: {exc}") from exc
    if not isinstance(data, dict):
        raise PinsError(f"{path}: expected a mapping of component -> {{version: ...}}")
    return Pins(
        kubernetes=_version(data, "kubernetes", path),
        etcd=_version(data, "etcd", path),
        kwok=_version(data, "kwok", path),
        keda=_version(data, "keda", path) if "keda" in data else "",
        karpenter=_version(data, "karpenter", path) if "karpenter" in data else "",
    )
