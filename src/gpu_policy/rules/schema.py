"""Schema rules: every object is valid against its schema (core OpenAPI, CRD structural schema, CRD CEL rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gpu_policy.errors import SchemaSourceError
from gpu_policy.rules.apis import hidden_ids, lifecycle_data
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.manifests import contains_placeholder, is_fill_in
from gpu_policy.rules.registry import RuleClass, Violation, rule

if TYPE_CHECKING:
    from gpu_policy.loading.document import Document

SCHEMA_NOTES_KEY = "schema-notes"


def _validator(ctx: CheckContext) -> Any:
    validator = ctx.options.get("schema_validator")
    if validator is None:
        raise SchemaSourceError("no schema validator is configured: schemas cannot be checked")
    return validator


def _issues(ctx: CheckContext) -> list[tuple[Document, Any]]:
    """Every schema issue of the documents the schema rules judge: not those at a removed API (`api-not-removed`
    judges them), and not a value that holds a template placeholder (`manifest-has-no-unrendered-variables`)."""
    def compute() -> list[tuple[Document, Any]]:
        validator = _validator(ctx)
        hidden = hidden_ids(ctx)
        return [(doc, issue) for doc in ctx.graph.documents if id(doc) not in hidden
                for issue in validator.validate(doc) if not _on_placeholder(doc, issue)]

    return ctx.memo("schema-issues", compute)


def _on_placeholder(doc: Document, issue: Any) -> bool:
    """Whether the issue is about a value (or key) that is an unrendered placeholder: `replicas: ${REPLICAS}` is not
    an integer only because it was not rendered."""
    if issue.kind == "missing-schema":
        return False
    value: Any = doc.obj
    for step in issue.path:
        if isinstance(step, str) and contains_placeholder(step):
            return True
        within_list = isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value)
        if not (within_list or (isinstance(value, dict) and step in value)):
            return False
        value = value[step]
    if issue.kind == "cel" and issue.reads is not None and isinstance(value, dict):
        # a CEL rule on an object judges only the fields it reads: a placeholder elsewhere in it (a role name, a
        # tag) does not make `amiFamily` and `amiSelectorTerms` disagree
        return any(contains_placeholder(value[name]) for name in issue.reads if name in value)
    return contains_placeholder(value) or (isinstance(value, str) and is_fill_in(tuple(issue.path), value))


def _of_kind(ctx: CheckContext, *kinds: str) -> Iterator[Violation]:
    for doc, issue in _issues(ctx):
        if issue.kind in kinds:
            yield Violation(doc=doc, message=issue.message, path=tuple(issue.path))


def _not_checked_reason(ctx: CheckContext, doc: Document, issue: Any) -> str | None:
    """Why a document without a schema is listed as not checked rather than failed; None when it fails.

    It fails when the group is one the suite knows (Kubernetes' own groups, every group of a loaded CRD: an unknown
    version or kind there is a typo or an API the suite's component version does not serve), or when the set is
    declared complete. Otherwise the kind belongs to a product whose CRD is not bundled (EKS Auto Mode's NodeClass,
    the GPU Operator, ...), normal in a partial set."""
    if ctx.options.get("ignore_missing_schemas"):
        return issue.message
    data = lifecycle_data()
    served_by = data.served_not_bundled.get((doc.api_version, doc.kind))
    if served_by is not None:
        return (f"no schema for {doc.kind} in {doc.api_version} ({served_by} serves it; its CRD is not bundled): "
                "not checked")
    if ctx.complete or _validator(ctx).covers_group(doc.group):
        return None
    product = next((name for group, name in data.unbundled_groups.items()
                    if doc.group == group or doc.group.endswith(f".{group}")), None)
    if product is not None:
        return f"no schema for {doc.kind} in {doc.api_version} ({product}; not bundled): not checked"
    return (f"no schema for {doc.kind} in {doc.api_version}: no CRD for {doc.group or 'the core group'} among the "
            "CRD paths; not checked (give its CRD with --crd-dir to check it)")


@rule(
    "schema-valid",
    title="every manifest is valid against its schema",
    area="schema",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The API server rejects an object that does not match its OpenAPI schema; with
    `kubectl apply --validate=strict` unknown fields are errors too, and for custom resources the API server prunes
    unknown fields silently, so a misspelt field is a setting that never takes effect. Core kinds use the
    Kubernetes version of policies/cluster.yaml; custom resources use the CRD's structural schema.""",
    fix="Correct the field at the reported path; `kubectl explain KIND.FIELD` shows what it accepts.",
    sources=("kubernetes apiextensions-apiserver pkg/apiserver/schema (structural schema, pruning)",),
)
def schema_valid(ctx: CheckContext) -> Iterator[Violation]:
    yield from _of_kind(ctx, "invalid", "unknown-field")


@rule(
    "crd-cel-rules-hold",
    title="every custom resource satisfies its CRD's validation rules",
    area="schema",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""CRDs carry CEL rules (`x-kubernetes-validations`) that the API server enforces on admission;
    e.g. Karpenter refuses a budget schedule without a duration and requirement keys in restricted domains.""",
    fix="Change the object so the quoted rule holds.",
    sources=("kubernetes apiextensions-apiserver pkg/apiserver/schema/cel",),
)
def crd_cel_rules_hold(ctx: CheckContext) -> Iterator[Violation]:
    yield from _of_kind(ctx, "cel")


@rule(
    "schema-known",
    title="every manifest has a schema to be checked against",
    area="schema",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""An object whose kind has no known schema cannot be checked: it may be a typo in apiVersion or
    kind, or a product whose CRD is not among the CRD paths. It fails when its API group is one the suite knows
    (Kubernetes' own groups; karpenter.sh, karpenter.k8s.aws, keda.sh, monitoring.coreos.com and every other group
    of a loaded CRD), where an unknown version or kind is a mistake, and when the set is declared complete. In a
    partial set, a kind of another group (EKS Auto Mode's eks.amazonaws.com NodeClass, an operator the suite does not
    bundle) is listed as not checked: another team's product is not a defect of the manifests. Objects at a removed
    API are judged by `api-not-removed` instead. `--ignore-missing-schemas` lists every schema-less object as not
    checked.""",
    fix="""Point --crd-dir / GPU_POLICY_CRD_PATH at the CRD's YAML, run `gpu-policy schemas fetch`, correct the
    apiVersion/kind, or pass --ignore-missing-schemas to list it as not checked.""",
)
def schema_known(ctx: CheckContext) -> Iterator[Violation]:
    for doc, issue in _issues(ctx):
        if issue.kind == "missing-schema" and _not_checked_reason(ctx, doc, issue) is None:
            yield Violation(doc=doc, message=issue.message, path=tuple(issue.path))


def schema_notes(ctx: CheckContext) -> list[tuple[Document, Any]]:
    """Rules that were not evaluated (transition rules, unsupported CEL) and skipped schemas: for the report."""
    notes: list[tuple[Document, Any]] = []
    for doc, issue in _issues(ctx):
        if issue.kind in ("cel-not-evaluated", "transition-rule-skipped"):
            notes.append((doc, issue))
        elif issue.kind == "missing-schema":
            reason = _not_checked_reason(ctx, doc, issue)
            if reason is not None:
                notes.append((doc, dataclasses.replace(issue, message=reason)))
    return notes
