"""Live checks against a running Prometheus, as pure functions of (client, resource graph[, pods]).

Each returns `LiveProblem`s that name the object of the set they concern (the exporter DaemonSet, the
PrometheusRule and group, the ScaledObject and trigger), with the field, what is wrong, and how to fix it:

- `exporter_target_problems`: every DCGM exporter pod is an active target of the scrape job its ServiceMonitor
  endpoint generates, with `up == 1`;
- `rule_group_problems`: every group of every PrometheusRule the Prometheus selects is loaded (/api/v1/rules), and
  none of its rules has health `err`;
- `firing_gpu_alerts` / `firing_alert_problems`: the alerts of the set's PrometheusRules that are pending or firing;
- `keda_query_problems`: every KEDA prometheus trigger query, evaluated now, returns exactly one series; for GPU
  (DCGM_*) queries, every series its selectors read belongs to a pod of the ScaledObject's target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import NamedTuple

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.live.prometheus import PrometheusClient, RuleGroup, Series, Target
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.metrics.scrape import Scrape, exporter_scrapes, prometheus_selection_failure
from gpu_policy.promql.sources import promql_sources
from gpu_policy.promql.text import Selector, dcgm_metric_names, selectors

MAX_LISTED = 5
"""Series or pods quoted in one message."""


@dataclass(frozen=True)
class LiveProblem:
    check: str
    doc: Document | None
    message: str
    path: FieldPath = ()
    fix: str | None = None


class PodRef(NamedTuple):
    namespace: str
    name: str
    node: str = ""


def _first_prometheus(graph: ResourceGraph) -> Document | None:
    found = graph.of_kind("Prometheus")
    return found[0] if found else None


def job_name(scrape: Scrape) -> str:
    """The operator's job name for a ServiceMonitor endpoint (promcfg.go generateServiceMonitorConfig)."""
    return f"serviceMonitor/{scrape.monitor.effective_namespace}/{scrape.monitor.name}/{scrape.endpoint_index}"


def _selected_scrapes(graph: ResourceGraph) -> list[Scrape]:
    prometheus = _first_prometheus(graph)
    out: list[Scrape] = []
    seen: set[str] = set()
    for scrape in exporter_scrapes(graph):
        if prometheus is not None and prometheus_selection_failure(
            graph, prometheus, scrape.monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
        ):
            continue
        if job_name(scrape) not in seen:
            seen.add(job_name(scrape))
            out.append(scrape)
    return out


def _job_targets(targets: Sequence[Target], scrape: Scrape) -> list[Target]:
    """The scrape job's targets: its scrape pool (operator-generated configuration), else (another Prometheus set-up)
    targets labelled with the exporter Service's namespace and name."""
    name = job_name(scrape)
    pool = [t for t in targets if t.scrape_pool == name]
    if pool:
        return pool
    service = scrape.target.service
    return [
        t
        for t in targets
        if t.labels.get("service") == service.name and t.labels.get("namespace") == service.effective_namespace
    ]


def exporter_target_problems(
    client: PrometheusClient, graph: ResourceGraph, pods: Sequence[PodRef] | None = None
) -> list[LiveProblem]:
    """Every exporter pod (when `pods` lists them; else every target of the job) is scraped with up == 1."""
    scrapes = _selected_scrapes(graph)
    if not scrapes:
        return []
    targets = client.targets()
    problems: list[LiveProblem] = []
    for scrape in scrapes:
        exporter = scrape.target.exporter
        namespace = scrape.target.service.effective_namespace
        up_values: dict[tuple[str, str], float] = {}
        selector = f'up{{namespace="{namespace}",service="{scrape.target.service.name}"}}'
        for series in client.query(selector):
            up_values[(series.labels.get("namespace", ""), series.labels.get("pod", ""))] = series.value
        job = _job_targets(targets, scrape)
        where = f"scrape job {job_name(scrape)} ({scrape.monitor.ref} endpoint {scrape.endpoint_index})"
        fix = (
            f"Check the exporter pod (`kubectl -n {namespace} logs <pod>`, its readiness on /health) and that "
            f"Service {scrape.target.service.ref} port {scrape.target.port_name} reaches it; Prometheus' "
            "Status > Targets page shows the scrape error."
        )
        by_pod = {t.labels.get("pod", ""): t for t in job}
        wanted = [p for p in pods if p.namespace == namespace] if pods is not None else None
        if wanted is not None:
            for pod in wanted:
                target = by_pod.get(pod.name)
                node = f" on node {pod.node}" if pod.node else ""
                if target is None:
                    problems.append(LiveProblem(
                        "exporter-target-up", exporter,
                        f"exporter pod {namespace}/{pod.name}{node} is not a target of {where}: its GPUs are "
                        "not scraped, so their alerts and the KEDA queries reading them see nothing",
                        fix=fix,
                    ))
                    continue
                problems += _target_problem(target, exporter, f"exporter pod {namespace}/{pod.name}{node}", where,
                                            up_values, fix)
            continue
        if not job:
            problems.append(LiveProblem(
                "exporter-target-up", exporter,
                f"{where} has no active target: no DCGM exporter pod is scraped",
                fix=fix,
            ))
        for target in job:
            name = target.labels.get("pod", target.labels.get("instance", "?"))
            problems += _target_problem(target, exporter, f"exporter pod {namespace}/{name}", where, up_values, fix)
    return problems


def _target_problem(
    target: Target, exporter: Document, what: str, where: str, up: Mapping[tuple[str, str], float], fix: str
) -> list[LiveProblem]:
    value = up.get((target.labels.get("namespace", ""), target.labels.get("pod", "")))
    if target.health == "up" and value == 1:
        return []
    if target.health == "unknown":
        state = "has not been scraped yet"
    else:
        state = f"is down (up == {value:g})" if value is not None else "is down"
        if target.last_error:
            state += f": {target.last_error}"
    return [LiveProblem("exporter-target-up", exporter, f"{what}: target {target.scrape_url} of {where} {state}",
                        fix=fix)]


# -- rule groups ---------------------------------------------------------------------------------------------------
def selected_rules(graph: ResourceGraph, prometheus: Document | None = None) -> list[Document]:
    """The PrometheusRules the set's Prometheus selects (every one when the set has no Prometheus)."""
    prometheus = prometheus or _first_prometheus(graph)
    rules = graph.of_kind("PrometheusRule")
    if prometheus is None:
        return rules
    return [
        r
        for r in rules
        if prometheus_selection_failure(graph, prometheus, r, "ruleSelector", "ruleNamespaceSelector") is None
    ]


_UID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _operator_file_pattern(rule: Document) -> re.Pattern[str]:
    """The operator's file name for a PrometheusRule: `<namespace>-<name>-<uid>.yaml` (prometheus-operator v0.93.0
    pkg/operator/rules.go Select); the UID keeps `a-b/c` and `a/b-c` apart."""
    return re.compile(rf"^{re.escape(rule.effective_namespace)}-{re.escape(rule.name)}-{_UID}\.yaml$")


def _operator_named(group: RuleGroup) -> bool:
    return re.search(rf"-{_UID}\.yaml$", PurePosixPath(group.file).name) is not None


def rule_group_problems(client: PrometheusClient, graph: ResourceGraph) -> list[LiveProblem]:
    """Every group of every selected PrometheusRule is loaded, with no rule in health `err`."""
    rules = selected_rules(graph)
    if not rules:
        return []
    loaded = client.rule_groups()
    operator_managed = any(_operator_named(g) for g in loaded)
    problems: list[LiveProblem] = []
    for rule in rules:
        pattern = _operator_file_pattern(rule)
        groups = rule.spec.get("groups") or []
        for gi, group in enumerate(groups if isinstance(groups, list) else []):
            if not isinstance(group, Mapping):
                continue
            name = str(group.get("name", ""))
            found = [
                g
                for g in loaded
                if g.name == name and (not operator_managed or pattern.match(PurePosixPath(g.file).name))
            ]
            if not found:
                problems.append(LiveProblem(
                    "rule-group-loaded", rule,
                    f"group {name!r} of {rule.ref} is not loaded by Prometheus at {client.url}: none of its alerts "
                    "is evaluated. The Prometheus Operator skips a PrometheusRule whose rules fail Prometheus' "
                    "validation (event InvalidConfiguration, \"PrometheusRule ... was rejected due to invalid "
                    "configuration\"), because Prometheus refuses a configuration with any invalid rule file",
                    path=("spec", "groups", gi, "name"),
                    fix=f"`kubectl -n {rule.effective_namespace} get events --field-selector "
                    f"involvedObject.name={rule.name}` shows the operator's reason; fix the expression "
                    "(`gpu-policy check` runs promtool on it), or make the Prometheus' ruleSelector select it.",
                ))
                continue
            problems += _unhealthy_rules(rule, gi, group, found[0])
    return problems


def _unhealthy_rules(rule: Document, gi: int, group: Mapping[str, object], loaded: RuleGroup) -> list[LiveProblem]:
    problems: list[LiveProblem] = []
    spec_rules = group.get("rules")
    by_name: dict[str, int] = {}
    for ri, spec_rule in enumerate(spec_rules if isinstance(spec_rules, list) else []):
        if isinstance(spec_rule, Mapping):
            by_name.setdefault(str(spec_rule.get("alert") or spec_rule.get("record") or ""), ri)
    for state in loaded.rules:
        if state.health != "err":
            continue
        index = by_name.get(state.name)
        path: FieldPath = (
            ("spec", "groups", gi, "rules", index, "expr") if index is not None else ("spec", "groups", gi)
        )
        problems.append(LiveProblem(
            "rule-group-loaded", rule,
            f"rule {state.name!r} of group {loaded.name!r} fails at every evaluation: {state.last_error}",
            path=path,
            fix="Fix the expression so that it evaluates on the live series (e.g. `on(...)`/`group_left` for a "
            "many-to-many match, unique label sets after the alert's labels are added).",
        ))
    return problems


# -- alerts --------------------------------------------------------------------------------------------------------
def _alert_definitions(graph: ResourceGraph) -> dict[str, tuple[Document, FieldPath]]:
    out: dict[str, tuple[Document, FieldPath]] = {}
    for rule in selected_rules(graph):
        groups = rule.spec.get("groups") or []
        for gi, group in enumerate(groups if isinstance(groups, list) else []):
            rules = group.get("rules") if isinstance(group, Mapping) else None
            for ri, spec_rule in enumerate(rules if isinstance(rules, list) else []):
                if isinstance(spec_rule, Mapping) and spec_rule.get("alert"):
                    out.setdefault(str(spec_rule["alert"]), (rule, ("spec", "groups", gi, "rules", ri)))
    return out


@dataclass(frozen=True)
class ActiveAlert:
    name: str
    state: str
    labels: Mapping[str, str]
    summary: str
    active_at: str
    rule: Document
    path: FieldPath

    def describe(self) -> str:
        where = ", ".join(
            f"{k}={self.labels[k]}" for k in ("gpu", "UUID", "Hostname", "namespace", "pod", "node")
            if self.labels.get(k)
        )
        return f"{self.name} is {self.state} since {self.active_at} ({where}): {self.summary}".rstrip(": ")


def firing_gpu_alerts(client: PrometheusClient, graph: ResourceGraph, states: Iterable[str] = ("firing",)
                      ) -> list[ActiveAlert]:
    """The active alerts (in `states`) defined by the set's PrometheusRules."""
    definitions = _alert_definitions(graph)
    wanted = set(states)
    out: list[ActiveAlert] = []
    for alert in client.alerts():
        name = alert.labels.get("alertname", "")
        if alert.state not in wanted or name not in definitions:
            continue
        rule, path = definitions[name]
        out.append(ActiveAlert(name, alert.state, alert.labels, alert.annotations.get("summary", ""),
                               alert.active_at, rule, path))
    return out


def firing_alert_problems(client: PrometheusClient, graph: ResourceGraph) -> list[LiveProblem]:
    return [
        LiveProblem("gpu-alerts-firing", a.rule, f"alert {a.describe()}", path=a.path,
                    fix=a.rule.get((*a.path, "annotations", "description")) or None)
        for a in firing_gpu_alerts(client, graph)
    ]


# -- KEDA queries --------------------------------------------------------------------------------------------------
def _pod_pattern(kind: str, name: str) -> re.Pattern[str]:
    """Names of a workload's pods: Deployment `<name>-<pod-template-hash>-<5>` (ReplicaSet `<deployment>-<hash>`,
    pod `<replicaset>-<5 chars>`, kubernetes pkg/controller/deployment/sync.go + names.SimpleNameGenerator),
    StatefulSet `<name>-<ordinal>`; other kinds `<name>-...`."""
    if kind == "Deployment":
        return re.compile(rf"^{re.escape(name)}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}$")
    if kind == "StatefulSet":
        return re.compile(rf"^{re.escape(name)}-[0-9]+$")
    return re.compile(rf"^{re.escape(name)}-.+$")


def render_selector(selector: Selector) -> str:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    matchers = ",".join(f"{m.name}{m.op}{quote(m.value)}" for m in selector.matchers)
    return f"{selector.metric or ''}{{{matchers}}}"


def _describe(series: Series) -> str:
    labels = series.labels
    keys = [k for k in ("namespace", "pod", "gpu", "Hostname", "exported_namespace", "exported_pod") if k in labels]
    if not keys:
        keys = sorted(k for k in labels if k != "__name__")[:4]
    return "{" + ", ".join(f"{k}={labels[k]}" for k in keys) + "}"


def keda_query_problems(
    client: PrometheusClient, graph: ResourceGraph, target_pods: Mapping[tuple[str, str], Iterable[str]] | None = None
) -> list[LiveProblem]:
    """Each KEDA prometheus query returns one series now; a GPU query reads only its target's pods.

    `target_pods` maps (namespace, workload name) to the names of its running pods (live mode); without it a pod
    belongs to the target when its name has the form the workload's controller gives its pods."""
    problems: list[LiveProblem] = []
    for source in promql_sources(graph).keda:
        doc = source.doc
        if doc.kind != "ScaledObject":
            continue
        raw_ref = doc.spec.get("scaleTargetRef")
        ref: Mapping[str, object] = raw_ref if isinstance(raw_ref, Mapping) else {}
        target_kind = str(ref.get("kind") or "Deployment")
        target_name = str(ref.get("name") or "")
        namespace = doc.effective_namespace
        result = client.query(source.expr)
        if len(result) != 1:
            what = "no series" if not result else f"{len(result)} series " + ", ".join(
                _describe(s) for s in result[:MAX_LISTED]
            )
            problems.append(LiveProblem(
                "keda-query-one-series", doc,
                f"trigger query {source.expr.strip()!r} returns {what} on the live Prometheus: KEDA "
                + ("fails with 'returned multiple elements' and stops scaling"
                   if result else "reads 0 (ignoreNullValues true) or fails into fallback (false)"),
                path=source.path,
                fix="Aggregate the target's pods into one series (`sum(...)` with metricType AverageValue) and make "
                "sure the series exist (exporter scraped, honorLabels: true).",
            ))
        if not dcgm_metric_names(source.expr) or not target_name:
            continue
        known = target_pods.get((namespace, target_name)) if target_pods is not None else None
        pods = set(known) if known is not None else None
        pattern = _pod_pattern(target_kind, target_name)
        foreign: list[str] = []
        for selector in selectors(source.expr):
            if not (selector.metric or "").startswith("DCGM_"):
                continue
            for series in client.query(render_selector(selector)):
                pod = series.labels.get("pod", "")
                own = series.labels.get("namespace") == namespace and (
                    pod in pods if pods is not None else bool(pattern.match(pod))
                )
                if not own:
                    foreign.append(_describe(series))
        if foreign:
            problems.append(LiveProblem(
                "keda-query-reads-own-pods", doc,
                f"trigger query {source.expr.strip()!r} reads GPU series that are not of {target_kind} "
                f"{namespace}/{target_name}'s pods: {', '.join(sorted(set(foreign))[:MAX_LISTED])}"
                + (f" and {len(set(foreign)) - MAX_LISTED} more" if len(set(foreign)) > MAX_LISTED else ""),
                path=source.path,
                fix=f'Select only the target\'s pods: namespace="{namespace}", pod=~"{target_name}-.*" (and keep '
                "honorLabels: true so `pod` is the GPU workload's, not the exporter's).",
            ))
    return problems
