"""PrometheusRules, KEDA queries and dashboard queries parsed by the real Prometheus parser (promtool 2.42).

All three rules share one `promtool check rules` run (see gpu_policy.promql.check) over the PrometheusRules'
groups and the embedded queries wrapped as recording rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpu_policy.promql.check import CheckRun, check_rule_files, extract_all
from gpu_policy.promql.keda_eval import dcgm_honor_labels, evaluate_queries
from gpu_policy.promql.sources import promql_sources
from gpu_policy.promql.text import selectors
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

PROMTOOL_SOURCE = "prometheus/prometheus cmd/promtool/main.go (checkRules, checkDuplicates)"


def promtool_check(ctx: CheckContext) -> CheckRun:
    def compute() -> CheckRun:
        sources = promql_sources(ctx.graph)
        queries = [*sources.keda, *sources.dashboard_queries]
        return check_rule_files(extract_all(ctx.graph.of_kind("PrometheusRule"), queries))

    return ctx.memo("promql.check", compute)


def _unattributed(run: CheckRun) -> Iterable[Violation]:
    for text in run.unattributed:
        yield Violation(doc=None, resource="<manifest set>", message=f"promtool reported: {text}")


@rule(
    "prometheusrule-passes-promtool-check",
    title="every PrometheusRule passes promtool check rules",
    area="alerts",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The Prometheus Operator renders each PrometheusRule's `spec` as a rule file and rejects
    the whole
    object when Prometheus' rule parser (rulefmt) fails on it (prometheus-operator pkg/operator/rules.go
    ValidateRule); its admission webhook fails open, so a broken rule is applied and silently never
    evaluated — the
    alerts it holds never fire. `promtool check rules` is the same parser: PromQL syntax and types, durations,
    templates, repeated group names. promtool's duplicate-rules lint (same name and static labels, the
    expression not compared) is not applied: neither the operator nor Prometheus lints, and rules told apart by
    their expressions' labels load and record fine (kube-prometheus' code_verb:apiserver_request_total:increase1h
    rules).""",
    fix="Correct the expression, duration or template at the reported line; run `promtool check rules` on the "
    "group to confirm.",
    sources=(
        PROMTOOL_SOURCE,
        "prometheus/prometheus model/rulefmt/rulefmt.go",
        "prometheus-operator/prometheus-operator pkg/operator/rules.go",
    ),
)
def prometheusrule_passes_promtool(ctx: CheckContext) -> Iterable[Violation]:
    if not ctx.graph.of_kind("PrometheusRule"):
        return
    run = promtool_check(ctx)
    for problem in run.for_prometheus_rules():
        label = (
            f"rule {problem.rule_name!r}: " if problem.rule_name and 'group "' not in problem.message else ""
        )
        yield Violation(
            doc=problem.doc,
            path=problem.path,
            line=problem.line,
            message=f"promtool check rules: {label}{problem.message}",
        )
    yield from _unattributed(run)


@rule(
    "keda-query-parses",
    title="every KEDA prometheus trigger query is valid PromQL",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""KEDA sends `metadata.query` to Prometheus' HTTP API on every poll; a query Prometheus cannot
    parse makes the scaler fail on every poll, and the workload scales only by `fallback` (if configured)
    or not at
    all (kedacore/keda pkg/scalers/prometheus_scaler.go). Parsed here with promtool, Prometheus' own
    parser.""",
    fix="Correct the query at the reported line (test it in the Prometheus UI or with "
    "`promtool query instant`).",
    sources=("kedacore/keda pkg/scalers/prometheus_scaler.go", PROMTOOL_SOURCE),
)
def keda_query_parses(ctx: CheckContext) -> Iterable[Violation]:
    if not ctx.graph.of_kind("ScaledObject", "ScaledJob"):
        return
    run = promtool_check(ctx)
    for problem in run.for_kind("keda"):
        assert problem.query is not None
        yield Violation(
            doc=problem.doc,
            path=problem.path,
            line=problem.line,
            message=f"{problem.query.where}: query {problem.query.expr.strip()!r} does not parse: "
            f"{problem.message}",
        )


@rule(
    "dashboard-query-parses",
    title="every Grafana dashboard query is valid PromQL",
    area="dashboards",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A dashboard panel whose query does not parse shows an error instead of the GPU data the
    on-call
    person opens the dashboard for. Dashboards are read from ConfigMaps labelled `grafana_dashboard` (the
    Grafana
    sidecar's default label); Grafana template variables are replaced by typed placeholders before parsing
    (Grafana docs, "Variable syntax": `$var`, `${var}`, `[[var]]`, `$__rate_interval`, ...).""",
    fix="Correct the panel's `expr` at the reported line.",
    sources=("grafana docs: dashboards/variables/variable-syntax", PROMTOOL_SOURCE),
)
def dashboard_query_parses(ctx: CheckContext) -> Iterable[Violation]:
    # A dashboard that is not JSON at all is dashboard-json-is-valid's finding; its queries are unknown.
    if not promql_sources(ctx.graph).dashboard_queries:
        return
    run = promtool_check(ctx)
    for problem in run.for_kind("dashboard"):
        assert problem.query is not None
        shown = problem.query.expr.strip()
        parsed = problem.query.parsed.strip()
        substituted = "" if shown == parsed else f" (parsed as {parsed!r})"
        yield Violation(
            doc=problem.doc,
            path=problem.path,
            line=problem.line,
            message=f"{problem.query.where}: query {shown!r}{substituted} does not parse: {problem.message}",
        )


@rule(
    "keda-query-reads-only-its-target",
    title="every KEDA GPU query returns one series that moves with its target's pods only",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Evaluated by promtool over synthetic DCGM series labelled as the manifests' scrape labels
    them
    (honorLabels of the ServiceMonitor scraping the exporter). KEDA needs exactly one series: several are
    an error
    ("returned multiple elements"), none reads 0 with the default ignoreNullValues=true, so the workload
    silently
    drops to its minimum. The value must change when the target's GPUs change and must not change when other
    workloads' GPUs change — otherwise it scales one model on another's load (kedacore/keda
    pkg/scalers/prometheus_scaler.go; NVIDIA/dcgm-exporter PR #76 for the exported_pod renaming).""",
    fix='Select the target\'s pods (`pod=~"<deployment>-.*"`, `namespace="<ns>"`) and aggregate to one '
    "series (`sum(...)` with AverageValue); make the DCGM ServiceMonitor set `honorLabels: true`.",
    sources=(
        "kedacore/keda pkg/scalers/prometheus_scaler.go",
        "prometheus/prometheus scrape/scrape.go",
        "NVIDIA/dcgm-exporter pull/76",
    ),
)
def keda_query_reads_only_its_target(ctx: CheckContext) -> Iterable[Violation]:
    queries = list(promql_sources(ctx.graph).keda)
    if not queries:
        return
    parse_failures = {id(p.query) for p in promtool_check(ctx).for_kind("keda")}
    queries = [q for q in queries if id(q) not in parse_failures]  # keda-query-parses reports those
    honor, why = dcgm_honor_labels(ctx.graph)
    for evaluation in evaluate_queries(ctx.graph, queries, honor is not False):
        problems = evaluation.problems()
        if not problems:
            continue
        mode = (
            "series labelled with the workload's pod (honorLabels on)"
            if evaluation.honor_labels
            else f"series labelled as scraped here: {why}"
        )
        yield Violation(
            doc=evaluation.query.doc,
            path=evaluation.query.path,
            message=f"{evaluation.query.where}: query {evaluation.query.expr.strip()!r} "
            + "; ".join(problems)
            + f" (evaluated over {mode})",
            details=tuple(evaluation.output.splitlines()),
        )


# vLLM's prometheus_client Counters (vllm/v1/metrics/loggers.py `_counter_cls(name=...)`); prometheus_client exposes a
# Counter named `x` as the series `x_total` (prometheus/client_python: "Counters ... exposed with a _total suffix").
VLLM_COUNTERS = frozenset({
    "vllm:num_preemptions", "vllm:prompt_tokens", "vllm:generation_tokens", "vllm:request_success",
    "vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits",
})


@rule(
    "vllm-counters-have-total-suffix",
    title="vLLM counters are queried by the names vLLM exposes, with _total",
    area="promql",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""vLLM defines its counters with prometheus_client under names such as `vllm:num_preemptions`
    (vllm-project/vllm vllm/v1/metrics/loggers.py, `_counter_cls(name="vllm:num_preemptions", ...)`), and
    prometheus_client exposes a Counter with a `_total` suffix (prometheus/client_python, counters: "exposed with
    a _total suffix"; vLLM's metrics docs list vllm:num_preemptions_total). A query on the bare name selects no
    series: an alert on it never fires, a KEDA trigger reads nothing (0 with ignoreNullValues), a panel stays
    empty. Judged for the vLLM counters named in loggers.py.""",
    fix="Append _total: rate(vllm:num_preemptions_total[5m]).",
    sources=("vllm-project/vllm vllm/v1/metrics/loggers.py (Counters)",
             "prometheus/client_python README (Counter: _total suffix)"),
)
def vllm_counters_have_total_suffix(ctx: CheckContext) -> Iterable[Violation]:
    for query in promql_sources(ctx.graph).all:
        bare = sorted({s.metric for s in selectors(query.expr) if s.metric in VLLM_COUNTERS})
        if bare:
            yield Violation(
                doc=query.doc,
                path=query.path,
                line=query.line,
                message=f"{query.where} selects {', '.join(bare)}, which vLLM exposes as "
                f"{', '.join(b + '_total' for b in bare)}: the bare counter name matches no series",
            )
