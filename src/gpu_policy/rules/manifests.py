"""Rules about the manifest set itself: readable, identifiable, unique, and every document accounted for."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

from gpu_policy.findings import Severity
from gpu_policy.loading.document import Document, FieldPath, format_path
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
    applied last silently replaces the other, so what is reviewed is not what runs. Within one file (or one
    rendered stream) that is always so. Across files of a set that is not declared complete, two different
    declarations may as well be alternatives that are never applied together (a repository's v1 and Auto Mode
    variants of one example): they are listed as not checked, and judged only with --complete. Identical
    declarations in two files change nothing when both are applied and are not reported.""",
    fix="Merge the two documents into one, or rename one of them.",
)
def object_is_unique(ctx: CheckContext) -> Iterator[Violation]:
    for first, second in ctx.graph.duplicates:
        message = f"{second.ref} is declared again; first declared at {first.source}:{first.line}"
        if first.source == second.source:
            yield Violation(doc=second, message=message)
        elif first.obj != second.obj:
            yield from ctx.missing(second, (), f"{message} (different declarations in two files: alternatives, "
                                                "or the one applied last replaces the other)")


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
                        line=problem.line or None, fix=problem.fix)


_RENDERER_PLACEHOLDERS = (
    re.compile(r"\$\{(?!\d+\})[^{}]+\}"),  # ${VAR}, ${var.x}, ${f(a, b)} (envsubst, shells, templatefile); not ${1}
    re.compile(r"%\{.*?\}"),  # %{ if x } (Terraform template directives)
    re.compile(r"<<[A-Za-z_][A-Za-z0-9_]*>>"),  # <<CLUSTER_NAME>> (replaced with sed, as karpenter-blueprints do)
)
_TEMPLATE_PLACEHOLDERS = (
    re.compile(r"\$(?=[A-Z0-9_]*[A-Z])[A-Z_][A-Z0-9_]*\b"),  # $VAR (envsubst), upper case as environment names are
    re.compile(r"\{\{.*?\}\}"),  # {{ .x }} (Helm, Go templates)
)
"""What a renderer would have replaced. Lower-case `$var` is left alone: Grafana and Prometheus template variables
look like that."""
_GO_TEMPLATE_KINDS = frozenset({"PrometheusRule", "AlertmanagerConfig", "Alertmanager", "ThanosRuler"})
"""Kinds whose text fields are Go templates their own component expands (`{{ $labels.pod }}` in an alert
annotation): only `${VAR}` and `%{ }` there are a renderer's placeholders."""
_SCRIPT_KEYS = frozenset({"userData", "command", "args", "script", "env", "data", "stringData", "binaryData",
                          "serveConfigV2", "runtimeEnvYAML", "entrypoint"})
"""Fields whose text is a script, a container's own environment or a file body: `${VAR}` there is the program's
business (a shell expands it at run time), not the manifest's. KubeRay's `serveConfigV2` (RayService) and
`runtimeEnvYAML` (RayJob) are Ray's own config bodies, whose runtime_env `env_vars` Ray expands with
`os.path.expandvars` (`LD_LIBRARY_PATH: /opt/lib:$LD_LIBRARY_PATH`; ray-project/ray#36187), and a RayJob's
`entrypoint` is a shell command."""


_FILL_IN = re.compile(r"<[A-Za-z][\w.-]*>|^[A-Z][A-Z0-9]*(?:[ _][A-Z][A-Z0-9]*){2,}$")
"""A value that a person or an operator is to fill in: `<cluster-name>-exporter`, `FILLED BY THE OPERATOR`, and the
same words joined by underscores (`FILLED_BY_THE_OPERATOR`, as the NVIDIA GPU operator's
assets/state-operator-metrics/*.yaml write it; the operator sets the namespace itself). Judged only in identifier
fields (a name, a namespace, an image), which can hold neither spaces, angle brackets, upper case nor underscores."""
_IDENTIFIER_PATHS = frozenset({("metadata", "name"), ("metadata", "namespace")})


def is_fill_in(path: FieldPath, value: str) -> bool:
    """Whether `value` at `path` is a whole-value fill-in marker in an identifier field."""
    return (path in _IDENTIFIER_PATHS or (bool(path) and path[-1] == "image")) and bool(_FILL_IN.search(value))


def placeholders_in(text: str, *, go_templates: bool = True) -> list[str]:
    """Every unrendered placeholder in one string, in order; `go_templates=False` for text that its own component
    expands as a Go template (only `${VAR}` and `%{ }` count there)."""
    if "$" not in text and "%" not in text and "<" not in text and "{" not in text:
        return []  # every pattern needs one of these characters: most values hold none (a 20k set: 800k strings)
    patterns = _RENDERER_PLACEHOLDERS + (_TEMPLATE_PLACEHOLDERS if go_templates else ())
    found = sorted((m.start(), m.group(0)) for pattern in patterns for m in pattern.finditer(text))
    return [value for _, value in found]


def contains_placeholder(value: Any) -> bool:
    """Whether a scalar, a key or anything inside a mapping/list holds a placeholder (schema findings on such a value
    are left to `manifest-has-no-unrendered-variables`)."""
    if isinstance(value, str):
        return bool(placeholders_in(value))
    if isinstance(value, dict):
        return any(contains_placeholder(k) or contains_placeholder(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_placeholder(item) for item in value)
    return False


def _may_hold(text: str) -> bool:
    """Whether `placeholders_in` can find anything: every pattern needs one of these characters."""
    return "$" in text or "%" in text or "<" in text or "{" in text


_FILL_IN_KEYS = frozenset({"name", "namespace", "image"})
"""The last key of every path `is_fill_in` judges."""


def _unrendered(value: Any, path: FieldPath, go_templates: bool) -> list[tuple[FieldPath, str]]:
    """What `_unrendered_walk` yields, in the same order, without a generator per value: strings that can hold no
    placeholder and are no identifier field are passed over (a 20k set: 600k values)."""
    out: list[tuple[FieldPath, str]] = []
    _collect(value, path, go_templates, out)
    return out


def _collect(value: Any, path: FieldPath, go_templates: bool, out: list[tuple[FieldPath, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _may_hold(key):
                out.extend(((*path, key), p) for p in placeholders_in(key, go_templates=go_templates))
            if key in _SCRIPT_KEYS:
                continue
            if isinstance(item, str):
                if _may_hold(item) or key in _FILL_IN_KEYS:
                    out.extend(_unrendered_walk(item, (*path, key), go_templates))
            elif isinstance(item, (dict, list)):
                _collect(item, (*path, key), go_templates, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                if _may_hold(item):
                    out.extend(_unrendered_walk(item, (*path, i), go_templates))
            elif isinstance(item, (dict, list)):
                _collect(item, (*path, i), go_templates, out)
    elif isinstance(value, str):
        out.extend(_unrendered_walk(value, path, go_templates))


def _unrendered_walk(value: Any, path: FieldPath, go_templates: bool) -> Iterator[tuple[FieldPath, str]]:
    """The placeholders (and whole-value fill-ins) of every string in `value`, with their paths, in order."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                for placeholder in placeholders_in(key, go_templates=go_templates):
                    yield (*path, key), placeholder
            if key not in _SCRIPT_KEYS:
                yield from _unrendered_walk(item, (*path, key), go_templates)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unrendered_walk(item, (*path, i), go_templates)
    elif isinstance(value, str):
        if is_fill_in(path, value):
            yield path, value
            return
        for placeholder in placeholders_in(value, go_templates=go_templates):
            yield path, placeholder


def _secret_data_placeholders(data: dict[Any, Any]) -> Iterator[tuple[FieldPath, str]]:
    """Placeholders in a v1 Secret's `data`: its values are base64 (core/v1 Secret.data, []byte), which has no `$`,
    `{`, `}`, `%`, `<` or `>`, so a placeholder there is a template, never a script a program expands later
    (`hf-token: $HUGGING_FACE_HUB_TOKEN`, awslabs/ai-on-eks)."""
    for key, value in data.items():
        if isinstance(key, str) and isinstance(value, str):
            for placeholder in placeholders_in(value):
                yield ("data", key), placeholder


@rule(
    "manifest-has-no-unrendered-variables",
    title="no manifest carries an unrendered template placeholder",
    area="manifests",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""kubectl, kustomize and the API server never substitute variables or render templates:
    `${CLUSTER_NAME}` in an EC2NodeClass role or discovery tag is sent literally, Karpenter looks for a role and
    subnets tagged `${CLUSTER_NAME}`, and the node class never becomes Ready. Such a file is a template (envsubst,
    a shell heredoc, Terraform `templatefile`, Helm): it must be checked after rendering. One finding per file lists
    its placeholders (`${VAR}`, `$VAR`, `{{ .x }}`, `%{ }`, `<<VAR>>` markers replaced with sed, and a name,
    namespace or image that reads `<value>` or `FILLED BY THE OPERATOR`, as operators' asset templates write it); it
    is a warning, since a template in a
    repository is normal, and an error when the set is declared complete (what is applied must be rendered). Schema
    findings on a placeholder value are not reported besides it. Scripts (userData, command, args), container env,
    ConfigMap bodies, Secret stringData and Ray's config bodies (RayService serveConfigV2, RayJob runtimeEnvYAML and
    entrypoint) are not judged: a shell or Ray expands `${VAR}` there at run time; nor are the Go templates of alert
    annotations, which Prometheus and Alertmanager expand. A Secret's `data` is judged: base64 holds no placeholder
    characters.""",
    fix="""Render the file (envsubst, helm template, terraform, or `--env KEY=VALUE`) and check the result, or write
    the values.""",
    sources=("karpenter.sh/docs/concepts/nodeclasses (role, subnetSelectorTerms)",
             "gnu.org/software/gettext/manual/html_node/envsubst-Invocation.html",
             "developer.hashicorp.com/terraform/language/functions/templatefile",
             "github.com/ray-project/ray/pull/36187 (runtime_env env_vars expanded with os.path.expandvars)"),
    severity=Severity.WARNING,
)
def manifest_has_no_unrendered_variables(ctx: CheckContext) -> Iterator[Violation]:
    by_file: dict[str, list[tuple[Document, FieldPath, str]]] = {}
    for doc in ctx.graph.documents:
        go_templates = doc.kind not in _GO_TEMPLATE_KINDS
        found_in: Iterable[tuple[FieldPath, str]] = _unrendered(doc.obj, (), go_templates)
        if doc.kind == "Secret" and doc.api_version == "v1" and isinstance(doc.obj.get("data"), dict):
            found_in = itertools.chain(found_in, _secret_data_placeholders(doc.obj["data"]))
        for path, placeholder in found_in:
            by_file.setdefault(doc.source, []).append((doc, path, placeholder))
    for found in by_file.values():
        first_doc, first_path, _ = found[0]
        counts: dict[str, int] = {}
        where: dict[str, str] = {}
        for doc, path, placeholder in found:
            counts[placeholder] = counts.get(placeholder, 0) + 1
            where.setdefault(placeholder, f"{doc.ref} {format_path(path)}")
        listed = [f"{p}{f' (x{n})' if n > 1 else ''} at {where[p]}" for p, n in counts.items()]
        shown = "; ".join(listed[:_LISTED]) + (f"; and {len(listed) - _LISTED} more" if len(listed) > _LISTED else "")
        values = len({(id(doc), path) for doc, path, _ in found})
        yield Violation(
            doc=first_doc,
            path=first_path,
            severity=Severity.ERROR if ctx.complete else None,
            message=(f"{_count(len(found), 'unrendered placeholder')} in {_count(values, 'value')} of this file, "
                     f"sent to the cluster as text: {shown}; the file is a template, check it after rendering"),
        )


_LISTED = 12


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
