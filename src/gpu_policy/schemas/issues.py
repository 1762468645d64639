"""What schema validation reports: one `SchemaIssue` per problem, with the path of the offending field."""

from __future__ import annotations

from dataclasses import dataclass

INVALID = "invalid"
UNKNOWN_FIELD = "unknown-field"
CEL = "cel"
CEL_NOT_EVALUATED = "cel-not-evaluated"
TRANSITION_RULE_SKIPPED = "transition-rule-skipped"
MISSING_SCHEMA = "missing-schema"

ISSUE_KINDS = (INVALID, UNKNOWN_FIELD, CEL, CEL_NOT_EVALUATED, TRANSITION_RULE_SKIPPED, MISSING_SCHEMA)
NOTE_KINDS = frozenset({CEL_NOT_EVALUATED, TRANSITION_RULE_SKIPPED})
"""Kinds that say what was NOT checked; they are never failures by themselves."""


@dataclass(frozen=True)
class SchemaIssue:
    kind: str
    """One of ISSUE_KINDS."""
    path: tuple[str | int, ...]
    """Field path in the object, e.g. ("spec", "template", "spec", "requirements", 0, "key")."""
    message: str
    """Readable, with the constraint that failed; for CEL the rule's message and the rule expression."""
    reads: tuple[str, ...] | None = None
    """For CEL: the fields of `self` the rule reads (`self.amiFamily` -> "amiFamily"), relative to `path`; None
    when it reads `self` as a whole or this is not a CEL issue."""
