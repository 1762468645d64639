"""The Grafana dashboard of the design: valid JSON, the five panels, and queries over metrics that exist.

Dashboards are ConfigMaps labelled `grafana_dashboard`, the label the Grafana Helm chart's dashboard
sidecar loads
(grafana/helm-charts charts/grafana values.yaml `sidecar.dashboards.label`). Which panels are required, and
which non-DCGM metric names exist, is data: policies/dashboard.yaml.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpu_policy.promql.sources import Dashboard, Panel, promql_sources
from gpu_policy.promql.text import DCGM_PREFIX, metric_names
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _dashboards(ctx: CheckContext) -> tuple[Dashboard, ...]:
    return promql_sources(ctx.graph).dashboards


@rule(
    "dashboard-json-is-valid",
    title="every Grafana dashboard ConfigMap holds valid JSON",
    area="dashboard",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The Grafana sidecar loads each data key of a `grafana_dashboard` ConfigMap as a dashboard
    file; a JSON syntax error makes Grafana skip the dashboard with only a log line, so the panels operators
    rely on during an incident are simply missing.""",
    fix="Fix the JSON at the reported line (`python -m json.tool < file` shows the same error).",
    sources=("grafana/helm-charts charts/grafana (sidecar.dashboards)",),
)
def dashboard_json_is_valid(ctx: CheckContext) -> Iterator[Violation]:
    for dashboard in _dashboards(ctx):
        if dashboard.error is not None:
            yield Violation(
                doc=dashboard.doc, path=dashboard.path, line=dashboard.error_line, message=dashboard.error
            )


def _panel_metrics(panel: Panel) -> list[str]:
    return [name for query in panel.queries for name in metric_names(query.expr)]


def _matches(panel: Panel, spec: dict[str, Any]) -> bool:
    title = panel.title.lower()
    if not any(str(k).lower() in title for k in spec["titleKeywords"]):
        return False
    used = _panel_metrics(panel)
    prefixes = [str(p) for p in spec["metricPrefixes"]]
    hits = [p for p in prefixes if any(m.startswith(p) for m in used)]
    return len(hits) == len(prefixes) if spec.get("requireAllPrefixes") else bool(hits)


@rule(
    "dashboard-has-design-panels",
    title="the GPU dashboard has the panels the dashboard policy requires",
    area="dashboard",
    rule_class=RuleClass.POLICY,
    rationale="""The dashboard policy's `panels` lists the panels a GPU dashboard must have (the reference
    profile, from its design: GPU utilization trend, GPU memory used and free, pod scaling events (HPA/KEDA),
    Karpenter node provisioning and GPU cost). A panel counts when its title has one of the keywords AND it
    queries the metrics that show it; a panel titled "GPU memory" that plots something else does not count.
    Judged over all dashboards of the set, when the set has one and the policy lists panels.""",
    fix="Add the missing panels, querying the metrics the dashboard policy lists for them.",
    sources=("seed design §모니터링 대시보드 구성", "policies/dashboard.yaml"),
)
def dashboard_has_design_panels(ctx: CheckContext) -> Iterator[Violation]:
    boards = [d for d in _dashboards(ctx) if d.error is None]
    if not boards:
        return
    panels = [(board, panel) for board in boards for panel in board.panels]
    for name, spec in (ctx.policy.dashboard.get("panels") or {}).items():
        if any(_matches(panel, spec) for _, panel in panels):
            continue
        titled = [
            p.title
            for _, p in panels
            if any(str(k).lower() in p.title.lower() for k in spec["titleKeywords"])
        ]
        hint = (
            f"; panels {titled} have a matching title but do not query "
            f"{(' and ' if spec.get('requireAllPrefixes') else ' or ').join(spec['metricPrefixes'])}"
            if titled
            else ""
        )
        board = boards[0]
        yield Violation(
            doc=board.doc,
            path=board.path,
            message=f"no {name} panel ({spec.get('description', name)}){hint} (required by the dashboard policy, "
            f"{ctx.policy.source_of('dashboard')})",
        )


def _known(name: str, known: set[str], recorded: frozenset[str]) -> bool:
    if name in known or name in recorded:
        return True
    return any(name.endswith(s) and name[: -len(s)] in known for s in HISTOGRAM_SUFFIXES)


@rule(
    "dashboard-queries-known-metrics",
    title="every dashboard panel queries metrics the dashboard policy knows",
    area="dashboard",
    rule_class=RuleClass.POLICY,
    rationale="""A panel querying a metric nobody exports shows "No data", which reads like "nothing
    happened". Which exporters a cluster runs is its own business (node-exporter, vLLM, DCGM, ...), so this
    is judged only when the dashboard policy sets knownMetricsOnly (the reference profile does): non-DCGM names
    must then be in its knownMetrics (kube-state-metrics, Karpenter, KEDA and cost-exporter names, from their
    metric references) or be recorded by a PrometheusRule of the set; DCGM names are checked against the
    exporter's collectors by dcgm-metrics-are-collected.""",
    fix="Use the metric's exact name (e.g. karpenter_nodeclaims_created_total, "
    "kube_horizontalpodautoscaler_status_current_replicas), or add it to knownMetrics with its source.",
    sources=(
        "kubernetes/kube-state-metrics docs/metrics/workload/horizontalpodautoscaler-metrics.md",
        "aws/karpenter-provider-aws website/content/en/v1.14/reference/metrics.md",
        "kedacore/keda-docs content/docs/2.20/integrations/prometheus.md",
    ),
)
def dashboard_queries_known_metrics(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.policy.dashboard.get("knownMetricsOnly") is not True:
        return
    known = {str(m) for m in ctx.policy.dashboard.get("knownMetrics") or []}
    recorded = promql_sources(ctx.graph).recorded
    for board in _dashboards(ctx):
        for panel in board.panels:
            for query in panel.queries:
                unknown = [
                    m
                    for m in metric_names(query.expr)
                    if not m.startswith(DCGM_PREFIX) and not _known(m, known, recorded)
                ]
                if unknown:
                    yield Violation(
                        doc=board.doc,
                        path=board.path,
                        line=query.line,
                        message=f"{query.where} queries {', '.join(unknown)}, which is not among the "
                        f"knownMetrics of the dashboard policy ({ctx.policy.source_of('dashboard')})",
                    )
