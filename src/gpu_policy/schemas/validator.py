"""The schema-validation facade: one `ManifestValidator` per run validates every document against its schema.

- core kinds: kubernetes-validate's strict schemas for the cluster's Kubernetes version (`core.py`);
- custom resources: the served version's structural schema and CEL rules from the CRDs found on the CRD paths
  and in the user cache (`crds.py`, `crd_schema.py`, `cel_rules.py`);
- neither: a `missing-schema` issue; the caller decides whether that fails (`--ignore-missing-schemas`).
Schemas are compiled once per (version, kind, apiVersion) and reused for every document.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path

from gpu_policy.loading.document import Document
from gpu_policy.schemas.core import core_schemas, resolve_version, schema_file_name
from gpu_policy.schemas.crds import CrdRegistry, default_crd_paths, user_cache_dir
from gpu_policy.schemas.issues import MISSING_SCHEMA, SchemaIssue
from gpu_policy.schemas.names import name_issues
from gpu_policy.schemas.structural import Run, validate

__all__ = ["ManifestValidator", "SchemaIssue", "default_crd_paths"]


class ManifestValidator:
    def __init__(self, kubernetes_version: str, crd_paths: Sequence[Path], use_cache: bool = True) -> None:
        self.version = resolve_version(kubernetes_version)
        self.core = core_schemas(self.version)
        cache = user_cache_dir() if use_cache else None
        self.crds = CrdRegistry(list(crd_paths), cache, self.core.object_meta())
        self._core_files: list[str] | None = None

    def validate(self, doc: Document) -> list[SchemaIssue]:
        """Every problem of the document against its schema; [] when it is valid (or has no identity at all,
        which the loader reports on its own)."""
        if not doc.is_object or not doc.api_version or not doc.kind:
            return []
        return self._schema_issues(doc) + name_issues(doc)

    def _schema_issues(self, doc: Document) -> list[SchemaIssue]:
        api_version, kind = doc.api_version, doc.kind
        node = self.core.for_kind(api_version, kind)
        if node is not None:
            run = Run(strict_lists=False)
            validate(doc.obj, node, run)
            return run.issues
        group, _, version = api_version.rpartition("/")
        schema, reason = self.crds.lookup(group, version, kind)
        if schema is not None:
            return schema.validate(doc.obj)
        return [
            SchemaIssue(MISSING_SCHEMA, ("kind",), self._missing_message(api_version, kind, group, reason))
        ]

    def scope_of(self, group: str, kind: str) -> bool | None:
        """True when the CRD for (group, kind) is cluster-scoped, False when namespaced, None when unknown."""
        return self.crds.scope_of(group, kind)

    def covers_group(self, group: str) -> bool:
        """Whether the suite knows the API group itself, so that an unknown version or kind in it is a mistake rather
        than a product whose CRDs are not bundled: Kubernetes' own groups (no dot: the API server refuses a CRD group
        without one; or a `*.k8s.io` group that the core schemas serve) and every group a loaded CRD defines."""
        if "." not in group:
            return True
        if any(d.group == group for d in self.crds.definitions.values()):
            return True
        if group.endswith(".k8s.io"):
            first = group.split(".", 1)[0]
            return any(name.rsplit("-", 1)[0].endswith(f"-{first}") for name in self._files())
        return False

    def describe_sources(self) -> list[str]:
        lines = [f"core: {self.core.label}: {self.core.directory}"]
        lines += [f"CRD {line}" for line in self.crds.describe()]
        lines.append("CRD paths searched: " + (", ".join(self.crds.searched) or "none"))
        return lines

    # -- messages --------------------------------------------------------------------------------------------
    def _missing_message(self, api_version: str, kind: str, group: str, reason: str) -> str:
        major, minor = self.version
        if reason:
            return f"no schema for {kind} in {api_version}: {reason}"
        searched = ", ".join(self.crds.searched) or "no CRD paths"
        text = (
            f"no schema for {kind} in {api_version}: not a core kind of Kubernetes {major}.{minor} and no "
            f"CRD defines {kind}.{group or 'core'} (searched: {searched})"
        )
        hint = self._hint(api_version, kind, group)
        return f"{text}{hint}"

    def _hint(self, api_version: str, kind: str, group: str) -> str:
        elsewhere = sorted(self._core_api_versions_of(kind))
        elsewhere += sorted(
            f"{d.group}/{v}"
            for d in self.crds.definitions.values()
            if d.kind == kind
            for v in d.served_versions
        )
        if elsewhere:
            return f"; {kind} is served as apiVersion {', '.join(elsewhere)}"
        kinds_here = self._core_kinds_of(api_version)
        kinds_here += [
            d.kind
            for d in self.crds.definitions.values()
            if d.group == group and api_version.rpartition("/")[2] in d.versions
        ]
        close = difflib.get_close_matches(kind, kinds_here, n=1, cutoff=0.7)
        return f'; did you mean kind "{close[0]}"?' if close else ""

    def _files(self) -> list[str]:
        if self._core_files is None:
            self._core_files = sorted(p.name for p in self.core.directory.glob("*.json"))
        return self._core_files

    def _gvks(self, file_name: str) -> list[dict[str, str]]:
        with (self.core.directory / file_name).open(encoding="utf-8") as handle:
            schema = json.load(handle)
        return list(schema.get("x-kubernetes-group-version-kind") or [])

    def _core_api_versions_of(self, kind: str) -> list[str]:
        prefix = f"{kind.lower()}-"
        out: set[str] = set()
        for name in self._files():
            if name.startswith(prefix) and len(self._gvks(name)) == 1:
                for gvk in self._gvks(name):
                    if gvk.get("kind") == kind:
                        out.add(f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"])
        return list(out)

    def _core_kinds_of(self, api_version: str) -> list[str]:
        suffix = schema_file_name("x", api_version)[1:]  # "-apps-v1.json"
        kinds: list[str] = []
        for name in self._files():
            if name.endswith(suffix):
                gvks = self._gvks(name)
                if len(gvks) == 1:
                    kinds.append(gvks[0]["kind"])
        return kinds
