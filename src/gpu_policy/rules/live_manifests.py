"""Manifests against the cluster (`gpu-policy check --live PATH...`): the API server's own verdict on each object
(server-side dry run) and drift between what the manifests say and what the cluster holds (`live/drift.py`).

In this mode the static rules judge the manifests, as without `--live`; these rules and the runtime rules judge the
cluster. Without manifests (`--live` alone) there is nothing to compare: their scenarios are skipped.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from gpu_policy.live.client import LiveError
from gpu_policy.live.drift import ManifestState, compare
from gpu_policy.live.state import LiveState
from gpu_policy.loading.document import format_path
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

LIVE_MANIFEST_TAGS = ("live", "live-manifests")
_MISSING_NAMESPACE = re.compile(r'namespaces "([^"]+)" not found')


def manifest_states(ctx: CheckContext) -> list[ManifestState]:
    """Dry run, lookup and comparison of every manifest object, once per run (the three rules share it)."""
    live = ctx.live
    if live is None or not live.manifests:
        return []

    def compute() -> list[ManifestState]:
        documents = [d for d in ctx.graph.documents if d.is_object and d.kind and d.name and d.api_version]
        print(f"gpu-policy: dry-running {len(documents)} manifest objects against cluster {live.context} ...",
              file=sys.stderr, flush=True)  # fmt: skip
        with live.reader() as reader:
            return compare(reader, documents, live.default_namespace)

    return ctx.memo("live-manifest-states", compute)


def _namespace_created_by_set(ctx: CheckContext, live: LiveState, message: str) -> str | None:
    """The namespace a dry run did not find, when the manifests create it and the cluster lacks it: the object
    cannot be dry-run before its namespace exists (a dry-run Namespace creates nothing)."""
    match = _MISSING_NAMESPACE.search(message)
    if match is None:
        return None
    name = match.group(1)
    in_set = any(d.kind == "Namespace" and d.name == name for d in ctx.graph.documents)
    return name if in_set and live.get("Namespace", name) is None else None


@rule(
    "live-dry-run-accepted",
    title="the API server accepts every manifest object",
    area="live",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_MANIFEST_TAGS,
    rationale="""A server-side dry run (dryRun=All, nothing persisted) puts each object through the cluster's own
    decoding, defaulting, schema and CEL validation and every admission webhook and policy, exactly as an apply
    would. What it rejects, `kubectl apply` rejects too: the deployment fails there, or half of it is applied.""",
    fix="""Fix the field the API server names (its message is quoted), or install the CRD/API version the cluster
    lacks; then `kubectl apply --server-side --dry-run=server -f <file>` must pass.""",
    sources=("kubernetes.io/docs/reference/using-api/api-concepts/#dry-run",
             "kubernetes.io/docs/reference/using-api/server-side-apply/"),
)
def dry_run_accepted(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for state in manifest_states(ctx):
        outcome = state.dry_run
        if outcome.accepted:
            continue
        if outcome.status == 403:  # a missing permission is the runner's environment, not a defect of the object
            raise LiveError(outcome.message)
        namespace = _namespace_created_by_set(ctx, live, outcome.message)
        if namespace is not None:
            continue  # judged when the Namespace exists; live-object-exists reports the missing Namespace
        yield Violation(state.document, f"cluster {live.context} rejects it (dry run, HTTP {outcome.status or '-'}): "
                        f"{outcome.message}")


@rule(
    "live-object-exists",
    title="every manifest object exists in the cluster",
    area="live",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_MANIFEST_TAGS,
    rationale="""An object of the manifests that the cluster does not hold was never applied, was deleted, or lives
    under another name or namespace: what was reviewed is not what runs.""",
    fix="""Apply the manifests (or the sync of your GitOps tool), or remove the object from them if it is gone on
    purpose; check --namespace for objects that set no namespace.""",
    sources=("kubernetes.io/docs/reference/using-api/api-concepts/",),
)
def object_exists(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for state in manifest_states(ctx):
        if state.exists is False:
            where = state.dry_run.path.rsplit("/", 1)[0]
            yield Violation(state.document, f"not found in cluster {live.context} ({where})")


def _show(value: Any) -> str:
    text = "(not set)" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@rule(
    "live-object-matches-manifest",
    title="the cluster holds what the manifests say",
    area="live",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_MANIFEST_TAGS,
    rationale="""A field the manifest sets that holds another value in the cluster is drift: someone edited the
    live object, a controller or webhook overwrites it, or the manifests were never applied. The reviewed
    configuration is then not what runs, and the next apply silently changes production back. Only the fields the
    manifest sets are compared (as `kubectl diff` compares): defaults and fields other managers own are not drift.""",
    fix="""Apply the manifests again, or bring the manifest in line with the cluster if the live change is
    wanted; find who changed the field in the object's metadata.managedFields (`kubectl get -o yaml
    --show-managed-fields`).""",
    sources=("k8s.io/kubectl/pkg/cmd/diff/diff.go (server-side dry run compared with the live object)",
             "kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy"),
)
def object_matches_manifest(ctx: CheckContext) -> Iterator[Violation]:
    live = ctx.live
    if live is None:
        return
    for state in manifest_states(ctx):
        if not state.differences:
            continue
        first = state.differences[0]
        details = tuple(f"{format_path(d.path)}: cluster {_show(d.live)}, manifest {_show(d.manifest)}"
                        for d in state.differences)
        more = f" (and {len(state.differences) - 1} more fields)" if len(state.differences) > 1 else ""
        yield Violation(state.document, f"differs in cluster {live.context}: {format_path(first.path)} is "
                        f"{_show(first.live)} there, {_show(first.manifest)} in the manifest{more}",
                        path=first.path, details=details)
