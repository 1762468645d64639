"""Rules about the manifest set itself: readable, identifiable, unique, and every document accounted for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from gpu_policy.loading.document import FieldPath
from gpu_policy.loading.loader import LOAD_RULE, SHAPE_RULE
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.exemptions import exemption_index
from gpu_policy.rules.registry import RuleClass, Violation, rule


def _load_findings(ctx: CheckContext, rule_id: str) -> Iterator[Violation]:
    for finding in ctx.load.findings if ctx.load is not None else []:
        if finding.rule_id == rule_id:
            yield Violation(doc=None, message=finding.message, resource=finding.resource, file=finding.file,
                            line=finding.line)


@rule(
    LOAD_RULE,
    title="every manifest file is valid YAML",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A document that cannot be decoded is never applied and never checked. Decoding follows
    sigs.k8s.io/yaml: duplicate keys are errors, only standard tags exist, alias bombs are refused.""",
    fix="Correct the YAML at the reported line.",
    sources=("kubernetes-sigs/yaml yaml.go (YAMLToJSON, strict duplicate keys)",),
)
def manifest_is_readable(ctx: CheckContext) -> Iterator[Violation]:
    yield from _load_findings(ctx, LOAD_RULE)


@rule(
    SHAPE_RULE,
    title="every document is a Kubernetes object with apiVersion, kind and name",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="The API server rejects an object without apiVersion, kind and metadata.name.",
    fix="Give the document apiVersion, kind and metadata.name (or remove it).",
)
def manifest_has_identity(ctx: CheckContext) -> Iterator[Violation]:
    yield from _load_findings(ctx, SHAPE_RULE)


@rule(
    "object-is-unique",
    title="no two manifests declare the same object",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Two documents with the same kind, namespace and name are one object in the cluster: the one
    applied last silently replaces the other, so what is reviewed is not what runs.""",
    fix="Merge the two documents into one, or rename one of them.",
)
def object_is_unique(ctx: CheckContext) -> Iterator[Violation]:
    for first, second in ctx.graph.duplicates:
        yield Violation(
            doc=second,
            message=f"{second.ref} is declared again; first declared at {first.source}:{first.line}",
        )


@rule(
    "exemptions-are-valid",
    title="every exemption has a reason and has not expired",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="An exemption waives a rule; without a reason, or past its expiry, it hides a real problem.",
    fix="Give the exemption `<rule-id>: <reason>` (and renew or remove it when it expires).",
)
def exemptions_are_valid(ctx: CheckContext) -> Iterator[Violation]:
    for problem in exemption_index(ctx).problems:
        yield Violation(doc=None, message=problem.message, resource=problem.resource, file=problem.file,
                        line=problem.line or None)


_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_SCRIPT_KEYS = frozenset({"userData", "command", "args", "script", "env", "data", "stringData", "binaryData"})
"""Fields whose text is a script, a container's own environment or a file body: `${VAR}` there is the program's
business (a shell expands it at run time), not the manifest's."""


def _unrendered(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _SCRIPT_KEYS:
                yield from _unrendered(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unrendered(item, (*path, i))
    elif isinstance(value, str):
        found = _VARIABLE.search(value)
        if found:
            yield path, found.group(0)


@rule(
    "manifest-has-no-unrendered-variables",
    title="no manifest carries an unsubstituted ${VARIABLE}",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""kubectl, kustomize and the API server never substitute shell variables: `${CLUSTER_NAME}` in an
    EC2NodeClass role or discovery tag is sent literally, Karpenter looks for a role and subnets tagged
    `${CLUSTER_NAME}`, and the node class never becomes Ready. A manifest that needs envsubst must be checked
    after rendering. Scripts (userData, command, args), container env and ConfigMap/Secret bodies are not
    judged: a shell expands `${VAR}` there at run time.""",
    fix="Render the manifests (envsubst, helm, kustomize) before applying and checking them, or write the value.",
    sources=("karpenter.sh/docs/concepts/nodeclasses (role, subnetSelectorTerms)",),
)
def manifest_has_no_unrendered_variables(ctx: CheckContext) -> Iterator[Violation]:
    for doc in ctx.graph.documents:
        for path, variable in _unrendered(doc.obj, ()):
            message = f"{variable} is not substituted: the cluster receives it as text"
            yield Violation(doc=doc, path=path, message=message)
