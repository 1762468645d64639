"""Where CRDs come from: the CRD paths (`--crd-dir` / GPU_POLICY_CRD_PATH, searched recursively), then the
user cache filled by `gpu-policy schemas fetch`. The first definition of a (group, kind) wins; later ones are
listed as shadowed in `describe()`. Schemas are compiled lazily, once per (group, version, kind)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_policy.errors import SchemaSourceError
from gpu_policy.schemas.crd_parse_cache import decode_crd_file
from gpu_policy.schemas.crd_schema import CustomResourceSchema
from gpu_policy.schemas.structural import Node

CRD_PATH_ENV = "GPU_POLICY_CRD_PATH"
CRD_SUFFIXES = (".yaml", ".yml", ".json")


def default_crd_paths() -> list[Path]:
    """The folders named by GPU_POLICY_CRD_PATH (os.pathsep-separated); empty when it is unset."""
    raw = os.environ.get(CRD_PATH_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/gpu-policy/crds, by default ~/.cache/gpu-policy/crds."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpu-policy" / "crds"


@dataclass
class CrdDefinition:
    group: str
    kind: str
    name: str
    cluster_scoped: bool
    versions: dict[str, dict[str, Any]]
    """Every version by name, served or not (the spec dict of the version)."""
    origin: str
    """file:line it was read from."""
    compiled: dict[str, CustomResourceSchema] = field(default_factory=dict)

    @property
    def served_versions(self) -> list[str]:
        return [name for name, spec in self.versions.items() if spec.get("served", True)]


class CrdRegistry:
    def __init__(self, crd_paths: Sequence[Path], cache_dir: Path | None, object_meta: Node) -> None:
        self._object_meta = object_meta
        self.definitions: dict[tuple[str, str], CrdDefinition] = {}
        self.notes: list[str] = []
        self.searched: list[str] = []
        for path in crd_paths:
            path = Path(path)
            if not path.exists():
                raise SchemaSourceError(
                    f"CRD path {path} does not exist (given by --crd-dir or {CRD_PATH_ENV}); "
                    "point it at a folder of CustomResourceDefinition YAML files"
                )
            self.searched.append(str(path))
            self._load_path(path)
        if cache_dir is not None:
            self.searched.append(f"{cache_dir} (cache)")
            if cache_dir.is_dir():
                self._load_path(cache_dir)

    # -- loading ---------------------------------------------------------------------------------------------
    def _load_path(self, path: Path) -> None:
        if path.is_file():
            self._load_file(path)
            return
        for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in CRD_SUFFIXES):
            self._load_file(file)

    def _load_file(self, file: Path) -> None:
        try:
            data = file.read_bytes()
            text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text's newlines
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaSourceError(f"cannot read CRD file {file}: {exc}") from exc
        # decoded once per content (crd_parse_cache.py): the same documents `read_documents(text)` gives
        for item in decode_crd_file(data, text):
            if len(item) == 3:
                raise SchemaSourceError(f"{file}:{item[0]}: malformed CRD file: {item[2]}")
            line, doc = item
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            self._add(doc, f"{file}:{line}")

    def _add(self, doc: dict[str, Any], origin: str) -> None:
        api_version = doc.get("apiVersion")
        if api_version != "apiextensions.k8s.io/v1":
            raise SchemaSourceError(
                f"{origin}: CustomResourceDefinition apiVersion {api_version!r} is not supported; "
                "only apiextensions.k8s.io/v1 is served since Kubernetes 1.22"
            )
        spec: Any = doc.get("spec")
        names = spec.get("names") if isinstance(spec, dict) else None
        versions = spec.get("versions") if isinstance(spec, dict) else None
        group = spec.get("group") if isinstance(spec, dict) else None
        kind = names.get("kind") if isinstance(names, dict) else None
        if (
            not isinstance(group, str)
            or not isinstance(kind, str)
            or not isinstance(versions, list)
            or not versions
        ):
            raise SchemaSourceError(
                f"{origin}: malformed CustomResourceDefinition: spec.group, spec.names.kind and "
                "spec.versions are required"
            )
        by_name: dict[str, dict[str, Any]] = {}
        for version in versions:
            if not isinstance(version, dict) or not isinstance(version.get("name"), str):
                raise SchemaSourceError(
                    f"{origin}: malformed CustomResourceDefinition {kind}: a version has no name"
                )
            by_name[version["name"]] = version
        scope = spec.get("scope")
        if scope not in ("Cluster", "Namespaced"):
            raise SchemaSourceError(
                f"{origin}: CustomResourceDefinition {kind}: scope must be Cluster or "
                f"Namespaced, got {scope!r}"
            )
        key = (group, kind)
        existing = self.definitions.get(key)
        if existing is not None:
            self.notes.append(f"{kind}.{group} from {origin} is shadowed by {existing.origin}")
            return
        meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
        self.definitions[key] = CrdDefinition(
            group=group,
            kind=kind,
            name=str(meta.get("name", f"{kind}.{group}")),
            cluster_scoped=scope == "Cluster",
            versions=by_name,
            origin=origin,
        )

    # -- lookups ---------------------------------------------------------------------------------------------
    def lookup(self, group: str, version: str, kind: str) -> tuple[CustomResourceSchema | None, str]:
        """The compiled schema, or None and why there is none."""
        definition = self.definitions.get((group, kind))
        if definition is None:
            return None, ""
        if version not in definition.versions or not definition.versions[version].get("served", True):
            served = ", ".join(definition.served_versions) or "none"
            return None, (
                f"the CRD {definition.name} ({definition.origin}) does not serve version {version!r} "
                f"(served: {served})"
            )
        compiled = definition.compiled.get(version)
        if compiled is None:
            compiled = CustomResourceSchema(
                definition.versions[version], self._object_meta, f"{kind}.{group}/{version}"
            )
            definition.compiled[version] = compiled
        return compiled, ""

    def scope_of(self, group: str, kind: str) -> bool | None:
        definition = self.definitions.get((group, kind))
        return None if definition is None else definition.cluster_scoped

    def describe(self) -> list[str]:
        lines = [
            f"{d.kind}.{d.group} ({', '.join(d.served_versions)}): {d.origin}"
            for d in sorted(self.definitions.values(), key=lambda d: (d.group, d.kind))
        ]
        return lines + self.notes
