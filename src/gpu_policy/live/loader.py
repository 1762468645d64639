"""cluster -> documents: the objects of every judged kind, read live, as `Document`s for the same ResourceGraph.

`load_live(kubeconfig, context, namespaces)` returns a `LiveLoad` whose `result` is the static loader's `LoadResult`
(documents, findings, not_checked, sources). Each document's source is `cluster <context>` and its line 0: a live
object has no file. Server-managed noise (`metadata.managedFields`) is dropped; status is kept for runtime checks.
Objects a controller generated from another judged object (a KEDA HPA owned by its ScaledObject, ...) are listed as
not checked with that reason: their owner is judged instead. Kinds the cluster does not serve are not checked.
The CRDs the cluster serves are returned too (`crds`), for the schema registry. `items` holds every object read,
generated ones and the runtime kinds (Nodes, Pods, NodeClaims) included, for the runtime rules (`LiveState`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gpu_policy.live.client import ClusterReader
from gpu_policy.live.kinds import JUDGED_KINDS, JudgedKind
from gpu_policy.loading.document import Document
from gpu_policy.loading.loader import LoadResult, NotChecked


@dataclass
class LiveLoad:
    context: str
    server: str
    result: LoadResult
    crds: list[dict[str, Any]] = field(default_factory=list)
    served: dict[str, str] = field(default_factory=dict)
    """`Kind` -> `group/version` it was read at."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """Every object read (judged, generated and runtime kinds), status included."""

    @property
    def source(self) -> str:
        return f"cluster {self.context}"

    def write_crds(self, folder: Path) -> list[Path]:
        """Write the cluster's CRDs as JSON files (for CrdRegistry(crd_paths=[folder]), which reads `.json` with its
        YAML reader: JSON is YAML). As the API server sent them; PyYAML's pure-Python dumper took about 2 s of CPU
        for the 21 pinned CRDs in every `--live` run, `json` a few milliseconds."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for crd in self.crds:
            path = folder / f"{crd['metadata']['name']}.json"
            path.write_text(json.dumps(crd), encoding="utf-8")  # one line: the C encoder (indent= is pure Python)
            written.append(path)
        return written


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    metadata = item.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return item


def _controller_owner(item: dict[str, Any]) -> dict[str, Any] | None:
    for owner in item.get("metadata", {}).get("ownerReferences", []) or []:
        if isinstance(owner, dict) and owner.get("controller"):
            return owner
    return None


def load_live(
    kubeconfig: Path | None = None,
    context: str | None = None,
    namespaces: Sequence[str] = (),
    kinds: Sequence[JudgedKind] = JUDGED_KINDS,
    runtime_kinds: Sequence[JudgedKind] = (),
    progress: TextIO | None = None,
) -> LiveLoad:
    """Read the cluster. Raises `LiveError` (one line: unreachable, 401, 403 naming verb and path, timeout).
    `runtime_kinds` (e.g. `RUNTIME_KINDS`) are read into `items` only; `progress` gets one line per kind."""
    reader = ClusterReader(kubeconfig, context)
    try:
        return _load(reader, list(namespaces), kinds, runtime_kinds, progress)
    finally:
        reader.close()


def _read(reader: ClusterReader, live: LiveLoad, wanted: JudgedKind, namespaces: list[str],
          progress: TextIO | None) -> list[dict[str, Any]]:
    resource = reader.resource_of(wanted.group, wanted.kind)
    if resource is None:
        group = wanted.group or "core"
        live.result.not_checked.append(
            NotChecked(live.source, 0, f"{wanted.kind} ({group}) is not served by the cluster: not checked")
        )
        return []
    live.served[wanted.kind] = resource.api_version
    scopes: list[str | None] = list(namespaces) if resource.namespaced and namespaces else [None]
    read: list[dict[str, Any]] = []
    for namespace in scopes:
        read.extend(_clean(item) for item in reader.list_objects(resource, namespace))
    if progress is not None and read:
        progress.write(f"gpu-policy: read {len(read)} {resource.plural} from cluster {live.context}\n")
        progress.flush()
    return read


def _load(reader: ClusterReader, namespaces: list[str], kinds: Sequence[JudgedKind],
          runtime_kinds: Sequence[JudgedKind], progress: TextIO | None) -> LiveLoad:
    live = LiveLoad(context=reader.context, server=reader.server, result=LoadResult())
    source = live.source
    live.result.sources.append(source)
    judged = {(k.group, k.kind) for k in kinds}
    collected: list[dict[str, Any]] = []
    for wanted in kinds:
        collected.extend(_read(reader, live, wanted, namespaces, progress))
    live.items = list(collected)
    for wanted in runtime_kinds:
        if (wanted.group, wanted.kind) not in judged:
            live.items.extend(_read(reader, live, wanted, namespaces, progress))
    present = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"].get("name", "")) for o in collected}
    for index, item in enumerate(collected):
        owner = _controller_owner(item)
        meta = item["metadata"]
        if owner is not None:
            owner_group = str(owner.get("apiVersion", "")).rpartition("/")[0]
            owner_key = (owner.get("kind"), meta.get("namespace", ""), owner.get("name"))
            if (owner_group, owner.get("kind")) in judged and owner_key in present:
                ref = f"{item['kind']}/{meta.get('namespace', '')}/{meta.get('name', '')}".replace("//", "/")
                live.result.not_checked.append(
                    NotChecked(
                        source,
                        0,
                        f"{ref} is generated by {owner.get('kind')}/{owner.get('name')}: judged through its owner",
                    )
                )
                continue
        live.result.documents.append(Document(obj=item, source=source, line=0, index=index))
    crd_resource = reader.resource_of("apiextensions.k8s.io", "CustomResourceDefinition")
    if crd_resource is not None:
        live.crds = [_clean(crd) for crd in reader.list_objects(crd_resource)]
    return live
