"""What the Prometheus Operator makes of any ServiceMonitor: which Services it finds, which ports it scrapes, and
which `job` label the targets get — so that an alert on `up{job="..."}` can match them.

Semantics of prometheus-operator v0.93.0 pkg/prometheus/promcfg.go generateServiceMonitorConfig /
generatePodMonitorConfig, read at the tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gpu_policy.graph.selectors import matches
from gpu_policy.loading.document import Document
from gpu_policy.metrics import scrape as chain
from gpu_policy.promql.text import selectors
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

PROMCFG = "prometheus-operator/prometheus-operator v0.93.0 pkg/prometheus/promcfg.go"
SM_CRD = "prometheus-operator v0.93.0 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
SCRAPE_OPTIONS = frozenset({
    "interval", "scrapeTimeout", "path", "scheme", "params", "honorLabels", "honorTimestamps", "relabelings",
    "metricRelabelings", "tlsConfig", "bearerTokenFile", "bearerTokenSecret", "authorization", "basicAuth",
    "oauth2", "followRedirects", "enableHttp2", "filterRunning", "proxyUrl", "trackTimestampsStaleness",
})


def _endpoints(monitor: Document, key: str = "endpoints") -> list[tuple[int, Mapping[str, Any]]]:
    value = monitor.spec.get(key)
    return [(i, e) for i, e in enumerate(value) if isinstance(e, Mapping)] if isinstance(value, list) else []


def _services_by_label(ctx: CheckContext) -> dict[tuple[str, str], list[tuple[int, Document]]]:
    """(label key, value as a string) -> the Services carrying it, with their position in the graph's order."""

    def compute() -> dict[tuple[str, str], list[tuple[int, Document]]]:
        index: dict[tuple[str, str], list[tuple[int, Document]]] = {}
        for position, service in enumerate(ctx.graph.of_kind("Service")):
            for key, value in service.labels.items():
                index.setdefault((str(key), str(value)), []).append((position, service))
        return index

    return ctx.memo("scrape_config.services_by_label", compute)


def _candidate_services(ctx: CheckContext, selector: Mapping[str, Any]) -> list[Document]:
    """The Services that may match `selector`, in the graph's order: those carrying its rarest matchLabels pair
    (every Service when it has no matchLabels). `matches` still decides."""
    match_labels = selector.get("matchLabels")
    if not isinstance(match_labels, Mapping) or not match_labels:
        return ctx.graph.of_kind("Service")
    index = _services_by_label(ctx)
    smallest = min((index.get((str(k), str(v)), []) for k, v in match_labels.items()), key=len)
    return [service for _, service in smallest]


def selected_services(ctx: CheckContext, monitor: Document) -> tuple[list[Document], list[Document]]:
    """(Services of the set the ServiceMonitor finds, Services carrying its selector's labels in namespaces it does
    not look in). The operator keeps the endpoints of Services whose labels match `selector`, in the namespaces
    `namespaceSelector` names (unset: the ServiceMonitor's own). Computed once per ServiceMonitor; the Services
    come from a label index (every ServiceMonitor against every Service was quadratic in the set)."""
    selector = monitor.spec.get("selector")
    if not isinstance(selector, Mapping):
        return [], []
    cache: dict[int, tuple[list[Document], list[Document]]] = ctx.memo("scrape_config.selected_services", dict)
    cached = cache.get(id(monitor))
    if cached is not None:
        return list(cached[0]), list(cached[1])
    found: list[Document] = []
    elsewhere: list[Document] = []
    for service in _candidate_services(ctx, selector):
        if not matches(selector, service.labels):
            continue
        if chain.servicemonitor_namespaces_cover(ctx.graph, monitor, service.effective_namespace):
            found.append(service)
        else:
            elsewhere.append(service)
    cache[id(monitor)] = (found, elsewhere)
    return list(found), list(elsewhere)


def _covered_namespaces(monitor: Document) -> str:
    ns_selector = monitor.spec.get("namespaceSelector") or {}
    if isinstance(ns_selector, Mapping) and ns_selector.get("any") is True:
        return "any namespace"
    names = ns_selector.get("matchNames") if isinstance(ns_selector, Mapping) else None
    if names:
        return "namespace(s) " + ", ".join(str(n) for n in names) + " (namespaceSelector.matchNames)"
    return f"its own namespace {monitor.effective_namespace} (namespaceSelector unset)"


@rule(
    "servicemonitor-finds-its-service",
    title="every ServiceMonitor looks for its Services in their namespace",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The Prometheus Operator builds a kubernetes_sd_config whose `namespaces` are the
    ServiceMonitor's namespaceSelector: `matchNames`, `any: true`, or, when unset, only the ServiceMonitor's own
    namespace (prometheus-operator v0.93.0 pkg/prometheus/promcfg.go generateK8SSDConfig; ServiceMonitor CRD
    field namespaceSelector). A Service carrying the selector's labels in another namespace is never discovered:
    no target, no error. The selector matches the Service's own metadata.labels (`__meta_kubernetes_service_label_*`
    keep relabelings, promcfg.go), not its spec.selector: a Service whose pod selector carries the labels but whose
    metadata.labels do not is never found either. When no Service of the set carries the labels at all, the
    Services may come from a chart or another repository: "not checked" unless the set is declared complete.""",
    fix="""Add the Service's namespace to spec.namespaceSelector.matchNames (or move the ServiceMonitor to the
    Service's namespace).""",
    sources=(PROMCFG + " generateServiceMonitorConfig, generateK8SSDConfig", SM_CRD + " (namespaceSelector)"),
)
def servicemonitor_finds_its_service(ctx: CheckContext) -> Iterator[Violation]:
    for monitor in ctx.graph.of_kind("ServiceMonitor"):
        selector = monitor.spec.get("selector")
        if not isinstance(selector, Mapping):
            continue
        found, elsewhere = selected_services(ctx, monitor)
        if found:
            continue
        by_pod_selector = [
            s for s in ctx.graph.of_kind("Service")
            if isinstance(s.spec.get("selector"), Mapping) and s.spec.get("selector")
            and matches(selector, {str(k): str(v) for k, v in s.spec["selector"].items()})
        ]
        if by_pod_selector and not elsewhere:
            service = next((s for s in by_pod_selector if chain.servicemonitor_namespaces_cover(
                ctx.graph, monitor, s.effective_namespace)), by_pod_selector[0])
            covered = chain.servicemonitor_namespaces_cover(ctx.graph, monitor, service.effective_namespace)
            outside = "" if covered else (
                f"; it is also in namespace {service.effective_namespace}, while the ServiceMonitor looks only in "
                f"{_covered_namespaces(monitor)}")
            yield Violation(
                doc=monitor,
                path=("spec", "selector"),
                message=(
                    f"{monitor.ref} selects Services labelled {dict(selector)}, but {service.ref} has "
                    f"those labels only in spec.selector (its pods'), not in metadata.labels "
                    f"({service.labels or '{}'}): ServiceMonitors match a Service's own labels, so no target is found"
                    f"{outside}"
                ),
                fix=f"Add {dict(selector.get('matchLabels') or {})} to {service.ref} metadata.labels.",
            )
            continue
        if elsewhere:
            shown = ", ".join(f"{s.ref} (namespace {s.effective_namespace})" for s in elsewhere)
            yield Violation(
                doc=monitor,
                path=("spec", "namespaceSelector") if monitor.spec.get("namespaceSelector") else ("spec", "selector"),
                message=(
                    f"{monitor.ref} (namespace {monitor.effective_namespace}) looks only in "
                    f"{_covered_namespaces(monitor)}, but the Services with its selector's labels are in another "
                    f"namespace: {shown}; no target is discovered"
                ),
                fix=f"Add {', '.join(sorted({s.effective_namespace for s in elsewhere}))} to "
                "spec.namespaceSelector.matchNames.",
            )
            continue
        yield from ctx.missing(
            monitor, ("spec", "selector"),
            f"{monitor.ref} selects Services labelled {dict(selector)} in "
            f"{_covered_namespaces(monitor)}; none is in the set",
        )


@rule(
    "servicemonitor-endpoint-names-a-port",
    title="every ServiceMonitor endpoint names the port to scrape",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""An `endpoints[]` item with neither `port` nor `targetPort` gets no port filter: the operator only
    adds a `keep` relabeling on the port name (`port`) or the pod container port (`targetPort`) when one is set
    (prometheus-operator v0.93.0 pkg/prometheus/promcfg.go generateServiceMonitorConfig), and the endpoints role
    of Prometheus' Kubernetes discovery yields one target per port of each endpoint address (prometheus docs
    configuration/configuration.md, kubernetes_sd_config, role endpoints). Such an item scrapes EVERY port of the
    selected Services — gRPC, HTTP APIs, health ports — each failing as a target (up == 0, scrape errors), and
    scrapes the metrics port a second time. The usual cause is a YAML slip splitting one endpoint's options into
    two list items (`- port: metrics` then `- interval: 30s`). Judged when another endpoint of the same
    ServiceMonitor names a port, or a selected Service of the set has more than one port.""",
    fix="""Merge the options into the endpoint that names the port (`- port: metrics` with `interval: 30s` in the
    same item), or give the item `port: <Service port name>`.""",
    sources=(
        PROMCFG + " generateServiceMonitorConfig (port / targetPort keep relabelings)",
        "prometheus docs configuration/configuration.md (kubernetes_sd_config, endpoints role)",
        SM_CRD + " (endpoints[].port, endpoints[].targetPort)",
    ),
)
def servicemonitor_endpoint_names_a_port(ctx: CheckContext) -> Iterator[Violation]:
    for monitor in ctx.graph.of_kind("ServiceMonitor"):
        endpoints = _endpoints(monitor)
        named = [i for i, e in endpoints if e.get("port") or e.get("targetPort")]
        found, _ = selected_services(ctx, monitor)
        multi = [s for s in found if len([p for p in s.spec.get("ports") or [] if isinstance(p, Mapping)]) > 1]
        for index, endpoint in endpoints:
            if endpoint.get("port") or endpoint.get("targetPort"):
                continue
            if named:
                split = set(endpoint) <= SCRAPE_OPTIONS
                yield Violation(
                    doc=monitor,
                    path=("spec", "endpoints", index),
                    message=(
                        f"endpoints[{index}] ({', '.join(sorted(endpoint)) or 'empty'}) has neither port nor "
                        f"targetPort, so it scrapes every port of the selected Services"
                        + (f"; it looks like options of endpoints[{named[0]}] "
                           f"(port {endpoints[named[0]][1].get('port') or endpoints[named[0]][1].get('targetPort')}) "
                           "split into a separate list item" if split else "")
                    ),
                )
            elif multi:
                service = multi[0]
                ports = ", ".join(str(p.get("name") or p.get("port")) for p in service.spec.get("ports") or []
                                  if isinstance(p, Mapping))
                yield Violation(
                    doc=monitor,
                    path=("spec", "endpoints", index),
                    message=(
                        f"endpoints[{index}] has neither port nor targetPort, so it scrapes every port of "
                        f"{service.ref} ({ports}), not only its metrics port"
                    ),
                )


# -- up{job="..."} alerts ----------------------------------------------------------------------------------------
def _relabels_job(endpoint: Mapping[str, Any]) -> bool:
    for item in endpoint.get("relabelings") or []:
        if not isinstance(item, Mapping):
            continue
        if item.get("targetLabel") == "job" or str(item.get("action", "")).lower() == "labelmap":
            return True
    return False


@dataclass(frozen=True)
class ScrapeJob:
    monitor: Document
    jobs: frozenset[str] | None
    """The `job` values of its targets; None when they cannot be known from the set (relabelings, Services or
    pod labels not in the set)."""


def scrape_jobs(ctx: CheckContext) -> list[ScrapeJob]:
    """The job label the operator gives each ServiceMonitor's / PodMonitor's targets: the Service name, or the
    value of the Service label named by `jobLabel` when the Service has it (ServiceMonitor); `<namespace>/<name>`
    or the pod label named by `jobLabel` (PodMonitor). Endpoint relabelings may rewrite it (then unknown)."""

    def compute() -> list[ScrapeJob]:
        out: list[ScrapeJob] = []
        rewriting = any(
            isinstance(c, Mapping) and any(isinstance(r, Mapping) and r.get("targetLabel") == "job"
                                           for r in c.get("relabelings") or [])
            for p in ctx.graph.of_kind("Prometheus") for c in p.spec.get("scrapeClasses") or []
        )
        for monitor in ctx.graph.of_kind("ServiceMonitor"):
            if rewriting or any(_relabels_job(e) for _, e in _endpoints(monitor)):
                out.append(ScrapeJob(monitor, None))
                continue
            found, _ = selected_services(ctx, monitor)
            if not found:
                out.append(ScrapeJob(monitor, None))
                continue
            label = str(monitor.spec.get("jobLabel") or "")
            out.append(ScrapeJob(monitor, frozenset(
                str(s.labels[label]) if label and str(s.labels.get(label) or "") else s.name for s in found
            )))
        for monitor in ctx.graph.of_kind("PodMonitor"):
            if rewriting or monitor.spec.get("jobLabel") or any(
                    _relabels_job(e) for _, e in _endpoints(monitor, "podMetricsEndpoints")):
                out.append(ScrapeJob(monitor, None))
                continue
            out.append(ScrapeJob(monitor, frozenset({f"{monitor.effective_namespace}/{monitor.name}"})))
        return out

    return ctx.memo("scrape-jobs", compute)


def _job_matchers(expr: str) -> Iterator[tuple[str, str]]:
    for sel in selectors(expr):
        if sel.metric != "up":
            continue
        for matcher in sel.matchers:
            if matcher.name == "job" and matcher.op in ("=", "=~"):
                yield matcher.op, matcher.value


def _holds(op: str, pattern: str, value: str) -> bool:
    if op == "=":
        return value == pattern
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True  # an invalid regex is promtool's finding; do not guess


@rule(
    "up-alert-job-matches-scrape-job",
    title="an up{job=...} rule names the job its ServiceMonitor's targets really get",
    area="alerts",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The Prometheus Operator sets a ServiceMonitor target's `job` to the Service's name, or, when
    spec.jobLabel is set and the Service carries that label, to that label's value; a PodMonitor target's `job` is
    `<namespace>/<PodMonitor name>` unless jobLabel names a pod label (prometheus-operator v0.93.0
    pkg/prometheus/promcfg.go: "By default, generate a safe job name from the service name", the jobLabel
    relabeling; ServiceMonitor CRD field jobLabel). An alert on `up{job="X"}` where X is the name of a
    ServiceMonitor, PodMonitor or Service of the set whose targets get another job matches no series: the
    "exporter down" alert can never fire (and `absent(up{job="X"})` fires forever). Judged only for a job value
    that names such an object of the set, when the job of its targets is known (no relabeling of `job`, selected
    Services in the set) and no other monitor of the set produces X.""",
    fix="""Use the job the targets get (the Service name, or the Service's jobLabel value), or set the
    ServiceMonitor's jobLabel to a Service label whose value is X.""",
    sources=(PROMCFG + " generateServiceMonitorConfig / generatePodMonitorConfig (job relabelings)",
             SM_CRD + " (jobLabel)"),
)
def up_alert_job_matches_scrape_job(ctx: CheckContext) -> Iterator[Violation]:
    jobs = scrape_jobs(ctx)
    if not jobs:
        return
    produced = {j for s in jobs if s.jobs is not None for j in s.jobs}
    for doc in ctx.graph.of_kind("PrometheusRule"):
        for gi, group in enumerate(doc.spec.get("groups") or []):
            if not isinstance(group, Mapping):
                continue
            for ri, entry in enumerate(group.get("rules") or []):
                if not isinstance(entry, Mapping):
                    continue
                expr = str(entry.get("expr") or "")
                for op, value in _job_matchers(expr):
                    if any(_holds(op, value, j) for j in produced):
                        continue
                    meant = [s for s in jobs if s.jobs is not None and (
                        _holds(op, value, s.monitor.name)
                        or (s.monitor.kind == "ServiceMonitor"
                            and any(_holds(op, value, svc.name) for svc in selected_services(ctx, s.monitor)[0])))]
                    if not meant:
                        continue
                    scrape = meant[0]
                    assert scrape.jobs is not None
                    name = entry.get("alert") or entry.get("record")
                    yield Violation(
                        doc=doc,
                        path=("spec", "groups", gi, "rules", ri, "expr"),
                        message=(
                            f"rule {name}: up{{job{op}\"{value}\"}} matches no target: {scrape.monitor.ref}'s targets "
                            f"get job {', '.join(sorted(scrape.jobs))}"
                            + (f" (jobLabel {scrape.monitor.spec.get('jobLabel')!r})"
                               if scrape.monitor.spec.get("jobLabel") else " (the Service name)")
                        ),
                        fix=f"Use job=\"{sorted(scrape.jobs)[0]}\" in the expression.",
                    )


@rule(
    "servicemonitor-port-is-a-service-port",
    title="every ServiceMonitor endpoint port names a port of the Services it selects",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""`endpoints[].port` is the NAME of a Service port (`.spec.ports[].name`; ServiceMonitor CRD): the
    operator keeps only targets whose `__meta_kubernetes_endpoint_port_name` (endpointslice: `..._endpointslice_
    port_name`) equals it (prometheus-operator v0.93.0 pkg/prometheus/promcfg.go generateServiceMonitorConfig). A
    port number written as a name, or an unnamed Service port, keeps no target: nothing is scraped and nothing
    errors. Judged against the Services of the set the ServiceMonitor finds; in a partial set its selector may
    also match Services outside it, so the finding is about the Services named, not every target of the
    ServiceMonitor.""",
    fix="Name the Service port (e.g. `name: metrics`) and use that name in endpoints[].port (or use targetPort).",
    sources=(PROMCFG + " generateServiceMonitorConfig (port keep relabeling)", SM_CRD + " (endpoints[].port)"),
)
def servicemonitor_port_is_a_service_port(ctx: CheckContext) -> Iterator[Violation]:
    for monitor in ctx.graph.of_kind("ServiceMonitor"):
        found, _ = selected_services(ctx, monitor)
        if not found:
            continue
        names = {str(p.get("name")) for s in found for p in s.spec.get("ports") or []
                 if isinstance(p, Mapping) and p.get("name")}
        for index, endpoint in _endpoints(monitor):
            port = endpoint.get("port")
            if not port or str(port) in names:
                continue
            shown = "; ".join(
                f"{s.ref}: " + (", ".join(str(p.get("name") or f"unnamed {p.get('port')}")
                                          for p in s.spec.get("ports") or [] if isinstance(p, Mapping)) or "no ports")
                for s in found)
            yield Violation(
                doc=monitor,
                path=("spec", "endpoints", index, "port"),
                message=f"endpoints[{index}].port {port!r} is not the name of a port of the Services it selects "
                f"({shown}): no target of these Services is kept",
            )
