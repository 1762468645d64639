"""Runtime rules on the live Prometheus (`@live`, `--live --prometheus URL`): the DCGM exporters are scraped, the
PrometheusRules are loaded and healthy, no GPU alert fires, and every KEDA query returns one series of its target's
own pods on the live data.

The checks are `gpu_policy.live.prometheus_checks` (pure functions of a Prometheus client and the resource graph);
these rules feed them the cluster's Pods from `ctx.live` and turn their problems into findings. Without `--live`, or
without `--prometheus`, the scenarios are skipped with the reason (`live.state.unmet_requirement`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gpu_policy.findings import Severity
from gpu_policy.live import prometheus_checks as checks
from gpu_policy.live.prometheus import PrometheusClient
from gpu_policy.live.state import LiveState
from gpu_policy.metrics.dcgm import find_exporters
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

LIVE_PROMETHEUS_TAGS = ("live", "live-prometheus")


def _client(ctx: CheckContext) -> tuple[LiveState, PrometheusClient] | None:
    live = ctx.live
    if live is None or not live.prometheus_url:
        return None
    return live, ctx.memo("live-prometheus-client", lambda: PrometheusClient(str(live.prometheus_url)))


def _violations(problems: list[checks.LiveProblem], live: LiveState) -> Iterator[Violation]:
    for problem in problems:
        yield Violation(
            problem.doc, problem.message, path=problem.path, fix=problem.fix,
            resource=None if problem.doc is not None else live.source,
        )  # fmt: skip


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _owners(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(o.get("kind", "")), str(o.get("name", "")))
        for o in _meta(obj).get("ownerReferences") or []
        if isinstance(o, Mapping)
    ]


def _running(pod: Mapping[str, Any]) -> bool:
    status = _mapping(pod.get("status"))
    return bool(status.get("podIP")) and status.get("phase") == "Running" and not _meta(pod).get("deletionTimestamp")


def exporter_pods(ctx: CheckContext, live: LiveState) -> list[checks.PodRef]:
    """Running pods of the set's exporter DaemonSets, as the cluster lists them."""
    out: list[checks.PodRef] = []
    for daemonset in find_exporters(ctx.graph):
        for pod in live.objects("Pod", daemonset.effective_namespace):
            if ("DaemonSet", daemonset.name) in _owners(pod) and _running(pod):
                spec = _mapping(pod.get("spec"))
                out.append(checks.PodRef(daemonset.effective_namespace, str(_meta(pod).get("name", "")),
                                         str(spec.get("nodeName") or "")))
    return out


def workload_pods(live: LiveState) -> dict[tuple[str, str], list[str]]:
    """(namespace, Deployment or StatefulSet name) -> its pods: a Deployment's pods are owned by its ReplicaSet
    `<deployment>-<pod-template-hash>` (kubernetes pkg/controller/deployment/sync.go), a StatefulSet's by itself."""
    out: dict[tuple[str, str], list[str]] = {}
    for pod in live.objects("Pod"):
        meta = _meta(pod)
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        labels = _mapping(meta.get("labels"))
        template_hash = str(labels.get("pod-template-hash", ""))
        for kind, owner in _owners(pod):
            if kind == "ReplicaSet" and template_hash and owner.endswith(f"-{template_hash}"):
                out.setdefault((namespace, owner[: -len(template_hash) - 1]), []).append(name)
            elif kind == "StatefulSet":
                out.setdefault((namespace, owner), []).append(name)
    return out


@rule(
    "live-exporter-scraped",
    title="Prometheus scrapes every DCGM exporter pod",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_PROMETHEUS_TAGS,
    rationale="""Every running pod of the DCGM exporter DaemonSet must be an active target of the scrape job the
    Prometheus Operator generates for the exporter's ServiceMonitor endpoint (`serviceMonitor/<ns>/<name>/<i>`),
    with `up == 1`: a pod that is not scraped, or whose scrape fails, leaves its node's GPUs without series, so the
    GPU alerts cannot fire for them and a KEDA query reading them falls back or under-counts. Prometheus sets `up`
    to 1 for a successful scrape and 0 otherwise, and reports the scrape error per target on /api/v1/targets
    (prometheus/prometheus scrape/scrape.go, web/api/v1/api.go).""",
    fix="""Check the exporter pod (logs, /health readiness), that the Service's named port reaches the exporter's
    listen port, and Prometheus' Targets page for the scrape error.""",
    sources=(
        "prometheus-operator/prometheus-operator@v0.93.0:pkg/prometheus/promcfg.go (generateServiceMonitorConfig)",
        "prometheus/prometheus:scrape/scrape.go (up), web/api/v1/api.go (/api/v1/targets)",
    ),
)
def live_exporter_scraped(ctx: CheckContext) -> Iterator[Violation]:
    found = _client(ctx)
    if found is None:
        return
    live, client = found
    yield from _violations(checks.exporter_target_problems(client, ctx.graph, exporter_pods(ctx, live)), live)


@rule(
    "live-rule-groups-loaded",
    title="Prometheus has loaded every PrometheusRule group and evaluates it without error",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_PROMETHEUS_TAGS,
    rationale="""Each group of each PrometheusRule the Prometheus selects must appear in /api/v1/rules (file
    `<namespace>-<name>-<uid>.yaml`) with every rule's health `ok`. The Prometheus Operator validates each
    PrometheusRule with Prometheus' rulefmt parser and skips one that fails ("PrometheusRule ... was rejected due to
    invalid configuration", event InvalidConfiguration), because Prometheus refuses a configuration with any
    invalid rule file (it exits at start and keeps the previous rule set on reload): the group is then simply
    absent and none of its alerts is evaluated. A loaded rule whose evaluation fails (many-to-many matching,
    duplicate label sets) has health `err` with the error in lastError, and never fires.""",
    fix="""Read the operator's event for the PrometheusRule, fix the expression (promtool check rules), or make the
    Prometheus' ruleSelector/ruleNamespaceSelector select it.""",
    sources=(
        "prometheus-operator/prometheus-operator@v0.93.0:pkg/operator/rules.go (Select, generateRulesConfiguration)",
        "prometheus/prometheus:rules/manager.go, web/api/v1/api.go (/api/v1/rules health, lastError)",
    ),
)
def live_rule_groups_loaded(ctx: CheckContext) -> Iterator[Violation]:
    found = _client(ctx)
    if found is None:
        return
    live, client = found
    yield from _violations(checks.rule_group_problems(client, ctx.graph), live)


@rule(
    "live-gpu-alerts-quiet",
    title="no GPU alert of the PrometheusRules is firing",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    severity=Severity.WARNING,
    tags=LIVE_PROMETHEUS_TAGS,
    rationale="""A conformance run on a cluster lists the alerts of the set's PrometheusRules that fire now
    (/api/v1/alerts, state `firing`: the expression has held for the rule's `for`), with the GPU, node and pod
    they name, so that a run on a degraded cluster says so. A warning: the configuration may be right and the
    cluster busy.""",
    fix="""Follow the alert's description (runbook); the finding names the GPU, node and pod.""",
    sources=("prometheus/prometheus:web/api/v1/api.go (/api/v1/alerts)",),
)
def live_gpu_alerts_quiet(ctx: CheckContext) -> Iterator[Violation]:
    found = _client(ctx)
    if found is None:
        return
    live, client = found
    yield from _violations(checks.firing_alert_problems(client, ctx.graph), live)


@rule(
    "live-keda-query-one-series",
    title="every KEDA prometheus query returns one series of its target's own pods on live data",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    tags=LIVE_PROMETHEUS_TAGS,
    rationale="""Evaluated on the live Prometheus, each ScaledObject's prometheus trigger query must return
    exactly one series: KEDA fails with "prometheus query ... returned multiple elements" on several and reads an
    empty result as 0 or an error (ignoreNullValues) (kedacore/keda v2.20.2 pkg/scalers/prometheus_scaler.go
    ExecutePromQuery). For a GPU query, every DCGM series its selectors read must belong to a pod of the
    ScaledObject's target (the Deployment's pods, owned by its ReplicaSet `<deployment>-<pod-template-hash>`):
    another workload's GPUs, an idle GPU labelled with the exporter's own pod, or series whose pod label was
    renamed `exported_pod` (honorLabels off) scale the target on load it does not carry.""",
    fix="""Aggregate the target's pods into one series (`sum(...)`, metricType AverageValue) selected by
    namespace and the target's pod-name prefix, and keep honorLabels: true on the exporter's ServiceMonitor.""",
    sources=(
        "kedacore/keda@v2.20.2:pkg/scalers/prometheus_scaler.go (ExecutePromQuery)",
        "NVIDIA/dcgm-exporter@4.5.3-4.8.2:internal/pkg/transformation/kubernetes.go (pod labels per GPU)",
    ),
)
def live_keda_query_one_series(ctx: CheckContext) -> Iterator[Violation]:
    found = _client(ctx)
    if found is None:
        return
    live, client = found
    yield from _violations(checks.keda_query_problems(client, ctx.graph, workload_pods(live)), live)
