"""files -> documents: read every input, decode it as Kubernetes would, and account for every document."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpu_policy.findings import Finding
from gpu_policy.loading.document import Document
from gpu_policy.loading.sources import MANIFEST_SUFFIXES, Stream, iter_streams
from gpu_policy.loading.yaml_reader import to_documents

LOAD_RULE = "manifest-is-readable"
SHAPE_RULE = "manifest-has-identity"


@dataclass(frozen=True)
class NotChecked:
    source: str
    line: int
    reason: str


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _flatten_lists(doc: Document) -> list[Document]:
    """`kind: List` (and `FooList`) hold objects under `items`; kubectl applies each item on its own."""
    items = doc.obj.get("items") if doc.is_object else None
    if not (doc.kind == "List" or doc.kind.endswith("List")) or not isinstance(items, list):
        return [doc]
    out: list[Document] = []
    for i, item in enumerate(items):
        prefix = ("items", i)
        positions = {p[2:]: line for p, line in doc.positions.items() if p[:2] == prefix and len(p) > 2}
        out.extend(
            _flatten_lists(
                Document(obj=item, source=doc.source, line=doc.positions.get(prefix, doc.line),
                         index=doc.index, positions=positions)
            )
        )
    return out


def _identity_problems(doc: Document) -> list[str]:
    if not doc.is_object:
        return [f"the document is a {type(doc.obj).__name__}, not a Kubernetes object (a mapping)"]
    problems = []
    if not doc.api_version:
        problems.append("apiVersion is missing or not a string")
    if not doc.kind:
        problems.append("kind is missing or not a string")
    if not doc.name and not doc.metadata.get("generateName"):
        problems.append("metadata.name is missing or not a string")
    return problems


def _origins(folder: Path) -> dict[tuple[str, str], Document]:
    """Documents of a kustomization's own files by (kind, name), so rendered objects point at their source."""
    found: dict[tuple[str, str], Document] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in MANIFEST_SUFFIXES or not path.is_file() or path.name.startswith("kustomization"):
            continue
        try:
            docs, _ = to_documents(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError):
            continue
        for doc in docs:
            for item in _flatten_lists(doc):
                if item.is_object and item.kind and item.name:
                    found.setdefault((item.kind, item.name), item)
    return found


def _attribute_to_origin(doc: Document, origins: dict[tuple[str, str], Document], stream: Stream) -> Document:
    origin = origins.get((doc.kind, doc.name))
    if origin is None:
        return Document(obj=doc.obj, source=f"{stream.source} (kustomize output)", line=doc.line,
                        index=doc.index, positions=doc.positions)
    # Same object after kustomize's transformations: report against the file a person edits.
    return Document(obj=doc.obj, source=origin.source, line=origin.line, index=origin.index,
                    positions={**doc.positions, **origin.positions})


def load_stream(stream: Stream, result: LoadResult) -> None:
    result.sources.append(stream.source)
    docs, errors = to_documents(stream.text, stream.source)
    for error in errors:
        result.findings.append(
            Finding(
                rule_id=LOAD_RULE, resource=f"<{stream.source}>", file=stream.source, line=error.line,
                message=error.message,
                why="A document that cannot be decoded is never applied and never checked.",
                fix="Correct the YAML at this line; `kubectl apply --dry-run=client -f FILE` shows the same error.",
            )
        )
        result.not_checked.append(NotChecked(stream.source, error.line, error.message))
    origins = _origins(stream.kustomization) if stream.kustomization is not None else {}
    for raw in docs:
        for doc in _flatten_lists(raw):
            if stream.kustomization is not None and doc.is_object:
                doc = _attribute_to_origin(doc, origins, stream)
            problems = _identity_problems(doc)
            if problems:
                result.findings.append(
                    Finding(
                        rule_id=SHAPE_RULE, resource=doc.ref if doc.is_object else f"<{doc.source}>",
                        file=doc.source, line=doc.line, message="; ".join(problems),
                        why="The API server rejects an object without apiVersion, kind and metadata.name.",
                        fix="Give the document apiVersion, kind and metadata.name.",
                    )
                )
                result.not_checked.append(NotChecked(doc.source, doc.line, "; ".join(problems)))
                continue
            result.documents.append(doc)


def load_manifests(paths: list[str]) -> LoadResult:
    result = LoadResult()
    for stream in iter_streams(paths):
        load_stream(stream, result)
    return result
