"""The manifests a drill runs on: the reference set, or sets given with --manifests, later ones replacing objects.

    gpu-policy drill alerts --manifests manifests/ --manifests fixtures/drills/alerts-seed-memory-rule/manifests

Each object of a later set replaces the object of the same kind, namespace and name of the earlier sets (or is
added), so a broken variant holds only the objects it changes. A set that cannot be read is an input error (exit 2),
never silently skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpu_policy.errors import InputError
from gpu_policy.findings import Severity
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document
from gpu_policy.loading.loader import load_manifests
from gpu_policy.resources import reference_manifests_dir


def _key(doc: Document) -> tuple[str, str, str]:
    return (doc.kind, doc.namespace or "default", doc.name)


def load_drill_graph(paths: Sequence[str] = ()) -> ResourceGraph:
    """The graph of `paths` (default: the bundled reference manifests), later paths replacing earlier objects."""
    merged: dict[tuple[str, str, str], Document] = {}
    for path in list(paths) or [str(reference_manifests_dir())]:
        loaded = load_manifests([path])
        problems = [f for f in loaded.findings if f.severity == Severity.ERROR]
        if problems:
            first = problems[0]
            raise InputError(f"{path}: cannot load the drill's manifests: {first.resource}: {first.message}")
        if not loaded.documents:
            raise InputError(f"{path}: holds no Kubernetes object")
        for doc in loaded.documents:
            merged[_key(doc)] = doc
    return ResourceGraph(merged.values())
