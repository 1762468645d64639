"""A real Prometheus server (Debian's `/usr/bin/prometheus`) on 127.0.0.1, configured as the Prometheus Operator
v0.93.0 would configure the set's `Prometheus` object: the scrape jobs of the ServiceMonitors it selects and the rule
files of the PrometheusRules it selects.

Scrape jobs (prometheus-operator v0.93.0 pkg/prometheus/promcfg.go generateServiceMonitorConfig), one per
ServiceMonitor endpoint that scrapes a DCGM exporter Service (`gpu_policy.metrics.scrape.exporter_scrapes`):
- `job_name: serviceMonitor/<namespace>/<name>/<endpoint index>`, `honor_labels` from the endpoint (forced false by
  the Prometheus' `overrideHonorLabels`), `scrape_interval`/`scrape_timeout`/`metrics_path`/`scheme` from the
  endpoint;
- `relabel_configs` exactly as the operator generates them for the `endpoints` role (its default): the
  `__tmp_prometheus_job_name` copy, one keep per `selector.matchLabels`/`matchExpressions` on the Service labels,
  the keep on the endpoint port name, the `node`/`pod`/`namespace`/`service`/`pod`/`container` target labels, the
  Failed/Succeeded pod filter, `targetLabels`, `podTargetLabels`, `job` from the Service name then from `jobLabel`,
  `endpoint` from the port, the endpoint's own `relabelings`, then the sharding rules with `$(SHARD)` rendered
  as `0` (one shard), as prometheus-config-reloader renders it.
- There is no Kubernetes service discovery here: each job has `static_configs`, one target per exporter pod, whose
  labels are the `__meta_kubernetes_*` labels Prometheus' `endpoints` role would attach for that pod behind the
  Service (prometheus/prometheus discovery/kubernetes/endpoints.go buildEndpoints, pod.go podLabels). Only the
  address differs: `127.0.0.1:<the pod's exporter port>` instead of `<pod IP>:9400`, since every synthetic exporter
  listens on its own loopback port. The relabelling then runs in the real Prometheus, so the target labels (`job`,
  `namespace`, `pod`, `service`, `endpoint`, `node`, `container`, `instance`) are Prometheus' own result.

Rule files (prometheus-operator v0.93.0 pkg/operator/rules.go): each selected PrometheusRule's `spec` as YAML in
`rules/prometheus-<name>-rulefiles-0/<namespace>-<name>-<uid>.yaml`. The operator validates each PrometheusRule with
Prometheus' rulefmt parser and SKIPS one that fails (event `InvalidConfiguration`, "PrometheusRule ... was rejected
due to invalid configuration"), because Prometheus refuses a configuration with any invalid rule file: at start it
exits ("error loading config ... one or more errors occurred while applying the new configuration"), on reload it
keeps the previous rule set for every file (checked with Debian's 2.42). The same is done here with `promtool check
rules` (the same parser), so an invalid PrometheusRule shows in the live Prometheus as groups that are absent, as on
a real cluster.

Debian's prometheus is 2.42 (the reference Prometheus pins v3.5.0). Differences that matter here, none changing what
the checks see: 2.42 has no `fallback_scrape_protocol`/content-type strictness of 3.x (the exporter sends
`text/plain; charset=utf-8`, which 3.x also accepts as the text format); 3.x range selectors are left-open and `.`
in regexes matches newlines (no query of the suite depends on either); rule group `labels` (3.0) are dropped by the
operator for older versions. Both answer /api/v1/targets, /api/v1/rules, /api/v1/alerts and /api/v1/query alike.
The discovery manager hands new targets to the scrape manager at most every 5 s (discovery/manager.go `updatert`),
so the first scrape comes about 5 s after start whatever the scrape interval.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.live.prometheus_checks import selected_rules
from gpu_policy.loading.document import Document
from gpu_policy.metrics.scrape import Scrape, exporter_scrapes, prometheus_selection_failure
from gpu_policy.testbed import ports, processes

PROMETHEUS_BINARY = "/usr/bin/prometheus"
STARTUP_SECONDS = 30.0
SHARD = "0"
_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


class PrometheusStartError(RuntimeError):
    """Prometheus did not become ready."""


def sanitize(name: str) -> str:
    """prometheus-operator sanitizeLabelName and Prometheus strutil.SanitizeLabelName: invalid characters -> `_`."""
    return _INVALID_LABEL_CHAR.sub("_", name)


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    return found or (PROMETHEUS_BINARY if Path(PROMETHEUS_BINARY).exists() else None)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range (see ports.py)."""
    return ports.free_ports(1)[0]


@dataclass(frozen=True)
class ExporterPod:
    """One exporter pod as the testbed runs it: a synthetic exporter on 127.0.0.1:`port`."""

    name: str
    namespace: str
    node: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    """The pod's labels (the DaemonSet template's)."""
    container: str = "dcgm-exporter"
    container_port_name: str | None = "metrics"
    container_port_number: int = 9400
    owner: str = "dcgm-exporter"
    """The DaemonSet's name (`__meta_kubernetes_pod_controller_name`)."""


def _label_pairs(prefix: str, labels: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in labels.items():
        out[f"{prefix}_label_{sanitize(str(key))}"] = str(value)
        out[f"{prefix}_labelpresent_{sanitize(str(key))}"] = "true"
    return out


def endpoints_target_labels(service: Document, port: Mapping[str, Any], pod: ExporterPod) -> dict[str, str]:
    """The `__meta_kubernetes_*` labels of the `endpoints` role for one ready pod behind `service`'s `port`
    (prometheus discovery/kubernetes/endpoints.go buildEndpoints + pod.go podLabels/containers)."""
    labels = {
        "__meta_kubernetes_namespace": service.effective_namespace,
        "__meta_kubernetes_endpoints_name": service.name,
        "__meta_kubernetes_service_name": service.name,
        **_label_pairs("__meta_kubernetes_service", service.labels),
        **_label_pairs("__meta_kubernetes_endpoints", service.labels),
        "__meta_kubernetes_endpoint_port_name": str(port.get("name") or ""),
        "__meta_kubernetes_endpoint_port_protocol": str(port.get("protocol") or "TCP"),
        "__meta_kubernetes_endpoint_ready": "true",
        "__meta_kubernetes_endpoint_node_name": pod.node,
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod.name,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_ip": "127.0.0.1",
        "__meta_kubernetes_pod_host_ip": "127.0.0.1",
        "__meta_kubernetes_pod_node_name": pod.node,
        "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_controller_kind": "DaemonSet",
        "__meta_kubernetes_pod_controller_name": pod.owner,
        **_label_pairs("__meta_kubernetes_pod", pod.labels),
        "__meta_kubernetes_pod_container_name": pod.container,
        "__meta_kubernetes_pod_container_port_number": str(pod.container_port_number),
        "__meta_kubernetes_pod_container_port_protocol": "TCP",
        "__meta_kubernetes_pod_container_init": "false",
    }
    if pod.container_port_name:
        labels["__meta_kubernetes_pod_container_port_name"] = pod.container_port_name
    return labels


def _relabel(config: Mapping[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor RelabelConfig (camelCase) as the operator writes it (generateRelabelConfig)."""
    out: dict[str, Any] = {}
    if config.get("sourceLabels"):
        out["source_labels"] = list(config["sourceLabels"])
    if config.get("separator") is not None:
        out["separator"] = config["separator"]
    if config.get("targetLabel"):
        out["target_label"] = config["targetLabel"]
    if config.get("regex"):
        out["regex"] = config["regex"]
    if config.get("modulus"):
        out["modulus"] = config["modulus"]
    if config.get("replacement") is not None:
        out["replacement"] = config["replacement"]
    if config.get("action"):
        out["action"] = str(config["action"]).lower()
    return out


def _selector_relabelings(selector: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in sorted(selector.get("matchLabels") or {}):
        value = selector["matchLabels"][key]
        k = sanitize(str(key))
        out.append({"action": "keep", "source_labels": [f"__meta_kubernetes_service_label_{k}",
                    f"__meta_kubernetes_service_labelpresent_{k}"], "regex": f"({value});true"})
    for expression in selector.get("matchExpressions") or []:
        k = sanitize(str(expression.get("key")))
        values = "|".join(str(v) for v in expression.get("values") or [])
        operator = expression.get("operator")
        both = [f"__meta_kubernetes_service_label_{k}", f"__meta_kubernetes_service_labelpresent_{k}"]
        present = [f"__meta_kubernetes_service_labelpresent_{k}"]
        if operator == "In":
            out.append({"action": "keep", "source_labels": both, "regex": f"({values});true"})
        elif operator == "NotIn":
            out.append({"action": "drop", "source_labels": both, "regex": f"({values});true"})
        elif operator == "Exists":
            out.append({"action": "keep", "source_labels": present, "regex": "true"})
        elif operator == "DoesNotExist":
            out.append({"action": "drop", "source_labels": present, "regex": "true"})
    return out


def service_monitor_job(
    scrape: Scrape, prometheus: Document | None, pods: Sequence[ExporterPod], interval: str | None = None
) -> dict[str, Any]:
    """The scrape job the operator generates for one ServiceMonitor endpoint, with static targets standing for the
    Kubernetes service discovery (see the module docstring). `interval` overrides the endpoint's (tests)."""
    monitor, endpoint, index = scrape.monitor, scrape.endpoint, scrape.endpoint_index
    override = bool(prometheus is not None and prometheus.spec.get("overrideHonorLabels") is True)
    job: dict[str, Any] = {
        "job_name": f"serviceMonitor/{monitor.effective_namespace}/{monitor.name}/{index}",
        "honor_labels": bool(endpoint.get("honorLabels") is True and not override),
    }
    if endpoint.get("honorTimestamps") is not None:
        job["honor_timestamps"] = bool(endpoint["honorTimestamps"])
    scrape_interval = interval or endpoint.get("interval")
    if scrape_interval:
        job["scrape_interval"] = scrape_interval
    if endpoint.get("scrapeTimeout") and not interval:
        job["scrape_timeout"] = endpoint["scrapeTimeout"]
    if endpoint.get("path"):
        job["metrics_path"] = endpoint["path"]
    if endpoint.get("scheme"):
        job["scheme"] = str(endpoint["scheme"]).lower()
    service = scrape.target.service
    port = (service.spec.get("ports") or [])[scrape.target.port_index]
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{pod.port}"], "labels": endpoints_target_labels(service, port, pod)} for pod in pods
    ]
    relabelings: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    relabelings += _selector_relabelings(monitor.spec.get("selector") or {})
    ep_port = endpoint.get("port")
    target_port = endpoint.get("targetPort")
    if ep_port:
        relabelings.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                            "regex": str(ep_port)})
    elif target_port is not None:
        source = "__meta_kubernetes_pod_container_port_" + ("number" if isinstance(target_port, int) else "name")
        relabelings.append({"action": "keep", "source_labels": [source], "regex": str(target_port)})
    kind_name = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
    relabelings += [
        {"source_labels": kind_name, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}",
         "target_label": "node"},
        {"source_labels": kind_name, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}",
         "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    if endpoint.get("filterRunning", True) is not False:
        relabelings.append({"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                            "regex": "(Failed|Succeeded)"})
    for label in monitor.spec.get("targetLabels") or []:
        relabelings.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(str(label))}"],
                            "target_label": sanitize(str(label)), "regex": "(.+)", "replacement": "${1}"})
    pod_target_labels = [*(monitor.spec.get("podTargetLabels") or []),
                         *((prometheus.spec.get("podTargetLabels") or []) if prometheus is not None else [])]
    for label in pod_target_labels:
        relabelings.append({"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(str(label))}"],
                            "target_label": sanitize(str(label)), "regex": "(.+)", "replacement": "${1}"})
    relabelings.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
                        "replacement": "${1}"})
    if monitor.spec.get("jobLabel"):
        relabelings.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(monitor.spec['jobLabel'])}"],
                            "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    if ep_port:
        relabelings.append({"target_label": "endpoint", "replacement": str(ep_port)})
    elif target_port is not None and str(target_port):
        relabelings.append({"target_label": "endpoint", "replacement": str(target_port)})
    relabelings += [_relabel(r) for r in endpoint.get("relabelings") or [] if isinstance(r, Mapping)]
    relabelings += [
        {"source_labels": ["__address__", "__tmp_hash"], "target_label": "__tmp_hash", "regex": "(.+);",
         "replacement": "$1", "action": "replace"},
        {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
        {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"], "regex": f"{SHARD};|.+;.+", "action": "keep"},
    ]
    job["relabel_configs"] = relabelings
    metric_relabelings = [_relabel(r) for r in endpoint.get("metricRelabelings") or [] if isinstance(r, Mapping)]
    if metric_relabelings:
        job["metric_relabel_configs"] = metric_relabelings
    return job


def rule_file_name(rule: Document) -> str:
    """`<namespace>-<name>-<uid>.yaml` (rules.go Select); a UID derived from namespace/name when the object has
    none (a manifest)."""
    uid = rule.metadata.get("uid") or uuid.uuid5(uuid.NAMESPACE_URL, f"gpu-policy:{rule.ref}")
    return f"{rule.effective_namespace}-{rule.name}-{uid}.yaml"


def _strip_empty_for(spec: Mapping[str, Any]) -> dict[str, Any]:
    """rules.go ValidateRule: an empty `for` or group `interval` is omitted."""
    groups = []
    for group in spec.get("groups") or []:
        if not isinstance(group, Mapping):
            groups.append(group)
            continue
        g = {k: v for k, v in group.items() if k != "partial_response_strategy" and not (k == "interval" and v == "")}
        g.pop("partialResponseStrategy", None)
        g["rules"] = [
            {k: v for k, v in r.items() if not (k == "for" and v in ("", None))} if isinstance(r, Mapping) else r
            for r in group.get("rules") or []
        ]
        groups.append(g)
    return {"groups": groups}


@dataclass
class RuleFiles:
    folder: Path
    written: dict[str, Document] = field(default_factory=dict)
    """File name -> PrometheusRule."""
    rejected: dict[str, str] = field(default_factory=dict)
    """PrometheusRule ref -> why the operator would reject it (promtool's message)."""


def write_rule_files(graph: ResourceGraph, prometheus: Document | None, folder: Path) -> RuleFiles:
    """Render the selected PrometheusRules as the operator does, skipping (as it does) those that fail validation."""
    from gpu_policy.promql.promtool import run_promtool

    folder.mkdir(parents=True, exist_ok=True)
    result = RuleFiles(folder)
    for rule in selected_rules(graph, prometheus):
        name = rule_file_name(rule)
        path = folder / name
        path.write_text(yaml.safe_dump(_strip_empty_for(rule.spec), sort_keys=False), encoding="utf-8")
        checked = run_promtool(["check", "rules", str(path)], timeout=30)
        if checked.returncode != 0:
            path.unlink()
            result.rejected[rule.ref] = checked.output.strip()
            continue
        result.written[name] = rule
    return result


def the_prometheus(graph: ResourceGraph) -> Document | None:
    found = graph.of_kind("Prometheus")
    return found[0] if found else None


def prometheus_config(
    graph: ResourceGraph,
    pods: Sequence[ExporterPod],
    rule_folder: Path,
    prometheus: Document | None = None,
    interval: str | None = None,
) -> dict[str, Any]:
    """prometheus.yml for the set's Prometheus: global intervals from its spec (or `interval`), the exporter scrape
    jobs of the ServiceMonitors it selects, and its rule files."""
    prometheus = prometheus or the_prometheus(graph)
    spec = prometheus.spec if prometheus is not None else {}
    jobs = []
    seen: set[tuple[str, int]] = set()
    for scrape in exporter_scrapes(graph):
        if prometheus is not None and prometheus_selection_failure(
            graph, prometheus, scrape.monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
        ):
            continue
        key = (scrape.monitor.ref, scrape.endpoint_index)
        if key in seen:
            continue
        seen.add(key)
        namespace = scrape.target.service.effective_namespace
        jobs.append(service_monitor_job(scrape, prometheus, [p for p in pods if p.namespace == namespace], interval))
    external = {}
    if prometheus is not None:
        external = {"prometheus": f"{prometheus.effective_namespace}/{prometheus.name}",
                    "prometheus_replica": f"prometheus-{prometheus.name}-0"}
    return {
        "global": {
            "scrape_interval": interval or spec.get("scrapeInterval") or "30s",
            "evaluation_interval": interval or spec.get("evaluationInterval") or "30s",
            "external_labels": external,
        },
        "rule_files": [str(rule_folder / "*.yaml")],
        "scrape_configs": jobs,
    }


@dataclass
class RunningPrometheus:
    url: str
    record: processes.ProcessRecord
    state_dir: Path
    rules: RuleFiles
    config: dict[str, Any]

    def stop(self) -> str:
        return processes.stop(self.record)

    def log(self) -> str:
        try:
            return Path(self.record.log).read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""


def start(
    graph: ResourceGraph,
    pods: Sequence[ExporterPod],
    state_dir: Path,
    interval: str | None = None,
    timeout: float = STARTUP_SECONDS,
    die_with_parent: bool = True,
) -> RunningPrometheus:
    """Write the configuration under `state_dir`, start Prometheus on 127.0.0.1:<free port>, wait (bounded) for
    /-/ready. Raises PrometheusStartError (with the log's tail) when it exits or is not ready in time."""
    binary = prometheus_binary()
    if binary is None:
        raise PrometheusStartError("prometheus is not installed (Debian package `prometheus`, see .ci/setup)")
    state_dir.mkdir(parents=True, exist_ok=True)
    prometheus = the_prometheus(graph)
    name = prometheus.name if prometheus is not None else "prometheus"
    rules = write_rule_files(graph, prometheus, state_dir / "rules" / f"prometheus-{name}-rulefiles-0")
    config = prometheus_config(graph, pods, rules.folder, prometheus, interval)
    config_path = state_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={state_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=2h",
        "--log.level=info",
    ]
    record = processes.start("prometheus", argv, state_dir / "prometheus.log", die_with_parent=die_with_parent)
    running = RunningPrometheus(f"http://127.0.0.1:{port}", record, state_dir, rules, config)
    deadline = time.monotonic() + timeout
    session = requests.Session()
    session.trust_env = False  # never through a proxy: 127.0.0.1 only
    while time.monotonic() < deadline:
        if not processes.is_ours(record):
            raise PrometheusStartError(f"prometheus exited at start:\n{running.log()}")
        try:
            if session.get(f"{running.url}/-/ready", timeout=1).status_code == 200:
                return running
        except requests.RequestException:
            pass
        time.sleep(0.2)
    running.stop()
    raise PrometheusStartError(f"prometheus not ready within {timeout:.0f} s:\n{running.log()}")


def exporter_pods_for(graph: ResourceGraph, nodes: Iterable[str], ports: Iterable[int]) -> list[ExporterPod]:
    """One exporter pod per node for the set's (first) exporter DaemonSet, named as the DaemonSet controller names
    pods (`<daemonset>-<5 random chars>`, here derived from the node)."""
    from gpu_policy.graph.workloads import pod_template_of
    from gpu_policy.metrics.dcgm import exporter_containers, find_exporters

    exporters = find_exporters(graph)
    if not exporters:
        return []
    daemonset = exporters[0]
    template = pod_template_of(daemonset)
    labels = {str(k): str(v) for k, v in (template.labels if template else {}).items()}
    container, port_name, port_number = "dcgm-exporter", "metrics", 9400
    if template is not None:
        found = exporter_containers(template) or template.containers()
        if found:
            spec = found[0][1]
            container = str(spec.get("name") or container)
            for p in spec.get("ports") or []:
                if isinstance(p, Mapping):
                    port_name = str(p.get("name")) if p.get("name") else ""
                    port_number = int(p.get("containerPort", port_number))
                    break
    out = []
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    for node, port in zip(nodes, ports, strict=True):
        digest = uuid.uuid5(uuid.NAMESPACE_URL, node).int
        suffix = "".join(alphabet[(digest >> (5 * i)) % len(alphabet)] for i in range(5))
        out.append(ExporterPod(f"{daemonset.name}-{suffix}", daemonset.effective_namespace, node, port, labels,
                               container, port_name or None, port_number, daemonset.name))
    return out

