"""documents -> indexed graph: every cross-reference a check needs, answered by index lookups, never by scans.

The same class is fed from files (static mode) and from a live cluster's objects (live mode).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from gpu_policy.graph.selectors import match_expression, matches_map
from gpu_policy.graph.workloads import PodTemplate, pod_template_of
from gpu_policy.loading.document import CLUSTER_SCOPED_CORE_KINDS, Document

ScopeLookup = Callable[[str, str], bool | None]
"""(group, kind) -> True when cluster-scoped, False when namespaced, None when unknown."""

Key = tuple[str, str, str]
T = TypeVar("T")


def _default_scope(group: str, kind: str) -> bool | None:
    return True if not group and kind in CLUSTER_SCOPED_CORE_KINDS else None


def _is_builtin_group(group: str) -> bool:
    """Kubernetes' own API groups: the core group, `apps`, `batch`, ... and `*.k8s.io`."""
    return "." not in group or group.endswith(".k8s.io")


def _namespaced(scope: ScopeLookup, doc: Document) -> bool:
    known = scope(doc.group, doc.kind)
    if known is None:
        known = _default_scope(doc.group, doc.kind)
    if known is None and _is_builtin_group(doc.group) and doc.kind:
        known = doc.kind in CLUSTER_SCOPED_CORE_KINDS
    return known is False


class ResourceGraph:
    def __init__(
        self, documents: Iterable[Document], scope_of: ScopeLookup | None = None, *, default_namespace: str = "default"
    ) -> None:
        """`default_namespace` is where a namespaced object whose manifest names no namespace lands
        (`kubectl apply` without `-n`: `default`); objects are indexed and named with it, so that an unset
        namespace and `default` are the same place."""
        scope = scope_of or _default_scope
        self.documents: list[Document] = []
        self.duplicates: list[tuple[Document, Document]] = []
        self._by_key: dict[Key, Document] = {}
        self._by_kind: dict[str, list[Document]] = defaultdict(list)
        self._label_index: dict[tuple[str, str], dict[tuple[str, str], list[Document]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._templates: list[PodTemplate] = []
        self._derived: dict[str, Any] = {}
        for doc in documents:
            if scope(doc.group, doc.kind) is True and doc.metadata.get("namespace"):
                # kustomize's `namespace:` lands on cluster-scoped custom resources; the API server drops it.
                doc.namespace_override = ""
            elif not doc.namespace and doc.is_object and _namespaced(scope, doc):
                doc.namespace_override = default_namespace
            key = (doc.kind, doc.namespace, doc.name)
            # Objects named by `generateName` get a fresh name from the API server: they never collide.
            first = self._by_key.get(key) if doc.name else None
            if first is not None:
                # A second declaration is still checked on its own (nothing is skipped); name lookups resolve
                # to the first one, and `object-is-unique` reports the clash.
                self.duplicates.append((first, doc))
            elif doc.name:
                self._by_key[key] = doc
            self.documents.append(doc)
            self._by_kind[doc.kind].append(doc)
            bucket = self._label_index[(doc.kind, doc.namespace)]
            for label, value in doc.labels.items():
                bucket[(label, str(value))].append(doc)
            template = pod_template_of(doc)
            if template is not None:
                self._templates.append(template)

    # -- derived indexes --------------------------------------------------------------------------------
    def derived(self, key: str, compute: Callable[[ResourceGraph], T]) -> T:
        """An index built from this graph once (query sources, scrape chains): every layer above shares it."""
        if key not in self._derived:
            self._derived[key] = compute(self)
        value: T = self._derived[key]
        return value

    # -- lookups ---------------------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str = "") -> Document | None:
        return self._by_key.get((kind, namespace, name))

    def of_kind(self, *kinds: str) -> list[Document]:
        if len(kinds) == 1:
            return list(self._by_kind.get(kinds[0], ()))
        return [doc for kind in kinds for doc in self._by_kind.get(kind, ())]

    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    def pod_templates(self) -> list[PodTemplate]:
        return list(self._templates)

    def select(
        self, kind: str, namespace: str, selector: Mapping[str, Any] | None, *, plain_map: bool = False
    ) -> list[Document]:
        """Objects of `kind` in `namespace` whose labels match a LabelSelector (or a plain label map).

        An empty LabelSelector matches every object of the kind in the namespace, as in Kubernetes.
        """
        bucket = self._label_index.get((kind, namespace))
        if not selector:
            return [] if plain_map else [d for d in self._by_kind.get(kind, ()) if d.namespace == namespace]
        match_labels = selector if plain_map else (selector.get("matchLabels") or {})
        expressions = [] if plain_map else (selector.get("matchExpressions") or [])
        if match_labels:
            if bucket is None:
                return []
            sets = [bucket.get((k, str(v)), []) for k, v in match_labels.items()]
            smallest = min(sets, key=len)
            candidates = [d for d in smallest if matches_map(match_labels, d.labels)]
        else:
            candidates = [d for d in self._by_kind.get(kind, ()) if d.namespace == namespace]
        return [d for d in candidates if all(match_expression(d.labels, e) for e in expressions)]

    def namespaces(self) -> set[str]:
        return {d.name for d in self._by_kind.get("Namespace", ())}
