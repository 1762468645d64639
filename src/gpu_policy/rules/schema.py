"""Schema rules: every object is valid against its schema (core OpenAPI, CRD structural schema, CRD CEL rules)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gpu_policy.errors import SchemaSourceError
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

if TYPE_CHECKING:
    from gpu_policy.loading.document import Document

SCHEMA_NOTES_KEY = "schema-notes"


def _issues(ctx: CheckContext) -> list[tuple[Document, Any]]:
    def compute() -> list[tuple[Document, Any]]:
        validator = ctx.options.get("schema_validator")
        if validator is None:
            raise SchemaSourceError("no schema validator is configured: schemas cannot be checked")
        return [(doc, issue) for doc in ctx.graph.documents for issue in validator.validate(doc)]

    return ctx.memo("schema-issues", compute)


def _of_kind(ctx: CheckContext, *kinds: str) -> Iterator[Violation]:
    for doc, issue in _issues(ctx):
        if issue.kind in kinds:
            yield Violation(doc=doc, message=issue.message, path=tuple(issue.path))


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
    kind, or a CRD that is not installed. It fails unless `--ignore-missing-schemas` is given.""",
    fix="""Point --crd-dir / GPU_POLICY_CRD_PATH at the CRD's YAML, run `gpu-policy schemas fetch`, correct the
    apiVersion/kind, or pass --ignore-missing-schemas to list it as not checked.""",
)
def schema_known(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.options.get("ignore_missing_schemas"):
        return
    yield from _of_kind(ctx, "missing-schema")


def schema_notes(ctx: CheckContext) -> list[tuple[Document, Any]]:
    """Rules that were not evaluated (transition rules, unsupported CEL) and skipped schemas: for the report."""
    return [(doc, issue) for doc, issue in _issues(ctx)
            if issue.kind in ("cel-not-evaluated", "transition-rule-skipped")
            or (issue.kind == "missing-schema" and ctx.options.get("ignore_missing_schemas"))]
