"""A parsed manifest document that remembers where it came from, down to the line of each field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FieldPath = tuple[str | int, ...]

CLUSTER_SCOPED_CORE_KINDS = frozenset(
    {
        "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
        "StorageClass", "CustomResourceDefinition", "APIService", "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        "CSIDriver", "CSINode", "VolumeAttachment", "RuntimeClass", "IngressClass", "ComponentStatus",
        "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration",
    }
)


def source_prefixes(source: str) -> list[str]:
    """`source` and, when it ends with a parenthesised note the loader adds (`rendered.yaml (chart/templates/x.yaml)`
    for helm output, `<folder> (kustomize output)`: loader.load_stream, _KustomizeOrigins), what comes before each
    " (" in it, shortest first: the file or folder the object was read from is one of them."""
    if not source.endswith(")"):
        return [source]
    return [source, *(source[:i] for i in range(len(source)) if source.startswith(" (", i))]


def format_path(path: FieldPath) -> str:
    """`("spec", "taints", 0, "key")` -> `spec.taints[0].key`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Document:
    obj: Any
    """The decoded document as Kubernetes would decode it (timestamps stay strings)."""
    source: str
    """The file it was read from, `<stdin>`, or the kustomization folder it was rendered from."""
    line: int
    """1-based line where the document starts."""
    index: int = 0
    """Position of the document within its source stream."""
    positions: dict[FieldPath, int] = field(default_factory=dict, repr=False)
    """Line of every mapping key and sequence item, by field path."""
    namespace_override: str | None = None
    """Set when the object's namespace must be read differently (kustomize on a cluster-scoped CR)."""

    # -- identity -------------------------------------------------------------------------------------
    @property
    def is_object(self) -> bool:
        return isinstance(self.obj, dict)

    @property
    def kind(self) -> str:
        value = self.obj.get("kind") if self.is_object else None
        return value if isinstance(value, str) else ""

    @property
    def api_version(self) -> str:
        value = self.obj.get("apiVersion") if self.is_object else None
        return value if isinstance(value, str) else ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata") if self.is_object else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        value = self.metadata.get("name")
        return value if isinstance(value, str) else ""

    @property
    def namespace(self) -> str:
        if self.namespace_override is not None:
            return self.namespace_override
        value = self.metadata.get("namespace")
        return value if isinstance(value, str) else ""

    @property
    def effective_namespace(self) -> str:
        """The namespace a namespaced object lands in: `default` when the manifest names none."""
        return self.namespace or "default"

    @property
    def labels(self) -> dict[str, Any]:
        value = self.metadata.get("labels")
        return value if isinstance(value, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        value = self.metadata.get("annotations")
        return value if isinstance(value, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        value = self.obj.get("spec") if self.is_object else None
        return value if isinstance(value, dict) else {}

    @property
    def ref(self) -> str:
        """`Kind/name` or `Kind/namespace/name`: how findings name the resource."""
        kind = self.kind or "<no kind>"
        name = self.name or "<no name>"
        return f"{kind}/{self.namespace}/{name}" if self.namespace else f"{kind}/{name}"

    # -- location -------------------------------------------------------------------------------------
    def line_of(self, path: FieldPath = ()) -> int:
        """Line of the field at `path`, or of its nearest ancestor that exists."""
        probe = tuple(path)
        while probe:
            line = self.positions.get(probe)
            if line is not None:
                return line
            probe = probe[:-1]
        return self.line

    def get(self, path: FieldPath, default: Any = None) -> Any:
        """The value at `path`, or `default` when any step is missing or of the wrong type."""
        node: Any = self.obj
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or not -len(node) <= part < len(node):
                    return default
                node = node[part]
            else:
                if not isinstance(node, dict) or part not in node:
                    return default
                node = node[part]
        return node
