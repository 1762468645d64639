"""The scrape chain of the DCGM exporter, as the Prometheus Operator wires it: exporter pods -> Service (named port
reaching the listen port) -> ServiceMonitor (selector, namespaceSelector, endpoint port) -> Prometheus
(serviceMonitorSelector / serviceMonitorNamespaceSelector) -> honorLabels.

Cross-references of the graph, built once per graph and shared by the monitoring rules and the KEDA query
evaluation, so both judge the same scrape. Selection semantics per the v0.93.0 CRD field descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.selectors import matches, matches_map
from gpu_policy.graph.workloads import pod_template_of
from gpu_policy.loading.document import Document
from gpu_policy.metrics import dcgm

NS_NAME_LABEL = "kubernetes.io/metadata.name"


def listen_port(container: Mapping[str, Any]) -> int:
    """DCGM_EXPORTER_LISTEN / `-a` (default ":9400", NVIDIA/dcgm-exporter pkg/cmd/app.go)."""
    address = ":9400"
    for env in container.get("env") or []:
        if isinstance(env, Mapping) and env.get("name") == "DCGM_EXPORTER_LISTEN" and env.get("value"):
            address = str(env["value"])
    args = [str(a) for a in container.get("args") or []]
    for i, arg in enumerate(args):
        if arg in ("-a", "--address") and i + 1 < len(args):
            address = args[i + 1]
        elif arg.startswith(("-a=", "--address=")):
            address = arg.split("=", 1)[1]
    try:
        return int(address.rsplit(":", 1)[-1])
    except ValueError:
        return 9400



@dataclass(frozen=True)
class ExporterService:
    exporter: Document
    service: Document
    port_index: int
    port_name: str
    port_number: Any
    target_port: Any
    container_port_name: str | None = None
    """Name of the exporter container port that declares the listen port (None when unnamed or undeclared)."""
    container_port_number: int | None = None
    """The listen port when the exporter container declares it in `ports` (None otherwise)."""



def _service_port_reaches(port: Mapping[str, Any], listen: int, container_ports: Mapping[str, int]) -> bool:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, str) and not target.isdigit():
        return container_ports.get(target) == listen
    try:
        return int(str(target)) == listen
    except ValueError:
        return False



def exporter_services(graph: ResourceGraph) -> dict[str, list[ExporterService]]:
    """Exporter ref -> Services selecting its pods, with their named port reaching the exporter's listen
    port."""

    def compute() -> dict[str, list[ExporterService]]:
        out: dict[str, list[ExporterService]] = {}
        for exporter in dcgm.find_exporters(graph):
            template = pod_template_of(exporter)
            assert template is not None
            containers = dcgm.exporter_containers(template) or template.containers()
            found: list[ExporterService] = []
            for service in graph.of_kind("Service"):
                selector = service.spec.get("selector")
                if (
                    service.effective_namespace != exporter.effective_namespace
                    or not selector
                    or not matches_map(selector, template.labels)
                ):
                    continue
                for _, container in containers:
                    listen = listen_port(container)
                    named = {
                        str(p.get("name")): int(p.get("containerPort", 0))
                        for p in container.get("ports") or []
                        if isinstance(p, Mapping) and p.get("name")
                    }
                    declared = next(
                        (
                            p
                            for p in container.get("ports") or []
                            if isinstance(p, Mapping) and str(p.get("containerPort")) == str(listen)
                        ),
                        None,
                    )
                    declared_name = str(declared["name"]) if declared and declared.get("name") else None
                    declared_number = listen if declared is not None else None
                    for i, port in enumerate(service.spec.get("ports") or []):
                        if (
                            isinstance(port, Mapping)
                            and port.get("name")
                            and _service_port_reaches(port, listen, named)
                        ):
                            found.append(
                                ExporterService(
                                    exporter,
                                    service,
                                    i,
                                    str(port["name"]),
                                    port.get("port"),
                                    port.get("targetPort"),
                                    declared_name,
                                    declared_number,
                                )
                            )
            out[exporter.ref] = found
        return out

    return graph.derived("dcgm-exporter-services", lambda _: compute())



def namespace_labels(graph: ResourceGraph, namespace: str) -> dict[str, Any] | None:
    """Labels of a namespace (with the automatic kubernetes.io/metadata.name); None when it is not in the
    set."""
    doc = graph.get("Namespace", namespace)
    if doc is None:
        return None
    return {**doc.labels, NS_NAME_LABEL: namespace}



def prometheus_selection_failure(
    graph: ResourceGraph, prom: Document, obj: Document, selector_field: str, ns_field: str
) -> str | None:
    """Why Prometheus `prom` does not pick `obj` (None when it does), per the v0.93.0 CRD field descriptions:
    selector null = nothing, {} = everything; namespace selector null = the Prometheus' own namespace only."""
    selector = prom.spec.get(selector_field)
    if selector is None:
        return f"{prom.ref} has no spec.{selector_field} (a null selector selects nothing)"
    if not matches(selector, obj.labels):
        return f"{prom.ref} spec.{selector_field} {selector} does not match labels {obj.labels or '{}'}"
    ns_selector = prom.spec.get(ns_field)
    if ns_selector is None:
        if obj.effective_namespace != prom.effective_namespace:
            return (
                f"{prom.ref} has no spec.{ns_field}, so it only looks in its own namespace {prom.effective_namespace}, "
                f"not {obj.effective_namespace}"
            )
        return None
    if not ns_selector:
        return None
    labels = namespace_labels(graph, obj.effective_namespace)
    if labels is None:
        labels = {NS_NAME_LABEL: obj.effective_namespace}
        if matches(ns_selector, labels):
            return None
        return (
            f"{prom.ref} spec.{ns_field} {ns_selector} needs namespace labels, and Namespace {obj.effective_namespace} "
            "is not "
            "in the manifest set"
        )
    if not matches(ns_selector, labels):
        namespace = obj.effective_namespace
        return f"{prom.ref} spec.{ns_field} {ns_selector} does not match Namespace {namespace} labels {labels}"
    return None



def selecting_prometheuses(
    graph: ResourceGraph, obj: Document, selector_field: str, ns_field: str
) -> list[Document]:
    return [
        p
        for p in graph.of_kind("Prometheus")
        if prometheus_selection_failure(graph, p, obj, selector_field, ns_field) is None
    ]



def servicemonitor_namespaces_cover(graph: ResourceGraph, monitor: Document, namespace: str) -> bool:
    ns_selector = monitor.spec.get("namespaceSelector") or {}
    ignore = any(
        p.spec.get("ignoreNamespaceSelectors") is True
        for p in selecting_prometheuses(
            graph, monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
        )
    )
    if ignore or not ns_selector:
        return namespace == monitor.effective_namespace
    if ns_selector.get("any") is True:
        return True
    names = ns_selector.get("matchNames")
    if names:
        return namespace in [str(n) for n in names]
    return namespace == monitor.effective_namespace



@dataclass(frozen=True)
class Scrape:
    monitor: Document
    endpoint_index: int
    endpoint: Mapping[str, Any]
    target: ExporterService



def _target_port_matches(target_port: Any, target: ExporterService) -> bool:
    """A ServiceMonitor endpoint's `targetPort` (used when `port` is unset) keeps the targets whose POD container
    port matches: a string against the container port's name (__meta_kubernetes_pod_container_port_name), an
    integer against its number (__meta_kubernetes_pod_container_port_number); the Service port plays no part
    (prometheus-operator pkg/prometheus/promcfg.go generateServiceMonitorConfig; v0.93.0 CRD field description
    "If a name, it matches against .spec.containers[].ports[].name of the Pods. If a number, ... containerPort").
    Prometheus sets those labels only for a container port declared in the pod spec whose number is the endpoint's,
    so an undeclared listen port matches neither. The operator uses the value as an anchored regex; port names
    (IANA_SVC_NAME) have no regex metacharacters, so equality is the same test. A quoted number ("9400") is a
    string, compared with the port name, as IntOrString unmarshals it."""
    if target_port is None or isinstance(target_port, bool):
        return False
    if isinstance(target_port, int):
        return target_port != 0 and target_port == target.container_port_number
    return bool(target_port) and str(target_port) == target.container_port_name


def exporter_scrapes(graph: ResourceGraph) -> list[Scrape]:
    """ServiceMonitor endpoints that scrape an exporter Service on its metrics port."""

    def compute() -> list[Scrape]:
        found: list[Scrape] = []
        targets = [t for ts in exporter_services(graph).values() for t in ts]
        if not targets:
            return found
        for monitor in graph.of_kind("ServiceMonitor"):
            selector = monitor.spec.get("selector")
            if selector is None:
                continue
            for target in targets:
                if not matches(selector, target.service.labels) or not servicemonitor_namespaces_cover(
                    graph, monitor, target.service.effective_namespace
                ):
                    continue
                for i, endpoint in enumerate(monitor.spec.get("endpoints") or []):
                    if not isinstance(endpoint, Mapping):
                        continue
                    port = endpoint.get("port")
                    if (port is not None and str(port) == target.port_name) or (
                        port is None and _target_port_matches(endpoint.get("targetPort"), target)
                    ):
                        found.append(Scrape(monitor, i, endpoint, target))
        return found

    return graph.derived("dcgm-scrapes", lambda _: compute())



def monitors_meant_for_exporter(
    graph: ResourceGraph, scraping: set[str]
) -> list[tuple[Document, int, Mapping[str, Any]]]:
    """Endpoints of ServiceMonitors that scrape no exporter Service but whose selector matches the exporter's pod
    labels in its namespace: written for the exporter, waiting for its Service (the seed's case)."""
    found: list[tuple[Document, int, Mapping[str, Any]]] = []
    templates = [t for t in (pod_template_of(e) for e in dcgm.find_exporters(graph)) if t is not None]
    for monitor in graph.of_kind("ServiceMonitor"):
        selector = monitor.spec.get("selector")
        if monitor.ref in scraping or not selector:
            continue
        if not any(
            matches(selector, t.labels) and servicemonitor_namespaces_cover(graph, monitor, t.owner.effective_namespace)
            for t in templates
        ):
            continue
        for i, endpoint in enumerate(monitor.spec.get("endpoints") or []):
            if isinstance(endpoint, Mapping):
                found.append((monitor, i, endpoint))
    return found


def honor_labels(graph: ResourceGraph) -> tuple[bool | None, str]:
    """Does the exporter's scrape keep its `pod`/`namespace`/`container` labels? (value, explanation).

    None when the set shows no ServiceMonitor for the exporter. ServiceMonitors written for the exporter whose
    Service is missing (`monitors_meant_for_exporter`) count: the labels they would give are what KEDA would read.
    """
    if not dcgm.find_exporters(graph):
        return None, "no DCGM exporter workload in the manifests"
    scrapes = exporter_scrapes(graph)
    for scrape in scrapes:
        if scrape.endpoint.get("honorLabels") is not True:
            return False, (
                f"{scrape.monitor.ref} endpoint {scrape.endpoint_index} does not set honorLabels: true, so the "
                "exporter's pod/namespace labels arrive as exported_pod/exported_namespace"
            )
        for prom in selecting_prometheuses(
            graph, scrape.monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
        ):
            if prom.spec.get("overrideHonorLabels") is True:
                return False, (
                    f"{scrape.monitor.ref} sets honorLabels: true but {prom.ref} sets overrideHonorLabels: true"
                )
    if scrapes:
        return True, f"{scrapes[0].monitor.ref} sets honorLabels: true"
    meant = monitors_meant_for_exporter(graph, set())
    for monitor, index, endpoint in meant:
        if endpoint.get("honorLabels") is True:
            continue
        return False, (
            f"{monitor.ref} (written for the exporter; its Service is missing) endpoint {index} does not set "
            "honorLabels: true, so the exporter's pod/namespace labels would arrive as exported_pod/exported_namespace"
        )
    if meant:
        return True, f"{meant[0][0].ref} (written for the exporter; its Service is missing) sets honorLabels: true"
    return None, "no ServiceMonitor in the manifests scrapes the DCGM exporter"
