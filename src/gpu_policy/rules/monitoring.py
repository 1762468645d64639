"""GPU telemetry reaches Prometheus: exporter on every GPU node -> Service -> ServiceMonitor -> Prometheus.

Each link is a rule, so a finding names the broken link. Sets without the objects a link starts from (no DCGM
exporter DaemonSet, no Prometheus) are treated as partial sets: that link is not judged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from gpu_policy.graph.nodes.labels import ABSENT, ANY, LabelState, one_of
from gpu_policy.graph.nodes.model import (
    extended_resource_toleration,
    gpu_nodepools,
    guard_placement,
    placement_of,
    shapes_of,
)
from gpu_policy.graph.nodes.placement import Placement, every_node_failure
from gpu_policy.graph.nodes.pools import NodePool
from gpu_policy.graph.nodes.shapes import NodeShape
from gpu_policy.graph.scheduling import untolerated
from gpu_policy.graph.selectors import matches, matches_map
from gpu_policy.graph.workloads import pod_template_of
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.metrics import dcgm
from gpu_policy.metrics import scrape as chain
from gpu_policy.promql.sources import PromQLSource, promql_sources
from gpu_policy.promql.text import dcgm_metric_names, grouping_labels, selectors
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

POD_LABELS = ("pod", "namespace", "container")
NS_NAME_LABEL = "kubernetes.io/metadata.name"
PO_CRDS = (
    "prometheus-operator v0.93.0 example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml"
)


# -- shared indexes
# -------------------------------------------------------------------------------------------
def _exporters(ctx: CheckContext) -> list[Document]:
    return ctx.memo("dcgm-exporters", lambda: dcgm.find_exporters(ctx.graph))


def _gpu_pools(ctx: CheckContext) -> list[NodePool]:
    return gpu_nodepools(ctx)


def _queries(ctx: CheckContext) -> tuple[PromQLSource, ...]:
    return promql_sources(ctx.graph).all


# -- exporter placement
# ---------------------------------------------------------------------------------------
@rule(
    "dcgm-exporter-tolerates-gpu-taints",
    title="the DCGM exporter tolerates every taint of the GPU NodePools",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A DaemonSet pod lands on a tainted node only if it tolerates every NoSchedule and NoExecute
    taint (kubernetes pkg/scheduler/framework/plugins/tainttoleration). The DCGM exporter does not request
    nvidia.com/gpu, so EKS's ExtendedResourceToleration admission plugin adds nothing for it; a GPU node whose
    taint it does not tolerate has no GPU metrics: no alerts, and KEDA scalers reading those metrics see
    nothing.""",
    fix="Add a toleration for each listed taint to the exporter's pod template "
    "(or `operator: Exists` per key).",
    sources=(
        "kubernetes/api core/v1 toleration.go ToleratesTaint",
        "kubernetes/kubernetes plugin/pkg/admission/extendedresourcetoleration",
    ),
)
def exporter_tolerates_gpu_taints(ctx: CheckContext) -> Iterator[Violation]:
    for exporter in _exporters(ctx):
        template = pod_template_of(exporter)
        assert template is not None
        tolerations = placement_of(ctx, template).effective_tolerations(extended_resource_toleration(ctx))
        for pool in _gpu_pools(ctx):
            missing = untolerated(tolerations, pool.taints)
            if missing:
                shown = ", ".join(f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in missing)
                yield Violation(
                    doc=exporter,
                    message=f"does not tolerate {shown} of NodePool {pool.name}: "
                    "no exporter pod runs on those nodes",
                    path=(*template.spec_path, "tolerations"),
                    details=(f"NodePool {pool.name} is declared at {pool.doc.source}:{pool.doc.line}",),
                )


def _assuming_gfd_labels(pod: Placement, shape: NodeShape) -> NodeShape:
    """The shape with every nvidia.com/ label the pod selects on present as the pod wants it: what GPU Feature
    Discovery or the GPU Operator would set on a running node (their labels are all under nvidia.com/)."""
    wanted: dict[str, LabelState] = {}
    for key, value in pod.node_selector.items():
        if key.startswith(NVIDIA_LABEL_PREFIX):
            wanted[key] = one_of([value])
    for term in pod.terms or []:
        for key, operator, values in term:
            if not key.startswith(NVIDIA_LABEL_PREFIX) or key in wanted:
                continue
            wanted[key] = one_of(values[:1]) if operator == "In" and values else (
                ANY if operator in ("Exists", "Gt", "Lt") else ABSENT)
    return dataclasses.replace(shape, labels={**shape.labels, **wanted}) if wanted else shape


NVIDIA_LABEL_PREFIX = "nvidia.com/"


@rule(
    "dcgm-exporter-selects-gpu-nodes",
    title="the DCGM exporter's node selection matches every GPU NodePool's nodes",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The exporter's nodeSelector and required node affinity must hold on the labels GPU nodes
    really
    carry. Karpenter labels its nodes with the NodePool's template labels, the value it chose for each
    requirement
    and the instance type's well-known labels (karpenter.k8s.aws/instance-gpu-manufacturer=nvidia,
    instance-gpu-count, instance-gpu-name, ...); it does NOT set nvidia.com/gpu.present, which only NVIDIA GPU
    Feature Discovery (or the GPU Operator, which also sets nvidia.com/gpu.deploy.* labels) adds. Whether it runs
    is the cluster policy's gpuFeatureDiscovery.installed: when the policy does not say, a selection on
    nvidia.com/ labels is not judged (it holds where GFD runs); with installed: false it is a finding. A selector
    on a label the nodes lack schedules the exporter nowhere, silently.""",
    fix="""Select on a label every GPU node carries, e.g. `karpenter.k8s.aws/instance-gpu-manufacturer:
    nvidia`
    or a NodePool template label; or install GPU Feature Discovery and set gpuFeatureDiscovery.installed.""",
    sources=(
        "aws/karpenter-provider-aws pkg/providers/instancetype/types.go computeRequirements",
        "aws/karpenter-provider-aws test/suites/scheduling/suite_test.go (well-known GPU labels)",
        "NVIDIA/gpu-feature-discovery README (nvidia.com/gpu.present)",
    ),
)
def exporter_selects_gpu_nodes(ctx: CheckContext) -> Iterator[Violation]:
    gfd_known = "installed" in (ctx.policy.cluster.get("gpuFeatureDiscovery") or {})
    if _exporters(ctx):
        guard_placement(ctx)  # exporters × GPU pools × instance types
    for exporter in _exporters(ctx):
        template = pod_template_of(exporter)
        assert template is not None
        pod = placement_of(ctx, template)
        for pool in _gpu_pools(ctx):
            for shape in shapes_of(ctx, pool).shapes:
                failure = every_node_failure(pod, shape)
                if failure is not None and not gfd_known and every_node_failure(
                    pod, _assuming_gfd_labels(pod, shape)
                ) is None:
                    continue  # only GPU Feature Discovery labels are in question, and whether it runs is unknown
                if failure is not None:
                    why, path = failure
                    yield Violation(
                        doc=exporter,
                        path=path,
                        message=f"{why}: no exporter pod runs on {shape.describe()} nodes",
                    )
                    break


# -- scrape chain
# ---------------------------------------------------------------------------------------------
@rule(
    "dcgm-exporter-has-service",
    title="a Service exposes the DCGM exporter pods on a named metrics port",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A ServiceMonitor discovers targets through a Service's endpoints and names the Service port
    to scrape (`endpoints[].port` is `.spec.ports[].name`, prometheus-operator ServiceMonitor CRD). Without a
    Service in the exporter's namespace whose selector matches the exporter pods and whose named port reaches
    the exporter's listen port (DCGM_EXPORTER_LISTEN, default :9400), nothing scrapes the GPUs. A Service that
    selects the pods without such a port is a finding; no Service selecting them at all is "not checked" unless
    the set is declared complete (it may come from a chart).""",
    fix="""Add a Service in the exporter's namespace selecting the exporter pod labels, with a named port
    (e.g. `name: metrics`) whose targetPort is the exporter's container port.""",
    sources=("prometheus-operator v0.93.0 monitoring.coreos.com_servicemonitors.yaml (endpoints[].port)",),
)
def exporter_has_service(ctx: CheckContext) -> Iterator[Violation]:
    services = chain.exporter_services(ctx.graph)
    for exporter in _exporters(ctx):
        if services.get(exporter.ref):
            continue
        template = pod_template_of(exporter)
        assert template is not None
        message = (
            f"no Service in namespace {exporter.effective_namespace} selects pods labelled {template.labels} "
            "with a named port reaching the exporter's listen port"
        )
        selecting = [
            s for s in ctx.graph.of_kind("Service")
            if s.effective_namespace == exporter.effective_namespace
            and isinstance(s.spec.get("selector"), Mapping) and s.spec.get("selector")
            and matches_map(s.spec["selector"], template.labels)
        ]
        if selecting:
            yield Violation(
                doc=exporter,
                path=(*template.path, "metadata", "labels"),
                message=message + f": {', '.join(s.ref for s in selecting)} selects them, but none of its ports is "
                "named and reaches the listen port",
            )
            continue
        yield from ctx.missing(
            exporter, (*template.path, "metadata", "labels"),
            f"{exporter.ref}: {message}; no Service in the set selects them",
        )


def _pod_monitored(ctx: CheckContext, exporter: Document) -> bool:
    """A PodMonitor in the set selects the exporter's pods in their namespace (it scrapes them without a Service)."""
    template = pod_template_of(exporter)
    if template is None:
        return False
    for monitor in ctx.graph.of_kind("PodMonitor"):
        selector = monitor.spec.get("selector")
        if selector is None or not matches(selector, template.labels):
            continue
        if chain.servicemonitor_namespaces_cover(ctx.graph, monitor, exporter.effective_namespace):
            return True
    return False


def _meant_for(monitor: Document, service: Document) -> bool:
    """A ServiceMonitor written for this exporter Service: its selector matches the Service's labels, shares a
    label key=value with them, or names the DCGM exporter (monitor name or a selector value)."""
    selector = monitor.spec.get("selector")
    if not isinstance(selector, Mapping):
        return False
    if matches(selector, service.labels):
        return True
    wanted = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
    if any(service.labels.get(k) == v for k, v in wanted.items()):
        return True
    return "dcgm" in monitor.name.lower() or any("dcgm" in v.lower() for v in wanted.values())


def _lacking_labels(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> str:
    wanted = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
    return ", ".join(f"{k}={v}" for k, v in wanted.items() if str(labels.get(k)) != v)


@rule(
    "dcgm-exporter-is-scraped",
    title="a ServiceMonitor scrapes the DCGM exporter Service by port name",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The Prometheus Operator turns a ServiceMonitor into scrape configs for the Services its
    `selector` matches, in the namespaces `namespaceSelector` names (default: the ServiceMonitor's own),
    on the port `endpoints[].port` names. A mismatch in any of the three yields no target and no error. A
    ServiceMonitor (or a PodMonitor selecting the exporter pods) absent from the set is "not checked" unless the
    set is declared complete; one written for it (it matches or shares a label of the Service, or names the DCGM
    exporter) that misses its labels, namespace or port is a finding that names it and both namespaces.""",
    fix="""Point a ServiceMonitor at the exporter Service: selector = the Service's labels, namespaceSelector
    matchNames = its namespace, endpoints[].port = its port name.""",
    sources=("prometheus-operator v0.93.0 monitoring.coreos.com_servicemonitors.yaml",),
)
def exporter_is_scraped(ctx: CheckContext) -> Iterator[Violation]:
    scraped = {s.target.service.ref for s in chain.exporter_scrapes(ctx.graph)}
    for targets in chain.exporter_services(ctx.graph).values():
        for service in {t.service.ref: t for t in targets}.values():
            if service.service.ref in scraped or _pod_monitored(ctx, service.exporter):
                continue
            message = (
                f"no ServiceMonitor selects this Service (labels {service.service.labels or '{}'}, "
                f"namespace {service.service.effective_namespace}) with endpoints[].port {service.port_name}"
            )
            near = [m for m in ctx.graph.of_kind("ServiceMonitor") if _meant_for(m, service.service)]
            if not near:
                yield from ctx.missing(
                    service.service, ("metadata", "labels"),
                    f"{service.service.ref}: {message}; no ServiceMonitor in the set selects its labels",
                )
                continue
            why = []
            for monitor in near:
                namespace = service.service.effective_namespace
                wrong: list[str] = []
                if not matches(monitor.spec.get("selector") or {}, service.service.labels):
                    lacking = _lacking_labels(monitor.spec.get("selector") or {}, service.service.labels)
                    wrong.append(f"its selector asks for {lacking or monitor.spec.get('selector')}, which the "
                                 "Service's labels do not carry")
                if not chain.servicemonitor_namespaces_cover(ctx.graph, monitor, namespace):
                    ns_selector = monitor.spec.get("namespaceSelector") or {}
                    covered = (", ".join(str(n) for n in ns_selector.get("matchNames") or [])
                               if isinstance(ns_selector, Mapping) and ns_selector.get("matchNames")
                               else f"its own namespace {monitor.effective_namespace}")
                    wrong.append(f"its namespaceSelector covers {covered}, not the Service's namespace {namespace}")
                if wrong:
                    why.append(f"{monitor.ref} (namespace {monitor.effective_namespace}) is meant for it but "
                               + "; and ".join(wrong))
                else:
                    ports = [str(e.get("port") if e.get("port") is not None else f"targetPort {e.get('targetPort')}")
                             for e in monitor.spec.get("endpoints") or [] if isinstance(e, Mapping)]
                    why.append(f"{monitor.ref} selects it but scrapes {', '.join(ports) or 'no endpoint'}, not "
                               f"port {service.port_name}")
            yield Violation(
                doc=service.service,
                path=("metadata", "labels"),
                message=f"{message}: " + "; ".join(why),
            )


_TEMPLATE_LABEL = re.compile(r"(?:\$labels|\.Labels)\.(pod|namespace|container)\b")


def _pod_labels_used(expr: str) -> set[str]:
    """pod/namespace/container used in label matchers or in by/without/on/ignoring lists."""
    used = {m.name for s in selectors(expr) for m in s.matchers} | set(grouping_labels(expr))
    return used & set(POD_LABELS)


def _queries_needing_pod_labels(ctx: CheckContext) -> list[tuple[PromQLSource, set[str]]]:
    needing: list[tuple[PromQLSource, set[str]]] = []
    for query in _queries(ctx):
        if not dcgm_metric_names(query.expr):
            continue
        used = _pod_labels_used(query.expr)
        if query.kind == "rule":
            rule_obj = query.doc.get(query.path[:-1]) or {}
            for text in (rule_obj.get("annotations") or {}).values():
                used.update(_TEMPLATE_LABEL.findall(str(text)))
        if used:
            needing.append((query, used))
    return needing


@rule(
    "dcgm-scrape-keeps-pod-labels",
    title="the DCGM scrape keeps the exporter's pod, namespace and container labels",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""With DCGM_EXPORTER_KUBERNETES=true every series carries the pod, namespace and container
    using
    the GPU; the Prometheus Operator adds target labels with the same names (the exporter pod's own).
    Unless the
    endpoint sets `honorLabels: true`, Prometheus keeps the target's and renames the exporter's to
    exported_pod
    etc. (NVIDIA/dcgm-exporter PR #76, issue #85), so a query such as DCGM_FI_DEV_GPU_UTIL{pod=~"model-a-.*"}
    matches nothing: the KEDA scaler reads 0 and alerts never name the workload. `Prometheus.spec.
    overrideHonorLabels: true` forces honorLabels off for every ServiceMonitor.""",
    fix="Set `honorLabels: true` on the ServiceMonitor endpoint scraping the exporter (and do not set "
    "overrideHonorLabels on the Prometheus).",
    sources=("NVIDIA/dcgm-exporter#76", "NVIDIA/dcgm-exporter#85", PO_CRDS + " (overrideHonorLabels)"),
)
def scrape_keeps_pod_labels(ctx: CheckContext) -> Iterator[Violation]:
    scrapes = chain.exporter_scrapes(ctx.graph)
    meant = chain.monitors_meant_for_exporter(ctx.graph, {s.monitor.ref for s in scrapes})
    if not scrapes and not meant:
        return
    needing = _queries_needing_pod_labels(ctx)
    if not needing:
        return
    query, used = needing[0]
    reason = f"{query.doc.ref} {query.where} selects DCGM series by {', '.join(sorted(used))}" + (
        f" (and {len(needing) - 1} more queries)" if len(needing) > 1 else ""
    )
    for monitor, index, endpoint in meant:
        if endpoint.get("honorLabels") is True:
            continue
        yield Violation(
            doc=monitor,
            path=("spec", "endpoints", index),
            message=(
                f"endpoint {index} does not set honorLabels: true; this ServiceMonitor selects the exporter's pod "
                f"labels (no Service carries them yet: see dcgm-exporter-has-service), and once it scrapes the "
                f"exporter its pod/namespace/container labels become exported_*; {reason}"
            ),
        )
    seen_prom: set[str] = set()
    for scrape in scrapes:
        if scrape.endpoint.get("honorLabels") is not True:
            yield Violation(
                doc=scrape.monitor,
                path=("spec", "endpoints", scrape.endpoint_index),
                message=(
                    f"endpoint {scrape.endpoint_index} scraping {scrape.target.service.ref} does not set "
                    f"honorLabels: true, so the exporter's pod/namespace/container labels become exported_*; {reason}"
                ),
            )
        for prom in chain.selecting_prometheuses(
            ctx.graph, scrape.monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
        ):
            if prom.spec.get("overrideHonorLabels") is True and prom.ref not in seen_prom:
                seen_prom.add(prom.ref)
                yield Violation(
                    doc=prom,
                    path=("spec", "overrideHonorLabels"),
                    message=(
                        f"overrideHonorLabels: true forces honorLabels off for {scrape.monitor.ref}; {reason}"
                    ),
                )


def _pod_label_problems(exporter: Document) -> Iterator[tuple[FieldPath, str]]:
    """Why an exporter container's series would not carry pod/namespace/container: (field, reason)."""
    template = pod_template_of(exporter)
    assert template is not None
    for path, container in dcgm.exporter_containers(template):
        name = container.get("name")
        mode = dcgm.kubernetes_mode(path, container)
        if mode.problem is not None:
            yield mode.configured_at or path, f"container {name}: {mode.problem}"
            continue
        if mode.value is not True:
            yield mode.configured_at or path, (
                f"container {name} does not run in Kubernetes mode ("
                + ("DCGM_EXPORTER_KUBERNETES / -k is false" if mode.configured_at else "-k / --kubernetes / "
                   f"{dcgm.KUBERNETES_ENV} is not set, default false")
                + "): its series carry no pod, namespace or container label"
            )
            continue
        old = dcgm.old_namespace_mode(path, container)
        if old.problem is not None:
            yield old.configured_at or path, f"container {name}: {old.problem}"
        elif old.value is True:
            yield old.configured_at or path, (
                f"container {name} runs with the old 1.x namespace (use-old-namespace): the labels are "
                "pod_name, pod_namespace and container_name, not pod, namespace and container"
            )
        # the kubelet pod-resources mount is dcgm-exporter-pod-resources-mounted's finding


def _pod_resources_problems(exporter: Document) -> Iterator[tuple[FieldPath, str]]:
    """Exporter containers in Kubernetes mode whose pod-resources socket is not the node kubelet's."""
    template = pod_template_of(exporter)
    assert template is not None
    for path, container in dcgm.exporter_containers(template):
        name = container.get("name")
        mode = dcgm.kubernetes_mode(path, container)
        if mode.value is not True:
            continue
        socket = dcgm.pod_resources_socket(path, container)
        if socket.value is None:
            yield socket.configured_at or path, f"container {name}: {socket.problem}"
            continue
        socket_dir = str(PurePosixPath(str(socket.value)).parent)
        host_dir = dcgm.mounted_host_path(template, container, socket_dir)
        if host_dir != dcgm.KUBELET_POD_RESOURCES_DIR:
            found = "no hostPath volume is mounted there" if host_dir is None else f"it is mounted from {host_dir}"
            yield (*path, "volumeMounts") if container.get("volumeMounts") else path, (
                f"container {name} runs in Kubernetes mode (-k / {dcgm.KUBERNETES_ENV}) and reads the kubelet "
                f"PodResources socket {socket.value}, but {found}: the exporter finds no socket, skips the pod "
                "mapping without an error, and no series carries pod, namespace or container"
            )


@rule(
    "dcgm-exporter-pod-resources-mounted",
    title="a DCGM exporter in Kubernetes mode mounts the kubelet pod-resources directory",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""In Kubernetes mode (`-k` / `--kubernetes` / DCGM_EXPORTER_KUBERNETES) the exporter maps each GPU
    to the pod using it through the kubelet PodResources API socket (--pod-resources-kubelet-socket /
    DCGM_POD_RESOURCES_KUBELET_SOCKET, default /var/lib/kubelet/pod-resources/kubelet.sock; NVIDIA/dcgm-exporter
    4.8.2 pkg/cmd/app.go). PodMapper.getMappings stats that path and, when it does not exist, returns no mapping
    and no error (internal/pkg/transformation/kubernetes.go: `if os.IsNotExist(err) { return nil, nil, nil, nil
    }`): without a hostPath mount of the node's /var/lib/kubelet/pod-resources the series silently carry no pod,
    namespace or container label, although Kubernetes mode was asked for (kubernetes.io docs, device plugins,
    "Monitoring device plugin resources").""",
    fix="""Add a hostPath volume /var/lib/kubelet/pod-resources and mount it (readOnly) at the socket's directory,
    /var/lib/kubelet/pod-resources by default.""",
    sources=(
        "NVIDIA/dcgm-exporter 4.5.3-4.8.2 internal/pkg/transformation/kubernetes.go PodMapper.getMappings",
        "NVIDIA/dcgm-exporter 4.5.3-4.8.2 pkg/cmd/app.go (kubernetes, pod-resources-kubelet-socket)",
        "kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins (pod-resources)",
    ),
)
def exporter_pod_resources_mounted(ctx: CheckContext) -> Iterator[Violation]:
    for exporter in _exporters(ctx):
        for path, problem in _pod_resources_problems(exporter):
            yield Violation(doc=exporter, path=path, message=problem)


@rule(
    "dcgm-exporter-labels-pods",
    title="the DCGM exporter runs in Kubernetes mode when queries use its pod labels",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The exporter adds the pod, namespace and container of the workload using each GPU only in
    Kubernetes mode: `-k` / `--kubernetes` / DCGM_EXPORTER_KUBERNETES, a bool flag that defaults to false
    (NVIDIA/dcgm-exporter pkg/cmd/app.go). urfave/cli v2 parses its env var with Go's strconv.ParseBool
    (urfave/cli flag_bool.go), so only 1/t/T/TRUE/true/True turn it on and a value such as "yes" is an error the
    exporter exits on. With `-o` / DCGM_EXPORTER_USE_OLD_NAMESPACE the labels are named pod_name, pod_namespace
    and container_name instead (internal/pkg/transformation/const.go, kubernetes.go). The mapping comes from the
    kubelet PodResources API socket (--pod-resources-kubelet-socket, default
    /var/lib/kubelet/pod-resources/kubelet.sock), so the node's /var/lib/kubelet/pod-resources must be mounted
    (kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins, "Monitoring device plugin
    resources"; judged by dcgm-exporter-pod-resources-mounted). When a PrometheusRule, KEDA trigger or dashboard
    selects DCGM series by pod, namespace or container (or an alert templates them), an exporter without those
    labels makes the query match nothing.""",
    fix="""On every exporter container set DCGM_EXPORTER_KUBERNETES: "true" (or `-k`), drop
    DCGM_EXPORTER_USE_OLD_NAMESPACE, and mount hostPath /var/lib/kubelet/pod-resources at
    /var/lib/kubelet/pod-resources (readOnly).""",
    sources=(
        "NVIDIA/dcgm-exporter pkg/cmd/app.go (kubernetes, use-old-namespace, pod-resources-kubelet-socket)",
        "NVIDIA/dcgm-exporter internal/pkg/transformation/const.go (pod vs pod_name labels)",
        "urfave/cli v2 flag_bool.go (strconv.ParseBool)",
        "kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins (pod-resources)",
    ),
)
def exporter_labels_pods(ctx: CheckContext) -> Iterator[Violation]:
    exporters = _exporters(ctx)
    if not exporters:
        return
    needing = _queries_needing_pod_labels(ctx)
    if not needing:
        return
    query, used = needing[0]
    reason = f"{query.doc.ref} {query.where} uses the DCGM label(s) {', '.join(sorted(used))}" + (
        f" (and {len(needing) - 1} more queries)" if len(needing) > 1 else ""
    )
    for exporter in exporters:
        for path, problem in _pod_label_problems(exporter):
            yield Violation(doc=exporter, path=path, message=f"{problem}; {reason}")


def _not_selected(ctx: CheckContext, kind: str, selector_field: str, ns_field: str) -> Iterator[Violation]:
    proms = ctx.graph.of_kind("Prometheus")
    if not proms:
        return  # the set does not declare the Prometheus: a partial set, judged where it is complete
    for obj in ctx.graph.of_kind(kind):
        reasons = [chain.prometheus_selection_failure(ctx.graph, p, obj, selector_field, ns_field) for p in proms]
        if all(r is not None for r in reasons):
            yield Violation(
                doc=obj,
                path=("metadata", "labels"),
                message=f"no Prometheus picks up this {kind}: " + "; ".join(str(r) for r in reasons),
            )


@rule(
    "servicemonitor-selected-by-prometheus",
    title="every ServiceMonitor is selected by a Prometheus",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A Prometheus scrapes a ServiceMonitor only if spec.serviceMonitorSelector matches its labels
    (null selects nothing, {} everything) and spec.serviceMonitorNamespaceSelector matches its namespace (null
    means the Prometheus' own namespace only), per the Prometheus Operator v0.93.0 API. An unselected
    ServiceMonitor is never scraped and no error is shown. Judged only when the set declares a Prometheus.""",
    fix="""Label the ServiceMonitor to match serviceMonitorSelector, and make serviceMonitorNamespaceSelector
    cover its namespace (e.g. matchLabels kubernetes.io/metadata.name: <namespace>).""",
    sources=(PO_CRDS + " (serviceMonitorSelector, serviceMonitorNamespaceSelector)",),
)
def servicemonitor_selected(ctx: CheckContext) -> Iterator[Violation]:
    yield from _not_selected(
        ctx, "ServiceMonitor", "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
    )


@rule(
    "prometheusrule-selected-by-prometheus",
    title="every PrometheusRule is loaded by a Prometheus",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A Prometheus loads a PrometheusRule only if spec.ruleSelector matches its labels (null
    selects
    nothing, {} everything) and spec.ruleNamespaceSelector matches its namespace (null means the
    Prometheus' own
    namespace only), per the Prometheus Operator v0.93.0 API. An unselected rule never evaluates: its alerts
    can never fire. Judged only when the set declares a Prometheus.""",
    fix="Label the PrometheusRule to match ruleSelector, and make ruleNamespaceSelector cover its namespace.",
    sources=(PO_CRDS + " (ruleSelector, ruleNamespaceSelector)",),
)
def prometheusrule_selected(ctx: CheckContext) -> Iterator[Violation]:
    yield from _not_selected(ctx, "PrometheusRule", "ruleSelector", "ruleNamespaceSelector")


# -- metrics exist
# --------------------------------------------------------------------------------------------
@rule(
    "dcgm-metrics-are-collected",
    title="every DCGM metric queried is in the exporter's collectors",
    area="monitoring",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The exporter only exports the DCGM fields listed (uncommented) in its collector CSV:
    `-f`/`--collectors`, else DCGM_EXPORTER_COLLECTORS, else /etc/dcgm-exporter/default-counters.csv
    (NVIDIA/dcgm-exporter pkg/cmd/app.go). When `-m`/`--configmap-data`/DCGM_EXPORTER_CONFIGMAP_DATA names a
    ConfigMap (`<namespace>:<name>`), GetCounterSet (internal/pkg/counters/counter_config.go) reads the list from
    its `metrics` key through the API instead and exits when it cannot; the suite then reads that ConfigMap from
    the set, and reports the list as unreadable (not as missing metrics) when the ConfigMap is not in the set. A
    PrometheusRule, KEDA trigger or dashboard panel querying a
    field that
    is not collected gets no series: alerts never fire, scalers read nothing (or 0 with ignoreNullValues) and
    panels stay empty. The CSVs are read for the exporter release policies/cluster.yaml pins
    (`<dcgmVersion>-<version>`) from GPU_POLICY_DCGM_CSV_PATH. Judged only when the set declares the
    exporter.""",
    fix="""Query a collected field (e.g. FB_USED + FB_FREE instead of FB_TOTAL), or enable the field in the
    collector CSV the exporter loads (a ConfigMap mounted over it, referenced by
    DCGM_EXPORTER_COLLECTORS).""",
    sources=(
        "NVIDIA/dcgm-exporter pkg/cmd/app.go (collectors, configmap-data flags)",
        "NVIDIA/dcgm-exporter internal/pkg/counters/counter_config.go GetCounterSet",
        "NVIDIA/dcgm-exporter etc/*.csv",
    ),
)
def dcgm_metrics_are_collected(ctx: CheckContext) -> Iterator[Violation]:
    exporters = _exporters(ctx)
    if not exporters:
        return
    collected: set[str] = set()
    files: set[str] = set()
    readable = False
    for exporter in exporters:
        for entry in dcgm.collectors_of(ctx.graph, exporter, ctx.policy.cluster):
            if entry.fields is None and entry.outside_set:
                # partial set: the list lives elsewhere (README "Partial manifest sets"); complete set: a finding
                yield from ctx.missing(
                    exporter, entry.configured_at,
                    f"{exporter.kind} {exporter.namespace}/{exporter.name}: {entry.source}; the DCGM metrics "
                    "queried are not checked against its collectors",
                )
                continue
            if entry.fields is None:
                yield Violation(
                    doc=exporter,
                    path=entry.configured_at,
                    message=(
                        f"{entry.source}: the metrics collector list {entry.file} enables cannot be checked"
                        if entry.source.startswith("no collector data")
                        else f"collector list {entry.file} could not be read ({entry.source}): the metrics it "
                        "exports cannot be checked"
                    ),
                )
                continue
            readable = True
            collected |= entry.fields
            files.add(entry.file)
    if not readable:
        return
    for query in _queries(ctx):
        missing = [m for m in dcgm_metric_names(query.expr) if m not in collected]
        if missing:
            yield Violation(
                doc=query.doc,
                path=query.path,
                line=query.line,
                message=(
                    f"{query.where} queries {', '.join(missing)}, which the DCGM exporter does not collect "
                    f"(collectors: {', '.join(sorted(files))})"
                ),
            )


@rule(
    "dcgm-exporter-version-pinned",
    title="the DCGM exporter image is the release the cluster policy pins",
    area="monitoring",
    rule_class=RuleClass.POLICY,
    rationale="""Which DCGM fields exist, and what each collector file enables, depend on the exporter
    release; dcgm-exporter images are tagged `<DCGM version>-<exporter version>-<os>`. An organisation that runs
    exactly one release says so with the cluster policy's dcgmExporter.requirePinnedVersion (the reference
    profile does); the image must then be the release of dcgmExporter.dcgmVersion / version. Without the switch
    nothing is judged.""",
    fix="Use the image tag `<dcgmVersion>-<version>-<os>` of the cluster policy (or update the policy).",
    sources=("NVIDIA/dcgm-exporter release tags (e.g. 4.5.3-4.8.2)",),
)
def exporter_version_pinned(ctx: CheckContext) -> Iterator[Violation]:
    if (ctx.policy.cluster.get("dcgmExporter") or {}).get("requirePinnedVersion") is not True:
        return
    release = dcgm.release_folder(ctx.policy.cluster)
    for exporter in _exporters(ctx):
        template = pod_template_of(exporter)
        assert template is not None
        for path, container in dcgm.exporter_containers(template):
            image = str(container.get("image") or "")
            tag = dcgm.image_tag(image)
            if tag is None or tag == release or tag.startswith(release + "-"):
                continue  # untagged images are the security rule's concern
            yield Violation(
                doc=exporter,
                path=(*path, "image"),
                message=f"image tag {tag} is not the pinned release {release} ({image}; cluster policy "
                f"{ctx.policy.source_of('cluster')})",
            )
