"""Where each workload kind keeps its pod template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpu_policy.loading.document import Document, FieldPath

POD_TEMPLATE_PATHS: dict[str, FieldPath] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})


@dataclass(frozen=True)
class PodTemplate:
    owner: Document
    path: FieldPath
    """Path of the pod template (`metadata` + `spec`) inside the owner; `()` for a bare Pod."""

    @property
    def template(self) -> dict[str, Any]:
        value = self.owner.get(self.path) if self.path else self.owner.obj
        return value if isinstance(value, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        value = self.template.get("spec")
        return value if isinstance(value, dict) else {}

    @property
    def spec_path(self) -> FieldPath:
        return (*self.path, "spec")

    @property
    def labels(self) -> dict[str, Any]:
        meta = self.template.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        return labels if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        meta = self.template.get("metadata")
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        return ann if isinstance(ann, dict) else {}

    def containers(self, include_init: bool = False) -> list[tuple[FieldPath, dict[str, Any]]]:
        fields = ("initContainers", "containers") if include_init else ("containers",)
        out: list[tuple[FieldPath, dict[str, Any]]] = []
        for name in fields:
            for i, container in enumerate(self.spec.get(name) or []):
                if isinstance(container, dict):
                    out.append(((*self.spec_path, name, i), container))
        return out


def pod_template_of(doc: Document) -> PodTemplate | None:
    if doc.kind == "Pod" and doc.api_version == "v1":
        return PodTemplate(doc, ())
    path = POD_TEMPLATE_PATHS.get(doc.kind)
    if path is None or not isinstance(doc.get(path), dict):
        return None
    return PodTemplate(doc, path)
