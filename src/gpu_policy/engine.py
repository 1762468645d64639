"""One run, one direction: files -> documents -> indexed graph -> checks -> findings.

The engine is what `gpu-policy check`, the pytest plugin and the tests share; steps only read its result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_policy.errors import GpuPolicyError
from gpu_policy.findings import Finding
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.budget import PlacementOverLimit
from gpu_policy.live.state import unmet_requirement
from gpu_policy.loading.document import Document, format_path
from gpu_policy.loading.loader import LOAD_RULE, LoadResult, NotChecked, load_manifests
from gpu_policy.policy.loader import REFERENCE_PROFILE, PolicySet, RepoConfig, discover_config
from gpu_policy.reporting.safety import Redactor, escape_control, safe_finding
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.rules.apis import HIDDEN_OPTION as API_HIDDEN_OPTION
from gpu_policy.rules.apis import removed_documents
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.exemptions import Exemption, exemption_index
from gpu_policy.rules.registry import Rule, Violation, all_rules
from gpu_policy.rules.schema import _issues as schema_issues  # the memoised validation of the run
from gpu_policy.rules.schema import schema_notes
from gpu_policy.schemas.validator import ManifestValidator, default_crd_paths


def parse_jobs(text: str) -> int:
    """`--jobs N` of the command and the pytest plugin: a number of processes, 0 (automatic) or more."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (0: automatic, 1: serial)")
    return value


@dataclass
class RunOptions:
    paths: list[str]
    policies_dir: Path | None = None
    crd_paths: list[Path] = field(default_factory=list)
    ignore_missing_schemas: bool = False
    use_crd_cache: bool = True
    today: dt.date = field(default_factory=dt.date.today)
    report_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    complete: bool | None = None
    """The set is the whole system (`--complete`); None: as the configuration says (the reference set is)."""
    namespace: str | None = None
    """Where namespaced objects without a namespace land (`--namespace`); None: the configuration's, else default."""
    env: dict[str, str] | None = None
    exclude: list[str] = field(default_factory=list)
    allow_remote_bases: bool = False
    config_path: Path | None = None
    """A `.gpu-policy.yaml` or `gpu-policy/` folder; None: found from the working directory up."""
    profile: str | None = None
    """`reference` for the bundled reference organisation's policies."""
    only: list[str] = field(default_factory=list)
    """Rule ids to run (empty: all); tags are resolved to ids by the caller (`suite.selection`)."""
    skip: list[str] = field(default_factory=list)
    """Rule ids not to run."""
    live: bool = False
    """`--live`: read the cluster. Without `paths` the static rules judge its objects; with `paths` they judge the
    manifests and the live rules compare them with the cluster (dry run, drift). Runtime rules read `ctx.live`."""
    kubeconfig: Path | None = None
    """`--kubeconfig` (None: $KUBECONFIG, then ~/.kube/config)."""
    kube_context: str | None = None
    """`--context` (None: the kubeconfig's current context)."""
    live_namespaces: list[str] = field(default_factory=list)
    """`--live-namespace`: read namespaced objects of these namespaces only (empty: all)."""
    prometheus_url: str | None = None
    """`--prometheus URL`, for live Prometheus checks (`ctx.live.prometheus_url`)."""
    jobs: int = 1
    """`--jobs`: processes that decode the manifests' YAML (1: this one; 0: every core when the set is large,
    loading/parallel.py). Findings are the same whatever the number."""


@dataclass
class UsedExemption:
    exemption: Exemption
    finding: Finding


@dataclass
class RunResult:
    options: RunOptions
    load: LoadResult
    graph: ResourceGraph
    policy: PolicySet
    context: CheckContext
    findings: list[Finding]
    exempted: list[UsedExemption]
    rules: dict[str, Rule]

    def findings_for(self, rule_id: str) -> list[Finding]:
        return [f for f in self.findings if f.rule_id == rule_id]

    not_checked: list[NotChecked] = field(default_factory=list)
    """Documents nothing was checked on: unreadable ones, and (with --ignore-missing-schemas) schema-less ones."""
    not_evaluated: list[NotChecked] = field(default_factory=list)
    """Schema rules that could not be judged offline (transition rules, unsupported CEL): never counted as passed."""
    environment_errors: list[str] = field(default_factory=list)
    """What kept rules from giving a verdict (a missing tool or schema source); each is also a finding."""
    internal_errors: list[InternalError] = field(default_factory=list)
    """Rules that crashed: a bug of the tool, never a finding about the input (the CLI exits 3)."""
    withheld: list[Document] = field(default_factory=list)
    """Objects with schema type errors: judged by the schema rules only (listed as not checked)."""


@dataclass(frozen=True)
class InternalError:
    """An uncaught exception inside a rule or a step: its rule (or scenario), the error and the traceback."""

    where: str
    error: str
    traceback: str = ""


def _violation_to_finding(rule: Rule, v: Violation, redact: Redactor | None = None) -> Finding:
    doc = v.doc
    finding = Finding(
        rule_id=rule.id,
        resource=v.resource or (doc.ref if doc is not None else "<set>"),
        message=v.message,
        file=v.file or (doc.source if doc is not None else None),
        line=v.line or (doc.line_of(v.path) if doc is not None else None),
        why=rule.rationale,
        fix=v.fix or rule.fix,
        severity=v.severity or rule.severity,
        rule_class=rule.rule_class.value,
        path=format_path(v.path),
        details=v.details,
    )
    return safe_finding(finding, redact or Redactor(), doc, v.path)


def _checked(rule: Rule, ctx: CheckContext, environment_errors: list[str],
             internal_errors: list[InternalError] | None = None,
             over_limit: dict[str, PlacementOverLimit] | None = None) -> list[Violation]:
    """A check that breaks must fail loudly without hiding what every other rule found. An environment error
    (promtool missing, schemas unreadable) is also recorded, so that the CLI can exit 2 instead of 1. A crash is
    a bug of the tool, not a finding about the input: it is recorded as an internal error (the CLI exits 3).
    A rule that would judge placement past `Limits.max_placement_pairs` is recorded in `over_limit`."""
    try:
        return list(rule.check(ctx))
    except PlacementOverLimit as exc:
        if over_limit is None:
            raise
        over_limit[rule.id] = exc
        return []
    except GpuPolicyError as exc:
        if str(exc) not in environment_errors:
            environment_errors.append(str(exc))
        return [Violation(doc=None, message=f"could not be checked: {exc}", resource="<manifest set>")]
    except Exception as exc:
        if internal_errors is None:
            raise
        internal_errors.append(InternalError(f"rule {rule.id}", f"{type(exc).__name__}: {exc}",
                                             traceback.format_exc()))
        return []


FULL_SET_RULES = frozenset({"manifest-is-readable", "manifest-has-identity", "object-is-unique"})
"""Rules (besides area "schema") that judge every object, even one with schema type errors."""


def _placement_limit_finding(graph: ResourceGraph, over_limit: dict[str, PlacementOverLimit],
                             rules: dict[str, Rule]) -> Finding:
    """One finding for the set (at its first NodePool) naming every rule that was not evaluated."""
    first = next(iter(graph.of_kind("NodePool")), None)
    exc = next(iter(over_limit.values()))
    load_rule = rules[LOAD_RULE]
    return Finding(
        rule_id=LOAD_RULE, resource="<placement>", file=first.source if first is not None else None,
        line=first.line if first is not None else None,
        message=f"{exc}; not evaluated: {', '.join(sorted(over_limit))}",
        why="Placement (which NodePool and instance type can run each pod template) is judged per pool and pod "
            "template; past the limit it would take minutes and gigabytes, so those rules gave no verdict.",
        fix="Check the set in parts (one team's workloads with the NodePools they use), or fewer NodePools per "
            "set.",
        severity=load_rule.severity, rule_class=load_rule.rule_class.value,
        details=tuple(f"{rule_id}: not evaluated" for rule_id in sorted(over_limit)),
    )


def _type_error_documents(ctx: CheckContext) -> list[Document]:
    """Objects with a field of the wrong type (the schema-valid rule reports each). Any other rule would read
    that field as what it is not; they are withheld from every rule but the schema and identity rules. The
    schema issues are the same memo the schema rules read, so validation runs once per run."""
    try:
        issues = schema_issues(ctx)
    except GpuPolicyError:
        return []  # the schema rules report the missing validator
    seen: dict[int, Document] = {}
    for doc, issue in issues:
        if issue.kind == "invalid" and str(issue.message).startswith("must be of type"):
            seen.setdefault(id(doc), doc)
    return list(seen.values())


def select_rules(rules: dict[str, Rule], options: RunOptions, rule_ids: set[str] | None) -> list[Rule]:
    only, skip = set(options.only), set(options.skip)
    return [r for r in rules.values()
            if (rule_ids is None or r.id in rule_ids) and (not only or r.id in only) and r.id not in skip]


@dataclass(frozen=True)
class Settings:
    """The policy in force and the run options a repository's configuration may set, resolved once."""

    policy: PolicySet
    complete: bool
    namespace: str
    exclude: list[str]
    config: RepoConfig | None


def resolve_settings(options: RunOptions) -> Settings:
    """Command line first, then the repository's configuration, then the defaults (see policy/loader.py)."""
    config_path = options.config_path
    reference_set = [str(reference_manifests_dir())] == options.paths
    if config_path is None and not options.policies_dir and options.profile is None and not reference_set:
        config_path = discover_config(Path.cwd())
    config = RepoConfig.read(config_path) if config_path is not None else None
    if options.policies_dir is not None:
        policy = PolicySet.load(options.policies_dir)
    elif options.profile == REFERENCE_PROFILE or (reference_set and options.profile is None and config is None):
        policy = PolicySet.load(None)
    elif options.profile is not None:
        raise GpuPolicyError(f"unknown profile {options.profile!r} (known: {REFERENCE_PROFILE})")
    elif config is not None:
        policy = PolicySet.from_config(config)
    else:
        policy = PolicySet.defaults()
    complete = options.complete
    if complete is None:
        complete = bool(config.complete) if config is not None and config.complete is not None else reference_set
    namespace = options.namespace or (config.namespace if config is not None else None) or "default"
    exclude = [*(config.exclude if config is not None else ()), *options.exclude]
    return Settings(policy=policy, complete=complete, namespace=namespace, exclude=exclude, config=config)


def build_context(options: RunOptions) -> tuple[LoadResult, ResourceGraph, PolicySet, CheckContext]:
    settings = resolve_settings(options)
    policy = settings.policy
    live = None
    if options.live:  # imported here: the kubernetes client costs start-up time a static run does not pay
        from gpu_policy.live.run import read_cluster

        live = read_cluster(options, settings.namespace)
    if live is not None and not options.paths:
        load = live.load.result  # the cluster's objects are the set the static rules judge
    else:
        load = load_manifests(options.paths, exclude=settings.exclude, env=options.env,
                              allow_remote_bases=options.allow_remote_bases, jobs=options.jobs)
    # the cluster's own CRDs first: they shadow the pinned ones
    crd_folder: contextlib.AbstractContextManager[list[Path]] = (
        live.crd_folder() if live is not None else contextlib.nullcontext([]))
    with crd_folder as cluster_crds:
        validator = ManifestValidator(
            policy.cluster["kubernetesVersion"], [*cluster_crds, *(options.crd_paths or default_crd_paths())],
            use_cache=options.use_crd_cache,
        )
    graph = ResourceGraph(load.documents, validator.scope_of, default_namespace=settings.namespace)
    # Objects at a removed API are judged by api-not-removed only (rules/apis.py): the other rules read a graph
    # without them, and the api rules find them in the `api_hidden_documents` option.
    hidden = removed_documents(graph.documents, policy)
    hidden_docs = [doc for doc in graph.documents if id(doc) in hidden]
    if hidden:
        graph = ResourceGraph([doc for doc in graph.documents if id(doc) not in hidden], validator.scope_of,
                              default_namespace=settings.namespace)
    ctx = CheckContext(
        graph=graph, policy=policy, load=load, complete=settings.complete,
        options={
            "ignore_missing_schemas": options.ignore_missing_schemas,
            "schema_validator": validator,
            "report_dir": options.report_dir,
            "today": options.today,
            API_HIDDEN_OPTION: hidden_docs,
            **options.extra,
        },
        live=live.state if live is not None else None,
    )
    return load, graph, policy, ctx


def run_engine(options: RunOptions, rule_ids: set[str] | None = None) -> RunResult:
    load, graph, policy, ctx = build_context(options)
    rules = all_rules()
    findings: list[Finding] = []
    exempted: list[UsedExemption] = []
    environment_errors: list[str] = []
    internal_errors: list[InternalError] = []
    over_limit: dict[str, PlacementOverLimit] = {}
    redact = ctx.memo("redactor", lambda: Redactor.from_documents(graph.documents))
    withheld = _type_error_documents(ctx)
    judged_ctx = ctx
    if withheld:
        skipped = {id(d) for d in withheld}
        validator = ctx.options.get("schema_validator")
        judged_graph = ResourceGraph([d for d in graph.documents if id(d) not in skipped],
                                     validator.scope_of if validator is not None else None)
        judged_ctx = CheckContext(graph=judged_graph, policy=policy, load=load, options=ctx.options,
                                  complete=ctx.complete, live=ctx.live)
    exemptions = exemption_index(judged_ctx)
    for rule in select_rules(rules, options, rule_ids):
        if unmet_requirement(rule.tags, ctx.live) is not None:
            continue  # cannot judge this run (a live rule without --live, ...): its scenario says why
        rule_ctx = ctx if rule.area == "schema" or rule.id in FULL_SET_RULES else judged_ctx
        for violation in _checked(rule, rule_ctx, environment_errors, internal_errors, over_limit):
            finding = _violation_to_finding(rule, violation, redact)
            exemption = exemptions.lookup(rule.id, [violation.doc, *violation.exemptible_by], finding.resource)
            if exemption is not None:
                exempted.append(UsedExemption(exemption, finding))
            else:
                findings.append(finding)
    not_evaluated: list[NotChecked] = []
    if over_limit:
        findings.append(safe_finding(_placement_limit_finding(graph, over_limit, rules), redact))
        not_evaluated += [NotChecked(findings[-1].file or "<set>", findings[-1].line or 0,
                                     f"rule {rule_id}: not evaluated: {exc}") for rule_id, exc in over_limit.items()]
    findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule_id, f.resource))
    # an exception text may quote the input: redacted and escaped like a finding
    internal_errors = [InternalError(e.where, escape_control(redact(e.error)), redact(e.traceback))
                       for e in internal_errors]
    not_checked = list(load.not_checked)
    not_checked += [NotChecked(d.source, d.line, f"{d.ref}: not judged by other rules until its schema errors "
                               "are fixed") for d in withheld]
    for doc, issue in schema_notes(ctx):
        where = NotChecked(doc.source, doc.line_of(tuple(issue.path)), f"{doc.ref}: {issue.message}")
        (not_checked if issue.kind == "missing-schema" else not_evaluated).append(where)
    for note in [*ctx.unresolved, *(judged_ctx.unresolved if judged_ctx is not ctx else [])]:
        not_checked.append(NotChecked(note.doc.source, note.doc.line_of(note.path), note.message))
    return RunResult(options=options, load=load, graph=judged_ctx.graph, policy=policy, context=judged_ctx,
                     findings=findings, not_checked=not_checked, not_evaluated=not_evaluated,
                     environment_errors=environment_errors, exempted=exempted, rules=rules,
                     internal_errors=internal_errors, withheld=withheld)
