"""The Prometheus configuration the testbed generates is what the Prometheus Operator v0.93.0 generates for the set's
ServiceMonitor and PrometheusRules (pkg/prometheus/promcfg.go generateServiceMonitorConfig, pkg/operator/rules.go),
and promtool accepts it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.loader import load_manifests
from gpu_policy.promql.promtool import run_promtool
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed import prometheus as tp


def _graph(folder: Path) -> ResourceGraph:
    return ResourceGraph(load_manifests([str(folder)]).documents)


def _variant(tmp_path: Path, file: str, old: str, new: str) -> ResourceGraph:
    folder = tmp_path / "manifests"
    shutil.copytree(reference_manifests_dir(), folder)
    text = (folder / file).read_text(encoding="utf-8")
    assert old in text
    (folder / file).write_text(text.replace(old, new), encoding="utf-8")
    return _graph(folder)


def _config(graph: ResourceGraph, folder: Path) -> dict[str, Any]:
    pods = tp.exporter_pods_for(graph, ["gpu-node-a"], [19400])
    return tp.prometheus_config(graph, pods, folder)


def test_reference_job_is_the_operators(tmp_path: Path) -> None:
    config = _config(_graph(reference_manifests_dir()), tmp_path)
    [job] = config["scrape_configs"]
    assert job["job_name"] == "serviceMonitor/gpu-monitoring/dcgm-exporter/0"
    assert job["honor_labels"] is True
    assert (job["scrape_interval"], job["metrics_path"]) == ("15s", "/metrics")
    relabel = job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}
    assert {"action": "keep", "regex": "(dcgm-exporter);true",
            "source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_name",
                              "__meta_kubernetes_service_labelpresent_app_kubernetes_io_name"]} in relabel
    assert {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": "metrics"} in relabel
    # job: the Service name, then the Service's jobLabel value; the ServiceMonitor's own relabeling after `endpoint`
    jobs = [r for r in relabel if r.get("target_label") == "job"]
    assert jobs[-1]["source_labels"] == ["__meta_kubernetes_service_label_app_kubernetes_io_name"]
    endpoint_at = relabel.index({"target_label": "endpoint", "replacement": "metrics"})
    assert relabel[endpoint_at + 1] == {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node",
                                        "action": "replace"}
    [static] = job["static_configs"]
    assert static["targets"] == ["127.0.0.1:19400"]
    assert static["labels"]["__meta_kubernetes_endpoint_address_target_kind"] == "Pod"
    assert static["labels"]["__meta_kubernetes_pod_node_name"] == "gpu-node-a"
    assert config["global"]["scrape_interval"] == "15s"  # Prometheus spec.scrapeInterval


def test_override_honor_labels_wins(tmp_path: Path) -> None:
    graph = _variant(tmp_path, "monitoring/prometheus.yaml", "overrideHonorLabels: false", "overrideHonorLabels: true")
    [job] = _config(graph, tmp_path)["scrape_configs"]
    assert job["honor_labels"] is False


def test_unselected_monitor_has_no_job(tmp_path: Path) -> None:
    graph = _variant(tmp_path, "monitoring/dcgm-exporter.yaml", "    prometheus: gpu-prometheus\n", "")
    assert _config(graph, tmp_path)["scrape_configs"] == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian package `prometheus`)")
def test_promtool_accepts_the_generated_configuration(tmp_path: Path) -> None:
    graph = _graph(reference_manifests_dir())
    rules = tp.write_rule_files(graph, tp.the_prometheus(graph), tmp_path / "rules")
    assert sorted(doc.ref for doc in rules.written.values()) == [
        "PrometheusRule/monitoring/gpu-alerts", "PrometheusRule/monitoring/gpu-telemetry-alerts"
    ]
    assert all(name.startswith(("monitoring-gpu-alerts-", "monitoring-gpu-telemetry-alerts-"))
               for name in rules.written)
    pods = tp.exporter_pods_for(graph, ["gpu-node-a", "gpu-node-b"], [19400, 19401])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(tp.prometheus_config(graph, pods, rules.folder)), encoding="utf-8")
    checked = run_promtool(["check", "config", str(path)], timeout=60)
    assert checked.returncode == 0, checked.output
    assert "2 rules found" in checked.output or "SUCCESS" in checked.output
