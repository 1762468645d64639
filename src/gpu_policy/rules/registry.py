"""Rules as data plus one function: id, title, rationale, fix and sources sit beside the check itself.

A rule's check yields `Violation`s; the registry turns them into `Finding`s with the rule's why and fix, so every
failure says which resource, which file and line, what is wrong, why it matters and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from gpu_policy.findings import Severity
from gpu_policy.loading.document import Document, FieldPath

if TYPE_CHECKING:
    from gpu_policy.rules.context import CheckContext

RULE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class RuleClass(StrEnum):
    """What a finding means to someone who did not write the policy.

    CORRECTNESS: wrong on any cluster — schema, API semantics, how KEDA, the HPA, Karpenter, Prometheus and the DCGM
    exporter behave, AWS facts (the 2-minute spot notice). POLICY: one organisation's choice (names, allow-lists,
    time zones, thresholds, prices); such a rule judges only what the policy in force configures.
    """

    CORRECTNESS = "correctness"
    POLICY = "policy"


@dataclass(frozen=True)
class Violation:
    doc: Document | None
    message: str
    path: FieldPath = ()
    fix: str | None = None
    """Overrides the rule's generic fix when the check knows the exact change."""
    details: tuple[str, ...] = ()
    exemptible_by: tuple[Document, ...] = ()
    """Other objects whose exemption annotation also covers this violation (e.g. the workload of a PDB)."""
    resource: str | None = None
    file: str | None = None
    line: int | None = None
    severity: Severity | None = None
    """Overrides the rule's severity when the verdict depends on the run (e.g. an error only in a complete set)."""


CheckFunction = Callable[["CheckContext"], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    """The sentence an operator reads: what must hold."""
    area: str
    rule_class: RuleClass
    rationale: str
    fix: str
    check: CheckFunction
    sources: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR
    tags: tuple[str, ...] = field(default=())


RULES: dict[str, Rule] = {}


def rule(
    id: str,
    *,
    title: str,
    area: str,
    rule_class: RuleClass,
    rationale: str,
    fix: str,
    sources: Iterable[str] = (),
    severity: Severity = Severity.ERROR,
    tags: Iterable[str] = (),
) -> Callable[[CheckFunction], CheckFunction]:
    if not RULE_ID.match(id):
        raise ValueError(f"rule id {id!r} must be kebab-case")

    def register(check: CheckFunction) -> CheckFunction:
        if id in RULES and RULES[id].check is not check:
            raise ValueError(f"rule id {id!r} registered twice")
        RULES[id] = Rule(id=id, title=title, area=area, rule_class=rule_class, rationale=" ".join(rationale.split()),
                         fix=" ".join(fix.split()), check=check, sources=tuple(sources), severity=severity,
                         tags=tuple(tags))
        return check

    return register


def all_rules() -> dict[str, Rule]:
    from gpu_policy.rules import load_rule_modules

    load_rule_modules()
    return RULES
