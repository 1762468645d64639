"""A synthetic NVIDIA DCGM exporter: serves `/metrics` exactly as dcgm-exporter 4.8.2 renders it, for GPUs and pods
given in a trace file, with values that follow the trace over time.

One process is one exporter pod (one node): `python -m gpu_policy.testbed.dcgm_exporter --trace FILE` (or `gpu-policy
testbed exporter --trace FILE`) listens on 127.0.0.1 only. The trace file is YAML or JSON and is re-read whenever it
changes (checked at every request, at most 1 MiB), so a drill changes utilisation by rewriting it (`write_trace`
writes atomically); an unreadable rewrite keeps the last good trace and is logged.

What is reproduced from upstream (NVIDIA/dcgm-exporter tag 4.5.3-4.8.2):
- The families: every row of the collector CSV (`etc/default-counters.csv`, read at runtime from
  `$GPU_POLICY_DCGM_CSV_PATH/<release>/`, never copied into this repository), with the CSV's metric type as `# TYPE`
  and its help text as `# HELP`; `label` rows (DCGM_FI_DRIVER_VERSION) are not families but a label on every series
  (internal/pkg/collector/gpu_collector.go toMetric: `counter.IsLabel()` -> `labels[counter.FieldName] = v`).
- The series text (internal/pkg/rendermetrics/render_metrics.go gpuMetricsFormat):
  `NAME{gpu="0",UUID="GPU-...",pci_bus_id="...",device="nvidia0",modelName="...",Hostname="<node>"` then the
  Labels map, then the Attributes map, each in sorted key order (Go text/template ranges over a map with string
  keys in sorted order), then `} VALUE`. `UUID` is spelt `uuid` with `--use-old-namespace`; `Hostname` is the 4.8.2
  spelling (renamed `hostname` after that tag, upstream #655).
- Pod mapping (`-k` / DCGM_EXPORTER_KUBERNETES): a GPU used by a pod gets Attributes `container`, `namespace`, `pod`
  (`container_name`, `pod_namespace`, `pod_name` with --use-old-namespace); a GPU no pod uses keeps only the device
  labels (internal/pkg/transformation/kubernetes.go, deviceToPod branch; pod_uid only with
  --kubernetes-enable-pod-uid, off by default).
- Values: DCGM int64 fields print as `%d`, double fields as `%f` (gpu_collector.go toString), so 95 % utilisation is
  `95` and 245.5 W is `245.500000`.
- `/health` answers `OK`; no Content-Type is set, so Go's net/http sniffs `text/plain; charset=utf-8`
  (internal/pkg/server/server.go). Prometheus 2.x and 3.x both parse that as the text format.

Trace format::

    node: gpu-node-a                 # the Hostname label (the exporter's NODE_NAME)
    driverVersion: "550.127.05"      # the DCGM_FI_DRIVER_VERSION label (when the CSV enables it)
    kubernetes: true                 # pod/namespace/container labels (default true, as the reference DaemonSet)
    useOldNamespace: false
    available: true                  # false: /metrics answers 503, as an exporter that lost the host engine
    start: 1764585000.0              # unix time of trace t=0 (default: when the exporter started)
    gpus:
      - index: 0
        uuid: GPU-6f0c...            # default: derived from node and index
        modelName: NVIDIA A100-SXM4-40GB
        pciBusId: "00000000:10:1C.0"
        framebufferMiB: 40960        # FB_FREE = framebufferMiB - FB_USED - FB_RESERVED unless given
        pod: {namespace: inference, name: model-a-serving-6d8f9c7b5-x0k2m, container: vllm}
        values:
          DCGM_FI_DEV_GPU_UTIL: 40                   # a constant
          DCGM_FI_DEV_FB_USED: [[0, 20000], [30, 37683]]   # steps: value from t seconds on
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.metrics import dcgm
from gpu_policy.testbed import processes

MAX_TRACE_BYTES = 1 << 20
LOOPBACK = "127.0.0.1"
DEFAULT_RELEASE = "4.5.3-4.8.2"
DEFAULT_COLLECTORS_FILE = "default-counters.csv"

# DCGM field value types (NVIDIA DCGM dcgmlib/src/dcgm_fields.cpp DcgmFieldsPopulateFieldTableWithFormatting): the
# power fields and the DCP ratios (DCGM_FI_PROF_*) are DCGM_FT_DOUBLE, except the PCIe/NVLink byte counters, which
# are DCGM_FT_INT64 like every other numeric field of the exporter's CSVs. Strings (DCGM_FI_DRIVER_VERSION) are
# `label` rows.
DOUBLE_FIELDS = frozenset(
    {
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_POWER_USAGE_INSTANT",
        "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN",
        "DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX",
        "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF",
    }
)
DOUBLE_PREFIXES = ("DCGM_FI_PROF_",)
INT_SUFFIXES = ("_BYTES",)

# Plausible idle values for the families a trace does not set (an idle A100).
DEFAULT_VALUES: Mapping[str, float] = {
    "DCGM_FI_DEV_SM_CLOCK": 210,
    "DCGM_FI_DEV_MEM_CLOCK": 1215,
    "DCGM_FI_DEV_MEMORY_TEMP": 32,
    "DCGM_FI_DEV_GPU_TEMP": 30,
    "DCGM_FI_DEV_POWER_USAGE": 55.0,
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 1_000_000,
}
DEFAULT_FRAMEBUFFER_MIB = 40960


class TraceError(ValueError):
    """The trace file cannot be used."""


@dataclass(frozen=True)
class Family:
    name: str
    prom_type: str
    """`gauge`, `counter` or `label`."""
    help: str


def parse_families(text: str) -> list[Family]:
    """Rows of a collector CSV (`DCGM field, Prometheus metric type, help`; `#` comments), in file order. Fields are
    trimmed as upstream's counters.ExtractCounters does (strings.TrimSpace on each of the three columns)."""
    out: list[Family] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(",", 2)
        if len(parts) != 3:
            raise TraceError(f"collector row {raw!r} does not have 3 fields")
        name, prom_type, help_text = (p.strip() for p in parts)
        out.append(Family(name, prom_type, help_text))
    return out


def default_collectors() -> Path:
    root = dcgm.csv_root(DEFAULT_RELEASE)
    if root is None:
        raise TraceError(
            f"no DCGM collector CSVs: set {dcgm.CSV_PATH_ENV} to the folder holding {DEFAULT_RELEASE}/ "
            "(or run `gpu-policy schemas fetch`)"
        )
    return root / DEFAULT_RELEASE / DEFAULT_COLLECTORS_FILE


Step = tuple[float, float]


@dataclass(frozen=True)
class GPU:
    index: int
    uuid: str
    model_name: str
    pci_bus_id: str
    framebuffer_mib: float
    pod: Mapping[str, str] | None
    values: Mapping[str, tuple[Step, ...]]

    def value(self, name: str, t: float) -> float | None:
        steps = self.values.get(name)
        if steps:
            current = steps[0][1]
            for start, v in steps:
                if t >= start:
                    current = v
            return current
        if name == "DCGM_FI_DEV_FB_FREE":
            used = self.value("DCGM_FI_DEV_FB_USED", t) or 0.0
            reserved = self.value("DCGM_FI_DEV_FB_RESERVED", t) or 0.0
            return max(0.0, self.framebuffer_mib - used - reserved)
        return DEFAULT_VALUES.get(name, 0.0)


@dataclass(frozen=True)
class Trace:
    node: str
    driver_version: str
    kubernetes: bool
    use_old_namespace: bool
    available: bool
    start: float | None
    gpus: tuple[GPU, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


def _steps(name: str, raw: Any) -> tuple[Step, ...]:
    if isinstance(raw, bool):
        raise TraceError(f"values.{name}: a number or a list of [seconds, value] steps, not {raw!r}")
    if isinstance(raw, int | float):
        return ((0.0, float(raw)),)
    if isinstance(raw, list) and raw:
        steps: list[Step] = []
        for item in raw:
            if (
                not isinstance(item, list | tuple)
                or len(item) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in item)
            ):
                raise TraceError(f"values.{name}: step {item!r} is not [seconds, value]")
            steps.append((float(item[0]), float(item[1])))
        return tuple(sorted(steps))
    raise TraceError(f"values.{name}: a number or a list of [seconds, value] steps, not {raw!r}")


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise TraceError(f"{key}: a string, not {value!r}")
    text = str(value)
    if any(c in text for c in '"\\\n'):
        raise TraceError(f"{key}: {text!r} contains a quote, backslash or newline")
    return text


def parse_trace(data: Any) -> Trace:
    if not isinstance(data, Mapping):
        raise TraceError("the trace must be a mapping")
    node = _text(data, "node", "gpu-node")
    gpus: list[GPU] = []
    raw_gpus = data.get("gpus") or []
    if not isinstance(raw_gpus, list):
        raise TraceError("gpus: a list")
    for i, raw in enumerate(raw_gpus):
        if not isinstance(raw, Mapping):
            raise TraceError(f"gpus[{i}]: a mapping")
        index = raw.get("index", i)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TraceError(f"gpus[{i}].index: a non-negative integer")
        pod = raw.get("pod")
        if pod is not None:
            if not isinstance(pod, Mapping) or not all(isinstance(pod.get(k), str) for k in ("namespace", "name")):
                raise TraceError(f"gpus[{i}].pod: {{namespace, name, container}}")
            pod = {
                "namespace": _text(pod, "namespace", ""),
                "name": _text(pod, "name", ""),
                "container": _text(pod, "container", ""),
            }
        values = raw.get("values") or {}
        if not isinstance(values, Mapping):
            raise TraceError(f"gpus[{i}].values: a mapping of field name to value or steps")
        crc = zlib.crc32(f"{node}/{index}".encode())
        framebuffer = raw.get("framebufferMiB", DEFAULT_FRAMEBUFFER_MIB)
        if not isinstance(framebuffer, int | float) or isinstance(framebuffer, bool):
            raise TraceError(f"gpus[{i}].framebufferMiB: a number")
        gpus.append(
            GPU(
                index=index,
                uuid=_text(raw, "uuid", f"GPU-{crc:08x}-{index:04x}-4000-8000-{crc:012x}"),
                model_name=_text(raw, "modelName", "NVIDIA A100-SXM4-40GB"),
                pci_bus_id=_text(raw, "pciBusId", f"00000000:{16 + index:02X}:1C.0"),
                framebuffer_mib=float(framebuffer),
                pod=pod,
                values={str(k): _steps(str(k), v) for k, v in values.items()},
            )
        )
    start = data.get("start")
    if start is not None and (not isinstance(start, int | float) or isinstance(start, bool)):
        raise TraceError("start: unix seconds")
    return Trace(
        node=node,
        driver_version=_text(data, "driverVersion", "550.127.05"),
        kubernetes=bool(data.get("kubernetes", True)),
        use_old_namespace=bool(data.get("useOldNamespace", False)),
        available=bool(data.get("available", True)),
        start=float(start) if start is not None else None,
        gpus=tuple(gpus),
    )


def read_trace(path: Path) -> Trace:
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise TraceError(f"{path}: {size} bytes, more than {MAX_TRACE_BYTES}")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TraceError(f"{path}: {exc}") from exc
    return parse_trace(data)


def write_trace(path: Path, trace: Mapping[str, Any]) -> None:
    """Write a trace atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(yaml.safe_dump(dict(trace), sort_keys=False), encoding="utf-8")
    os.replace(temporary, path)


def format_value(name: str, value: float) -> str:
    """gpu_collector.go toString: int64 fields `%d`, double fields `%f`."""
    if name in DOUBLE_FIELDS or (name.startswith(DOUBLE_PREFIXES) and not name.endswith(INT_SUFFIXES)):
        return f"{value:f}"
    if math.isnan(value) or math.isinf(value):
        return "0"
    return str(round(value))


def render(trace: Trace, families: Sequence[Family], now: float, started: float) -> str:
    """The /metrics body for `trace` at time `now` (render_metrics.go gpuMetricsFormat)."""
    t = now - (trace.start if trace.start is not None else started)
    labels = {f.name: trace.driver_version for f in families if f.prom_type == "label"}
    uuid_key = "uuid" if trace.use_old_namespace else "UUID"
    pod_keys = ("pod_name", "pod_namespace", "container_name") if trace.use_old_namespace else (
        "pod", "namespace", "container"
    )
    out: list[str] = []
    for family in families:
        if family.prom_type == "label":
            continue
        out.append(f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.prom_type}")
        # the template writes "\n<series>" per series, then "\n" after the family
        for gpu in trace.gpus:
            value = gpu.value(family.name, t)
            if value is None:
                continue
            attributes: dict[str, str] = {}
            if trace.kubernetes and gpu.pod is not None:
                attributes = dict(zip(pod_keys, (gpu.pod["name"], gpu.pod["namespace"], gpu.pod["container"]),
                                      strict=True))
            own_labels = {k: v for k, v in labels.items() if k not in attributes}
            text = (
                f'{family.name}{{gpu="{gpu.index}",{uuid_key}="{gpu.uuid}",pci_bus_id="{gpu.pci_bus_id}",'
                f'device="nvidia{gpu.index}",modelName="{gpu.model_name}",Hostname="{trace.node}"'
            )
            text += "".join(f',{k}="{own_labels[k]}"' for k in sorted(own_labels))
            text += "".join(f',{k}="{attributes[k]}"' for k in sorted(attributes))
            out.append(f"\n{text}}} {format_value(family.name, value)}")
        out.append("\n")
    return "".join(out)


class _State:
    def __init__(self, trace_path: Path, families: list[Family]) -> None:
        self.trace_path = trace_path
        self.families = families
        self.started = time.time()
        self.lock = threading.Lock()
        self.mtime: float | None = None
        self.trace = read_trace(trace_path)
        self.mtime = trace_path.stat().st_mtime

    def current(self) -> Trace:
        with self.lock:
            try:
                mtime = self.trace_path.stat().st_mtime
            except OSError:
                return self.trace
            if mtime != self.mtime:
                self.mtime = mtime
                try:
                    self.trace = read_trace(self.trace_path)
                except TraceError as exc:
                    print(f"dcgm-exporter: keeping the previous trace: {exc}", file=sys.stderr, flush=True)
            return self.trace


def make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gpu-policy-dcgm-exporter"

        def _send(self, code: int, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            # What Go's http.DetectContentType gives the exporter's unlabelled text body.
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            trace = state.current()
            if path == "/metrics":
                if not trace.available:
                    self._send(503, "DCGM host engine unavailable\n")
                    return
                self._send(200, render(trace, state.families, time.time(), state.started))
            elif path == "/health":
                self._send(200 if trace.available else 503, "OK" if trace.available else "unavailable")
            else:
                self._send(404, "404 page not found\n")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve(trace_path: Path, port: int, collectors: Path | None = None, host: str = LOOPBACK) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving: call serve_forever) on host:port; host must be a loopback address."""
    if not host.startswith("127."):
        raise TraceError(f"the synthetic exporter binds 127.0.0.0/8 only, not {host}")
    csv = collectors or default_collectors()
    try:
        families = parse_families(csv.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"collector file {csv}: {exc}") from exc
    state = _State(trace_path, families)
    server = ThreadingHTTPServer((host, port), make_handler(state))
    server.daemon_threads = True
    return server


def start_process(trace_path: Path, port: int, log: Path, collectors: Path | None = None,
                  die_with_parent: bool = True) -> processes.ProcessRecord:
    """Run one synthetic exporter as its own process (stopped by pid with `processes.stop`)."""
    argv = [sys.executable, "-m", "gpu_policy.testbed.dcgm_exporter", "--trace", str(trace_path), "--port", str(port)]
    if collectors is not None:
        argv += ["--collectors", str(collectors)]
    return processes.start(f"dcgm-exporter:{port}", argv, log, env=dict(os.environ), die_with_parent=die_with_parent)


def wait_serving(port: int, timeout: float = 10.0) -> bool:
    """Wait (bounded) until 127.0.0.1:port answers /health."""
    import urllib.request

    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        try:
            with opener.open(f"http://{LOOPBACK}:{port}/health", timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, required=True, help="the trace file (YAML or JSON), re-read on change")
    parser.add_argument("--port", type=int, default=9400, help="port on 127.0.0.1 (default 9400, as the exporter)")
    parser.add_argument("--collectors", type=Path, default=None,
                        help=f"collector CSV (default: ${dcgm.CSV_PATH_ENV}/{DEFAULT_RELEASE}/"
                        f"{DEFAULT_COLLECTORS_FILE})")


def run(args: argparse.Namespace) -> int:
    try:
        server = serve(args.trace, args.port, args.collectors)
    except (TraceError, OSError) as exc:
        print(f"dcgm-exporter: {exc}", file=sys.stderr)
        return 2
    print(f"dcgm-exporter: serving http://{LOOPBACK}:{server.server_address[1]}/metrics", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_policy.testbed.dcgm_exporter",
                                     description="synthetic DCGM exporter on 127.0.0.1")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
