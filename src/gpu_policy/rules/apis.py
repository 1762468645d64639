"""Removed and deprecated API versions: an object at an apiVersion its component no longer serves.

The data (which apiVersion/kind, deprecated and removed in which release of Kubernetes, Karpenter or KEDA, what
replaces it, the migration guide) is `data/api_lifecycle.yaml`, each entry sourced there. The versions the cluster
runs are the policy in force's `cluster.yaml` (kubernetesVersion, karpenterVersion, kedaVersion).

An object at a removed API is judged by `api-not-removed` only: the API server would refuse it, so its fields mean
nothing, and the schemas and rules of the suite describe the current API (a v1alpha5 Provisioner read as a v1
NodePool gives nonsense). `removed_documents` names those objects so that the engine keeps them out of the graph
every other rule reads; the schema rules also skip them on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.findings import Severity
from gpu_policy.loading.document import Document
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "api_lifecycle.yaml"
HIDDEN_OPTION = "api_hidden_documents"
"""CheckContext option: the documents the engine kept out of the graph because `removed_documents` named them."""
GUIDE = "kubernetes.io/docs/reference/using-api/deprecation-guide"


@dataclass(frozen=True)
class ApiLifecycle:
    api_version: str
    kind: str
    component: str
    deprecated: str
    removed: str
    replacement: str | None
    docs: tuple[str, ...]


@dataclass(frozen=True)
class LifecycleData:
    components: dict[str, tuple[str, str]]
    """component -> (label, cluster.yaml key of its version)."""
    apis: dict[tuple[str, str], ApiLifecycle]
    """(apiVersion, kind) -> its lifecycle."""
    served_not_bundled: dict[tuple[str, str], str]
    """(apiVersion, kind) -> product: served by the product, but the suite bundles no CRD for that version."""
    unbundled_groups: dict[str, str]
    """API group -> product, for groups of well-known products whose CRDs the suite does not bundle."""


@cache
def lifecycle_data() -> LifecycleData:
    raw: dict[str, Any] = yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))
    components = {name: (str(c["label"]), str(c["versionKey"])) for name, c in raw["components"].items()}
    apis: dict[tuple[str, str], ApiLifecycle] = {}
    for entry in raw["apis"]:
        for kind, replacement in entry["replacements"].items():
            apis[(entry["apiVersion"], kind)] = ApiLifecycle(
                api_version=entry["apiVersion"], kind=kind, component=entry["component"],
                deprecated=str(entry["deprecated"]), removed=str(entry["removed"]),
                replacement=replacement, docs=tuple(entry["docs"]),
            )
    served = {(e["apiVersion"], e["kind"]): str(e["product"]) for e in raw.get("servedNotBundled") or ()}
    groups = {str(k): str(v) for k, v in (raw.get("unbundledGroups") or {}).items()}
    return LifecycleData(components=components, apis=apis, served_not_bundled=served, unbundled_groups=groups)


def version_tuple(text: str) -> tuple[int, ...]:
    """`1.33`, `v1.14.1`, `0.33.0-rc.1` -> (1, 33), (1, 14, 1), (0, 33, 0); trailing zeros do not matter."""
    numbers = [int(part) for part in re.findall(r"\d+", text.lstrip("v").split("-")[0])]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


@dataclass(frozen=True)
class ApiStatus:
    doc: Document
    lifecycle: ApiLifecycle
    component_label: str
    running: str
    """The component version the policy in force pins."""
    removed: bool

    @property
    def judged_elsewhere(self) -> bool:
        """Whether the other rules may judge the object: not when its API is removed, nor when it is a deprecated
        version of Karpenter or KEDA, whose rules and bundled CRDs describe only the current version."""
        return not self.removed and self.lifecycle.component == "kubernetes"


def api_status(doc: Document, policy: PolicySet) -> ApiStatus | None:
    """The lifecycle of the document's apiVersion on the cluster the policy describes; None when it is current (or
    when the policy pins no version of its component)."""
    if not doc.is_object:
        return None
    data = lifecycle_data()
    lifecycle = data.apis.get((doc.api_version, doc.kind))
    if lifecycle is None:
        return None
    label, key = data.components[lifecycle.component]
    running = policy.cluster.get(key)
    if running is None:
        return None
    version = version_tuple(str(running))
    if version < version_tuple(lifecycle.deprecated):
        return None
    return ApiStatus(doc=doc, lifecycle=lifecycle, component_label=label, running=str(running),
                     removed=version >= version_tuple(lifecycle.removed))


def removed_documents(documents: Iterable[Document], policy: PolicySet) -> set[int]:
    """`id()` of every document the other rules must not judge: at a removed API, or at a deprecated version of a
    non-Kubernetes component. The engine builds the graph the other rules read without them and passes them in the
    `api_hidden_documents` option, where `api-not-removed` and `api-not-deprecated` find them."""
    hidden = set()
    for doc in documents:
        status = api_status(doc, policy)
        if status is not None and not status.judged_elsewhere:
            hidden.add(id(doc))
    return hidden


def hidden_ids(ctx: CheckContext) -> set[int]:
    """The documents of this run the other rules must not judge (those still in the graph included, for runs whose
    graph was built without the engine's filter)."""
    def compute() -> set[int]:
        return removed_documents(_documents(ctx), ctx.policy)

    return ctx.memo("api-hidden-ids", compute)


def _documents(ctx: CheckContext) -> list[Document]:
    hidden: list[Document] = list(ctx.options.get(HIDDEN_OPTION) or ())
    seen = {id(d) for d in hidden}
    return hidden + [d for d in ctx.graph.documents if id(d) not in seen]


def _statuses(ctx: CheckContext) -> list[ApiStatus]:
    def compute() -> list[ApiStatus]:
        return [s for s in (api_status(d, ctx.policy) for d in _documents(ctx)) if s is not None]

    return ctx.memo("api-statuses", compute)


def _pinned_by(ctx: CheckContext, key: str) -> str:
    if "cluster" in ctx.policy.origins:
        return f"{key} in {ctx.policy.source_of('cluster')}"
    return f"the suite's default {key}; set yours in .gpu-policy.yaml"


def _migration(lifecycle: ApiLifecycle) -> str:
    target = (f"migrate to {lifecycle.replacement}" if lifecycle.replacement is not None
              else f"{lifecycle.kind} has no replacement API; remove it")
    return f"{target} ({'; '.join(lifecycle.docs)})"


@rule(
    "api-not-removed",
    title="no object uses an API version its component no longer serves",
    area="apis",
    rule_class=RuleClass.CORRECTNESS,
    rationale=f"""An apiVersion that the cluster's Kubernetes (or the installed Karpenter or KEDA) no longer serves is
    refused on apply ("no matches for kind"), so nothing the object says takes effect. Removal releases and
    replacements come from the Kubernetes Deprecated API Migration Guide ({GUIDE}), Karpenter's upgrade guides
    (v1alpha5 Provisioner, Machine and AWSNodeTemplate are not served from v0.33.0; v1beta1 NodePool, NodeClaim and
    EC2NodeClass not from v1.1.0) and KEDA's v1-to-v2 migration guide (keda.k8s.io became keda.sh in 2.0), each
    entry sourced in data/api_lifecycle.yaml, and are compared with the versions the policy in force pins
    (cluster.yaml). Such an object is judged by this rule only: its fields follow an API the suite's schemas and
    rules do not describe.""",
    fix="Rewrite the object for the replacement API named in the message, following the migration guide linked.",
    sources=(GUIDE, "karpenter.sh/v1.0/upgrading/v1-migration", "karpenter.sh/v0.32/upgrading/v1beta1-migration",
             "keda.sh/docs/latest/migration", "src/gpu_policy/data/api_lifecycle.yaml"),
)
def api_not_removed(ctx: CheckContext) -> Iterator[Violation]:
    for status in _statuses(ctx):
        if not status.removed:
            continue
        life = status.lifecycle
        key = lifecycle_data().components[life.component][1]
        yield Violation(
            doc=status.doc,
            path=("apiVersion",),
            message=(f"{life.kind} is apiVersion {life.api_version}, removed in {status.component_label} "
                     f"{life.removed} (cluster runs {status.component_label} {status.running}, per "
                     f"{_pinned_by(ctx, key)}); {_migration(life)}"),
        )


@rule(
    "api-not-deprecated",
    title="no object uses a deprecated API version",
    area="apis",
    rule_class=RuleClass.CORRECTNESS,
    rationale=f"""A deprecated apiVersion is still served but is removed in a later release named by its component
    ({GUIDE}; Karpenter and KEDA upgrade guides; data/api_lifecycle.yaml): the manifest stops applying on the
    upgrade that removes it. A deprecated Karpenter or KEDA version is not judged by the other rules, whose schemas
    and semantics are those of the current version.""",
    fix="Move the object to the replacement API named in the message before upgrading.",
    sources=(GUIDE, "src/gpu_policy/data/api_lifecycle.yaml"),
    severity=Severity.WARNING,
)
def api_not_deprecated(ctx: CheckContext) -> Iterator[Violation]:
    for status in _statuses(ctx):
        if status.removed:
            continue
        life = status.lifecycle
        key = lifecycle_data().components[life.component][1]
        unchecked = "" if status.judged_elsewhere else "; not checked further: the suite describes only the current API"
        yield Violation(
            doc=status.doc,
            path=("apiVersion",),
            message=(f"{life.kind} is apiVersion {life.api_version}, deprecated since {status.component_label} "
                     f"{life.deprecated} and removed in {life.removed} (cluster runs {status.component_label} "
                     f"{status.running}, per "
                     f"{_pinned_by(ctx, key)}); {_migration(life)}{unchecked}"),
        )
