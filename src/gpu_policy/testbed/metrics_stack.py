"""GPU telemetry for the testbed: one synthetic DCGM exporter process per GPU node and a real Prometheus scraping them
as the set's ServiceMonitor means, with the set's PrometheusRules loaded. Used by the live tests and the drills.

    with MetricsStack(graph, {"gpu-node-a": [gpu(0, pod=("inference", "model-a-serving-6d8f9c7b5-x0k2m", "vllm"),
                                                 DCGM_FI_DEV_GPU_UTIL=40)]}, state_dir) as stack:
        stack.wait_scraped()
        stack.set_values("gpu-node-a", 0, DCGM_FI_DEV_GPU_UTIL=95)   # the exporter re-reads its trace
        stack.client.query("sum(DCGM_FI_DEV_GPU_UTIL)")

Everything binds 127.0.0.1; every wait is bounded; `close()` stops what was started, by pid.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.live.prometheus import PrometheusClient
from gpu_policy.testbed import dcgm_exporter, processes
from gpu_policy.testbed import prometheus as testbed_prometheus

SCRAPE_WAIT_SECONDS = 30.0


def gpu(index: int, pod: tuple[str, str, str] | None = None, **values: Any) -> dict[str, Any]:
    """One GPU of a trace: its index, the pod using it (namespace, name, container), field values or steps."""
    entry: dict[str, Any] = {"index": index, "values": dict(values)}
    if pod is not None:
        entry["pod"] = {"namespace": pod[0], "name": pod[1], "container": pod[2]}
    return entry


class MetricsStack:
    def __init__(
        self,
        graph: ResourceGraph,
        nodes: Mapping[str, Sequence[Mapping[str, Any]]],
        state_dir: Path,
        interval: str = "1s",
        pods: Sequence[testbed_prometheus.ExporterPod] | None = None,
    ) -> None:
        """`nodes`: node name -> its GPUs (`gpu(...)` entries). `pods`: the exporter pods to stand for (names from a
        cluster, one per node, each with a free port); default: one per node named as the DaemonSet controller
        would."""
        self.graph = graph
        self.state_dir = state_dir
        self.interval = interval
        self.traces: dict[str, dict[str, Any]] = {
            node: {"node": node, "gpus": [dict(g) for g in gpus]} for node, gpus in nodes.items()
        }
        if pods is not None:
            self.pods = list(pods)
        else:
            ports = [testbed_prometheus.free_port() for _ in nodes]
            self.pods = testbed_prometheus.exporter_pods_for(graph, list(nodes), ports)
        self.exporters: dict[str, processes.ProcessRecord] = {}
        self.prometheus: testbed_prometheus.RunningPrometheus | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def trace_path(self, node: str) -> Path:
        return self.state_dir / "exporters" / f"{node}.yaml"

    def start(self) -> MetricsStack:
        (self.state_dir / "exporters").mkdir(parents=True, exist_ok=True)
        try:
            for pod in self.pods:
                self.start_exporter(pod.node)
            self.prometheus = testbed_prometheus.start(self.graph, self.pods, self.state_dir / "prometheus",
                                                       interval=self.interval)
        except BaseException:
            self.close()
            raise
        return self

    def start_exporter(self, node: str) -> None:
        pod = next(p for p in self.pods if p.node == node)
        dcgm_exporter.write_trace(self.trace_path(node), self.traces[node])
        record = dcgm_exporter.start_process(self.trace_path(node), pod.port,
                                             self.state_dir / "exporters" / f"{node}.log")
        self.exporters[node] = record
        if not dcgm_exporter.wait_serving(pod.port):
            raise RuntimeError(f"synthetic exporter for {node} did not serve on 127.0.0.1:{pod.port}: {record.log}")

    def stop_exporter(self, node: str) -> None:
        record = self.exporters.pop(node, None)
        if record is not None:
            processes.stop(record)

    def close(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        for node in list(self.exporters):
            self.stop_exporter(node)

    def __enter__(self) -> MetricsStack:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- use ---------------------------------------------------------------------------------------------------
    @property
    def client(self) -> PrometheusClient:
        if self.prometheus is None:
            raise RuntimeError("the metrics stack is not running")
        return PrometheusClient(self.prometheus.url)

    def set_values(self, node: str, index: int, **values: Any) -> None:
        """Change GPU `index` of `node`'s trace (numbers or [[seconds, value], ...] steps); the exporter serves the
        new values from its next request on."""
        for entry in self.traces[node]["gpus"]:
            if entry.get("index") == index:
                entry.setdefault("values", {}).update(values)
                break
        else:
            raise KeyError(f"{node} has no GPU {index}")
        dcgm_exporter.write_trace(self.trace_path(node), self.traces[node])

    def set_gpus(self, node: str, gpus: Sequence[Mapping[str, Any]]) -> None:
        """Replace `node`'s GPUs (`gpu(...)` entries: pods come and go); written only when they changed."""
        new = [dict(g) for g in gpus]
        if new == self.traces[node]["gpus"]:
            return
        self.traces[node]["gpus"] = new
        dcgm_exporter.write_trace(self.trace_path(node), self.traces[node])

    def wait_scraped(self, timeout: float = SCRAPE_WAIT_SECONDS, after: float | None = None) -> None:
        """Wait until every running exporter's target has been scraped successfully (after unix time `after`, when
        given), and every stopped one's has failed."""
        client = self.client
        deadline = time.monotonic() + timeout
        running = {p.name for p in self.pods if p.node in self.exporters}
        last = "no targets"
        while time.monotonic() < deadline:
            targets = {t.labels.get("pod", ""): t for t in client.targets()}
            pending = [
                name for name in (p.name for p in self.pods)
                if name not in targets
                or targets[name].health != ("up" if name in running else "down")
                or (after is not None and _scraped_at(targets[name].last_scrape) < after)
            ]
            if not pending:
                return
            last = f"waiting for {', '.join(pending)}"
            time.sleep(0.2)
        raise TimeoutError(f"Prometheus did not scrape the exporters within {timeout:.0f} s ({last})")

    def wait_for(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll `predicate(client)` (bounded) until it returns something truthy; return that."""
        client = self.client
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(client)
            if found:
                return found
            time.sleep(0.25)
        raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def rfc3339_seconds(text: str) -> float:
    """Prometheus' RFC 3339 times (lastScrape, activeAt) as unix seconds; 0 when absent or unparsable."""
    return _scraped_at(text)


def _scraped_at(text: str) -> float:
    """Prometheus' RFC 3339 lastScrape (nanosecond fraction) as unix seconds; 0 when absent or unparsable."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if match is None or text.startswith("0001-"):
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + zone).timestamp() + float("0" + (match.group(2) or ".0"))
