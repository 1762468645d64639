"""manifests vs cluster: is each object there, would the API server accept it, and does the cluster hold what it says.

How drift is judged (the choice, and why): like `kubectl diff` (k8s.io/kubectl/pkg/cmd/diff/diff.go, which
server-side-applies with dryRun=All and compares the live object with the dry-run result), each manifest object is
dry-run applied (`dryrun.py`, own field manager `gpu-policy`, force) and the object the API server *would* store is
compared with the live object. Server-side apply merges only the fields the manifest sets, by field ownership
(kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy): fields the manifest leaves out keep
their live values (owned by other managers or by the server), and the server's defaulting runs on both sides. So
any difference left is a field the manifest sets to another value than the cluster holds: drift. A field removed
from the manifest but still set by another manager is not drift under this rule (only fields the manifest sets are
compared). Server-set bookkeeping that every write changes is ignored: `metadata.managedFields`,
`resourceVersion`, `generation`, `uid`, `creationTimestamp` and `status` (a controller's, never the manifest's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_policy.live.client import ClusterReader, LiveError
from gpu_policy.live.dryrun import DryRunOutcome, dry_run_documents
from gpu_policy.loading.document import Document, FieldPath

IGNORED: frozenset[FieldPath] = frozenset({
    ("metadata", "managedFields"), ("metadata", "resourceVersion"), ("metadata", "generation"),
    ("metadata", "uid"), ("metadata", "creationTimestamp"), ("metadata", "selfLink"), ("status",),
})  # fmt: skip
MAX_DIFFERENCES = 20


@dataclass(frozen=True)
class Difference:
    path: FieldPath
    live: Any
    """The cluster's value (None: the cluster does not set it)."""
    manifest: Any
    """The value applying the manifest would store."""


@dataclass
class ManifestState:
    document: Document
    dry_run: DryRunOutcome
    exists: bool | None
    """False: absent from the cluster; None: not looked up (kind not served)."""
    differences: list[Difference] = field(default_factory=list)


def differences(live: Any, applied: Any, path: FieldPath = ()) -> Iterator[Difference]:
    """Leaf differences between the live object and the dry-run result, bookkeeping fields excluded."""
    if path in IGNORED:
        return
    if isinstance(live, dict) and isinstance(applied, dict):
        for key in list(dict.fromkeys([*applied, *live])):
            yield from differences(live.get(key), applied.get(key), (*path, key))
        return
    if isinstance(live, list) and isinstance(applied, list) and len(live) == len(applied):
        for index, (left, right) in enumerate(zip(live, applied, strict=True)):
            yield from differences(left, right, (*path, index))
        return
    if live != applied:
        yield Difference(path, live, applied)


def _get(reader: ClusterReader, path: str) -> dict[str, Any] | None:
    status, body, reason = reader.request("GET", path, [])
    if status == 404:
        return None
    if status >= 400 or status == 0:
        raise LiveError(reader.describe(status, body, reason, "get", path))
    try:
        found = json.loads(body)
    except ValueError as exc:
        raise LiveError(f"cluster {reader.context}: {path} did not answer JSON") from exc
    return found if isinstance(found, dict) else None


def compare(reader: ClusterReader, documents: Sequence[Document], default_namespace: str = "default") -> list[
        ManifestState]:  # fmt: skip
    """One state per document: dry-run outcome, presence in the cluster, and the fields that drifted."""
    states = []
    for outcome in dry_run_documents(reader, documents, default_namespace):
        if not outcome.path:  # kind not served: neither looked up nor compared
            states.append(ManifestState(outcome.document, outcome, None))
            continue
        live = _get(reader, outcome.path)
        state = ManifestState(outcome.document, outcome, live is not None)
        if live is not None and outcome.accepted and outcome.result is not None:
            state.differences = list(differences(live, outcome.result))[:MAX_DIFFERENCES]
        states.append(state)
    return states
