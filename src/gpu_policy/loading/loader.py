"""files -> documents: read every input, decode it as Kubernetes would, and account for every document.

Nothing is skipped silently: every document is either in `LoadResult.documents` (checked) or in
`LoadResult.not_checked` with the reason, and the reason is also a finding (`manifest-is-readable` for files
and documents that cannot be decoded, `manifest-has-identity` for documents that are not Kubernetes objects).
Only empty documents (`---` with nothing after it) are dropped: they hold nothing to check. Files that hold no
Kubernetes manifest as they stand (templates, other tools' YAML: not_manifests.py) and files not read on purpose
(sources.py) are listed as not checked without a finding.

File-level findings name the resource `<file:NAME>`, NAME being the file's path relative to the input it was
found under (`<file:inference/vllm.yaml>` for `manifests/inference/vllm.yaml` given as `manifests`), so the
name is the same whatever the working directory; `file` keeps the path as given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.findings import Finding
from gpu_policy.loading.document import Document
from gpu_policy.loading.envfile import envsubst
from gpu_policy.loading.files import read_regular
from gpu_policy.loading.limits import DEFAULT_LIMITS, Limits
from gpu_policy.loading.not_manifests import NOT_KUBERNETES, looks_like_kubernetes, unrendered_template_reason
from gpu_policy.loading.parallel import read_all
from gpu_policy.loading.sources import ORIGIN_ANNOTATION, STDIN, Stream, decode_bytes, iter_streams
from gpu_policy.loading.walk import is_within, walk
from gpu_policy.loading.yaml_reader import RawDocument, YamlError, read_raw, to_documents

LOAD_RULE = "manifest-is-readable"
SHAPE_RULE = "manifest-has-identity"

_LOAD_WHY = "A document that cannot be decoded is never applied and never checked."
_LOAD_FIX = "Correct the YAML at this line; `kubectl apply --dry-run=client -f FILE` shows the same error."
_SHAPE_WHY = "The API server rejects an object without apiVersion, kind and metadata.name."
_SHAPE_FIX = "Give the document apiVersion, kind and metadata.name (or remove it)."

_HELM_SOURCE = re.compile(r"^# Source: (\S[^\n]*?)[ \t]*$", re.MULTILINE)
"""`helm template` writes `# Source: chart/templates/x.yaml` at the top of every document it renders."""


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


def file_resource(stream: Stream) -> str:
    """How findings name a file that holds no identifiable object."""
    if stream.source == STDIN:
        return STDIN
    return f"<file:{stream.name or Path(stream.source).name}>"


# -- kind: List ---------------------------------------------------------------------------------------------
def _is_list(doc: Document) -> bool:
    kind = doc.kind
    return (kind == "List" or kind.endswith("List")) and isinstance(doc.obj.get("items"), list)


def _flatten_lists(doc: Document) -> list[Document]:
    """`kind: List` (and `FooList`) hold objects under `items`; kubectl applies each item on its own."""
    if not doc.is_object or not _is_list(doc):
        return [doc]
    out: list[Document] = []
    by_item: dict[int, dict[tuple[Any, ...], int]] = {}
    for path, line in doc.positions.items():
        if len(path) > 2 and path[0] == "items" and isinstance(path[1], int):
            by_item.setdefault(path[1], {})[path[2:]] = line
    for i, item in enumerate(doc.obj["items"]):
        out.extend(_flatten_lists(
            Document(obj=item, source=doc.source, line=doc.positions.get(("items", i), doc.line),
                     index=doc.index, positions=by_item.get(i, {}))
        ))
    return out


# -- identity ----------------------------------------------------------------------------------------------
def _identity_problems(doc: Document) -> list[str]:
    if not doc.is_object:
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
            type(doc.obj), type(doc.obj).__name__)
        return [f"the document at line {doc.line} is a {kind}, not a Kubernetes object (a mapping)"]
    problems = []
    if not doc.api_version:
        problems.append("apiVersion is missing or not a string")
    if not doc.kind:
        problems.append("kind is missing or not a string")
    if not doc.name and not doc.metadata.get("generateName"):
        problems.append("metadata.name is missing or not a string")
    return problems


# -- helm template output ----------------------------------------------------------------------------------
def _helm_templates(text: str, raws: list[RawDocument]) -> list[str | None]:
    """The `# Source:` template of each document: the last such comment after the previous document."""
    if "# Source: " not in text:
        return [None] * len(raws)
    marks: list[tuple[int, str]] = []
    line, last = 1, 0
    for match in _HELM_SOURCE.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        marks.append((line, match.group(1)))
    out: list[str | None] = []
    previous_end = 0
    cursor = 0
    for raw in raws:
        found = None
        while cursor < len(marks) and marks[cursor][0] < raw.line:
            if marks[cursor][0] >= previous_end:
                found = marks[cursor][1]
            cursor += 1
        out.append(found)
        previous_end = raw.end_line
    return out


# -- kustomize output --------------------------------------------------------------------------------------
def _display_path(target: Path, kustomization: Path) -> str:
    """`target` as a path next to the kustomization folder as the user gave it (`app/deploy.yaml`)."""
    relative = os.path.relpath(target, kustomization.resolve())
    return os.path.normpath(os.path.join(str(kustomization), relative))


def _pop_origin(doc: Document) -> dict[str, Any] | None:
    """Remove the annotation kustomize added for us (it is not part of the object) and return it parsed."""
    annotations = doc.metadata.get("annotations")
    if not isinstance(annotations, dict) or ORIGIN_ANNOTATION not in annotations:
        return None
    raw = annotations.pop(ORIGIN_ANNOTATION)
    if not annotations:
        del doc.obj["metadata"]["annotations"]
    try:
        origin = yaml.safe_load(raw) if isinstance(raw, str) else None
    except yaml.YAMLError:
        return None
    return origin if isinstance(origin, dict) else None


class _KustomizeOrigins:
    """Maps rendered objects back to the file a person edits, and to the line of the object in it.

    The origin annotation is part of the rendered output, which a patch in the kustomization can set to any
    path: it is trusted only when it names a regular file inside the input folder (resolved), read size-capped;
    otherwise the object is attributed to the kustomization's output.
    """

    def __init__(self, stream: Stream, limits: Limits) -> None:
        assert stream.kustomization is not None
        self.stream = stream
        self.folder = stream.kustomization
        self.limits = limits
        self._files: dict[Path, list[Document] | None] = {}
        self._by_identity: dict[tuple[str, str], Document] | None = None

    def _documents_of(self, path: Path) -> list[Document] | None:
        """The objects written in `path`; None when it is not a regular file inside the input folder."""
        if path in self._files:
            return self._files[path]
        cached: list[Document] | None = None
        real = os.path.realpath(path)
        if self.stream.root is not None and is_within(real, self.stream.root):
            read = read_regular(Path(real), str(path), self.limits)
            if read.error is None and read.skipped is None:
                cached = []
                text, error = decode_bytes(read.data, str(path), self.limits)
                if error is None:
                    docs, _ = to_documents(text, _display_path(path, self.folder), self.limits)
                    cached = [item for doc in docs for item in _flatten_lists(doc)]
        self._files[path] = cached
        return cached

    def attribute(self, doc: Document) -> Document:
        origin = _pop_origin(doc) if self.stream.origin_base is not None else None
        if origin is not None and self.stream.origin_base is not None and "repo" not in origin:
            base = self.stream.origin_base
            found: Document | None = None
            if isinstance(origin.get("path"), str):
                found = self._from_file(doc, Path(os.path.normpath(base / origin["path"])))
            elif isinstance(origin.get("configuredIn"), str):
                configured_in = Path(os.path.normpath(base / origin["configuredIn"]))
                found = self._from_generator(doc, configured_in, origin)
            if found is not None:
                return found
        if self.stream.origin_base is None:
            found = self._identity_index().get((doc.kind, doc.name))
            if found is not None:
                return self._rebase(doc, found.source, found.line, found.positions)
        # Remote bases, helm charts inflated by kustomize: only the rendered output shows this object.
        return self._rebase(doc, f"{self.stream.source} (kustomize output)", doc.line, doc.positions)

    def _from_file(self, doc: Document, path: Path) -> Document | None:
        written = self._documents_of(path)
        if written is None:
            return None
        candidates = [d for d in written if d.is_object and d.kind == doc.kind]
        match = next((d for d in candidates if d.name == doc.name), None)
        if match is None:  # namePrefix / nameSuffix: the written name is part of the rendered one
            inside = [d for d in candidates if d.name and d.name in doc.name]
            match = max(inside, key=lambda d: len(d.name), default=None)
        if match is None and len(candidates) == 1:
            match = candidates[0]
        if match is None:
            return self._rebase(doc, _display_path(path, self.folder), 1, {})
        return self._rebase(doc, match.source, match.line, match.positions)

    def _from_generator(self, doc: Document, kustomization: Path, origin: dict[str, Any]) -> Document | None:
        """Generated ConfigMaps/Secrets point at their generator entry in kustomization.yaml."""
        by = origin.get("configuredBy")
        generator_kind = by.get("kind") if isinstance(by, dict) else None
        key = {"ConfigMapGenerator": "configMapGenerator", "SecretGenerator": "secretGenerator"}.get(
            generator_kind if isinstance(generator_kind, str) else "", "")
        docs = self._documents_of(kustomization)
        if docs is None:
            return None
        source = _display_path(kustomization, self.folder)
        if not docs:
            return self._rebase(doc, source, 1, {})
        kustomization_doc = docs[0]
        entries = kustomization_doc.get((key,)) if key else None
        line = kustomization_doc.line_of((key,)) if key else kustomization_doc.line
        if isinstance(entries, list):
            named = [(i, e["name"]) for i, e in enumerate(entries)
                     if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] in doc.name]
            if named:
                index = max(named, key=lambda pair: len(pair[1]))[0]
                line = kustomization_doc.line_of((key, index))
        return self._rebase(doc, source, line, {})

    def _identity_index(self) -> dict[tuple[str, str], Document]:
        """Fallback when origin annotations are unavailable: the folder's own objects by (kind, name)."""
        if self._by_identity is None:
            self._by_identity = {}
            for entry in walk(self.folder, self.limits, kustomizations=False):
                if entry.kind != "file" or entry.real is None or entry.real.name.startswith("kustomization"):
                    continue
                for item in self._documents_of(entry.real) or []:
                    if item.is_object and item.kind and item.name:
                        self._by_identity.setdefault((item.kind, item.name), item)
        return self._by_identity

    @staticmethod
    def _rebase(doc: Document, source: str, line: int, positions: dict[tuple[Any, ...], int]) -> Document:
        # The rendered object is what is checked; lines come from the source file, and a field kustomize added
        # (namespace, common labels) falls back to the line of its nearest ancestor written there.
        return Document(obj=doc.obj, source=source, line=line, index=doc.index, positions=positions)


# -- the loader --------------------------------------------------------------------------------------------
def _load_finding(stream: Stream, line: int, message: str) -> Finding:
    return Finding(rule_id=LOAD_RULE, resource=file_resource(stream), file=stream.source, line=line,
                   message=message, why=_LOAD_WHY, fix=_LOAD_FIX)


def _not_a_manifest(stream: Stream, text: str, raws: list[RawDocument], errors: list[Any]) -> str | None:
    """Why a whole file is listed as not checked instead of being decoded into objects, or None."""
    if stream.kustomization is not None:
        return None  # kubectl's output: every document is an object kustomize built
    if stream.template is not None and unrendered_template_reason(text) is not None:
        return stream.template  # substituted, but placeholders of another template language remain
    if errors:
        return unrendered_template_reason(text)
    values = [raw.value for raw in raws if raw.value is not None]
    if values and not looks_like_kubernetes(values):
        return NOT_KUBERNETES
    return None


def _decoded(stream: Stream) -> bool:
    """Whether `load_stream` decodes the stream's text (it is neither skipped nor unreadable)."""
    return stream.skipped is None and stream.error is None


def load_stream(stream: Stream, result: LoadResult, limits: Limits = DEFAULT_LIMITS,
                env: Mapping[str, str] | None = None,
                decoded: tuple[list[RawDocument], list[YamlError]] | None = None) -> None:
    """Account for one stream; `decoded`: `read_raw` of its (substituted) text when already done (parallel.py)."""
    result.sources.append(stream.source)
    if stream.skipped is not None:  # the listing shows the path: the reason need not repeat it
        result.not_checked.append(NotChecked(stream.source, 1, stream.skipped.removeprefix(f"{stream.source}: ")))
        return
    if stream.error is not None:
        result.findings.append(_load_finding(stream, 1, stream.error))
        result.not_checked.append(NotChecked(stream.source, 1, stream.error))
        return
    text = stream.text if env is None else envsubst(stream.text, env)
    raws, errors = decoded if decoded is not None else read_raw(text, limits)
    reason = _not_a_manifest(stream, text, raws, errors)
    if reason is not None:
        result.not_checked.append(NotChecked(stream.source, 1, reason.removeprefix(f"{stream.source}: ")))
        return
    for error in errors:
        result.findings.append(_load_finding(stream, error.line, error.message))
        result.not_checked.append(NotChecked(stream.source, error.line, error.message))
    templates = _helm_templates(text, raws)
    origins = _KustomizeOrigins(stream, limits) if stream.kustomization is not None else None
    for index, (raw, template) in enumerate(zip(raws, templates, strict=True)):
        if raw.value is None:
            continue
        source = f"{stream.source} ({template})" if template else stream.source
        top = Document(obj=raw.value, source=source, line=raw.line, index=index, positions=raw.positions)
        for doc in _flatten_lists(top):
            if origins is not None and doc.is_object:
                doc = origins.attribute(doc)
            problems = _identity_problems(doc)
            if problems:
                message = "; ".join(problems)
                result.findings.append(Finding(
                    rule_id=SHAPE_RULE, resource=doc.ref if doc.is_object else file_resource(stream),
                    file=doc.source, line=doc.line, message=message, why=_SHAPE_WHY, fix=_SHAPE_FIX,
                ))
                result.not_checked.append(NotChecked(doc.source, doc.line, message))
                continue
            result.documents.append(doc)


def load_streams(streams: Iterable[Stream], *, limits: Limits = DEFAULT_LIMITS,
                 env: Mapping[str, str] | None = None, jobs: int = 1) -> LoadResult:
    """Every stream in order. `jobs` != 1: the streams' YAML is decoded first, on that many processes (0: as
    many as pay, parallel.py); the result is the same as the serial one."""
    result = LoadResult()
    if jobs == 1:
        for stream in streams:
            load_stream(stream, result, limits, env)
        return result
    listed = list(streams)
    texts = [s.text if env is None else envsubst(s.text, env) for s in listed if _decoded(s)]
    decoded = iter(read_all(texts, limits, jobs))
    for stream in listed:
        load_stream(stream, result, limits, env, next(decoded) if _decoded(stream) else None)
    return result


def load_manifests(
    paths: Sequence[str],
    *,
    limits: Limits | None = None,
    exclude: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    allow_remote_bases: bool = False,
    jobs: int = 1,
) -> LoadResult:
    """Load every manifest under `paths` (files, folders, `-` for stdin).

    `limits`: the bounds of limits.py (DEFAULT_LIMITS when None). `exclude`: `--exclude` globs (exclude.py).
    `env`: when given, `$NAME`/`${NAME}` are substituted as GNU envsubst does (envfile.py) before parsing, and
    template files (`*.tpl`, ...) are read and checked once substituted. `allow_remote_bases`: let kustomize
    fetch remote resources (refused by default, with a finding). `jobs`: processes that decode the YAML
    (1: this one only; 0: as many as pay; parallel.py).
    """
    limits = limits or DEFAULT_LIMITS
    streams = iter_streams(paths, limits=limits, exclude=exclude, allow_remote_bases=allow_remote_bases,
                           substitute=env is not None)
    return load_streams(streams, limits=limits, env=env, jobs=jobs)
