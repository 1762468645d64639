"""The synthetic DCGM exporter renders what dcgm-exporter 4.8.2 renders (internal/pkg/rendermetrics/render_metrics.go
gpuMetricsFormat, collector CSV families) and follows its trace, also after the trace file changes."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.metrics.dcgm import parse_collectors_csv
from gpu_policy.testbed import dcgm_exporter as ex
from gpu_policy.testbed.prometheus import free_port

POD = {"namespace": "inference", "name": "model-a-serving-6d8f9c7b5-x0k2m", "container": "vllm"}


def _trace(**over: object) -> ex.Trace:
    data = {
        "node": "gpu-node-a",
        "driverVersion": "550.127.05",
        "gpus": [
            {"index": 0, "uuid": "GPU-11111111-2222-3333-4444-555555555555", "pciBusId": "00000000:10:1C.0",
             "modelName": "NVIDIA A100-SXM4-40GB", "framebufferMiB": 40960, "pod": POD,
             "values": {"DCGM_FI_DEV_GPU_UTIL": [[0, 40], [30, 95]], "DCGM_FI_DEV_FB_USED": 37683,
                        "DCGM_FI_DEV_POWER_USAGE": 245.5}},
            {"index": 1, "uuid": "GPU-aaaaaaaa-2222-3333-4444-555555555555", "pciBusId": "00000000:11:1C.0"},
        ],
        **over,
    }
    return ex.parse_trace(data)


@pytest.fixture(scope="module")
def families() -> list[ex.Family]:
    return ex.parse_families(ex.default_collectors().read_text(encoding="utf-8"))


def test_series_text_is_the_upstream_template(families: list[ex.Family]) -> None:
    text = ex.render(_trace(), families, now=100.0, started=90.0)  # t = 10 s: before the 30 s step
    lines = text.splitlines()
    # gpu, UUID, pci_bus_id, device, modelName, Hostname; then Labels (the CSV's `label` rows) sorted; then the pod
    # Attributes sorted (container, namespace, pod); `} ` and the %d value.
    assert (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-11111111-2222-3333-4444-555555555555",pci_bus_id="00000000:10:1C.0",'
        'device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu-node-a",'
        'DCGM_FI_DRIVER_VERSION="550.127.05",container="vllm",namespace="inference",'
        'pod="model-a-serving-6d8f9c7b5-x0k2m"} 40'
    ) in lines
    # a GPU no pod uses keeps the device labels only (kubernetes.go deviceToPod: no entry, no attributes)
    idle = [line for line in lines if line.startswith('DCGM_FI_DEV_GPU_UTIL{gpu="1"')]
    assert idle == [
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-aaaaaaaa-2222-3333-4444-555555555555",pci_bus_id="00000000:11:1C.0",'
        'device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu-node-a",'
        'DCGM_FI_DRIVER_VERSION="550.127.05"} 0'
    ]
    # double fields print with %f; FB_FREE follows from the framebuffer size and FB_USED
    assert any(line.startswith("DCGM_FI_DEV_POWER_USAGE{gpu=\"0\"") and line.endswith("} 245.500000") for line in lines)
    assert any(line.startswith("DCGM_FI_DEV_FB_FREE{gpu=\"0\"") and line.endswith("} 3277") for line in lines)
    assert ex.format_value("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.5) == "0.500000"
    assert ex.format_value("DCGM_FI_PROF_PCIE_TX_BYTES", 1234.0) == "1234"
    # the 30 s step applies from t = 30 on
    later = ex.render(_trace(), families, now=125.0, started=90.0).splitlines()
    assert any(line.startswith('DCGM_FI_DEV_GPU_UTIL{gpu="0"') and line.endswith("} 95") for line in later)


def test_families_are_the_collector_csv_rows(families: list[ex.Family]) -> None:
    text = ex.render(_trace(), families, now=0.0, started=0.0)
    csv = ex.default_collectors().read_text(encoding="utf-8")
    enabled = parse_collectors_csv(csv)
    helps = {line.split()[2]: line for line in text.splitlines() if line.startswith("# HELP ")}
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    label_rows = {f.name for f in families if f.prom_type == "label"}
    assert set(helps) == enabled - label_rows
    assert "DCGM_FI_DRIVER_VERSION" in label_rows and "DCGM_FI_DRIVER_VERSION" not in helps
    assert helps["DCGM_FI_DEV_FB_USED"] == "# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB)."
    assert types["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == "counter"
    assert types["DCGM_FI_DEV_GPU_UTIL"] == "gauge"
    # no blank line between families, one newline at the end (the template's `{{ end }}`)
    assert "\n\n" not in text and text.endswith("\n")


def test_old_namespace_and_no_kubernetes(families: list[ex.Family]) -> None:
    old = ex.render(_trace(useOldNamespace=True), families, now=0.0, started=0.0)
    assert ',uuid="GPU-1111' in old and 'container_name="vllm",pod_name="model-a-serving' in old
    assert 'pod_namespace="inference"' in old and ',pod="' not in old
    plain = ex.render(_trace(kubernetes=False), families, now=0.0, started=0.0)
    assert "pod=" not in plain and "namespace=" not in plain


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ({"gpus": [{"values": {"DCGM_FI_DEV_GPU_UTIL": "high"}}]}, "values.DCGM_FI_DEV_GPU_UTIL"),
        ({"gpus": [{"values": {"DCGM_FI_DEV_GPU_UTIL": [[0]]}}]}, "is not [seconds, value]"),
        ({"node": 'a"b'}, "contains a quote"),
        ({"gpus": [{"pod": {"name": "x"}}]}, "gpus[0].pod"),
        ([], "must be a mapping"),
    ],
)
def test_bad_traces_are_refused(trace: object, message: str) -> None:
    with pytest.raises(ex.TraceError, match=message.replace("[", r"\[").replace(".", r"\.")):
        ex.parse_trace(trace)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "trace.yaml"
    ex.write_trace(path, {"node": "gpu-node-a", "gpus": [{"index": 0, "pod": POD,
                                                          "values": {"DCGM_FI_DEV_GPU_UTIL": 40}}]})
    server = ex.serve(path, free_port())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], path
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str) -> tuple[int, str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_served_over_http_and_reloaded(served: tuple[int, Path]) -> None:
    port, path = served
    status, content_type, body = _get(port, "/metrics")
    assert status == 200 and content_type == "text/plain; charset=utf-8"
    assert 'pod="model-a-serving-6d8f9c7b5-x0k2m"} 40\n' in body
    assert _get(port, "/health")[0:3:2] == (200, "OK")
    ex.write_trace(path, {"node": "gpu-node-a", "gpus": [{"index": 0, "pod": POD,
                                                          "values": {"DCGM_FI_DEV_GPU_UTIL": 95}}]})
    assert 'pod="model-a-serving-6d8f9c7b5-x0k2m"} 95\n' in _get(port, "/metrics")[2]
    # a broken rewrite keeps the last good trace
    path.write_text("gpus: [", encoding="utf-8")
    assert 'pod="model-a-serving-6d8f9c7b5-x0k2m"} 95\n' in _get(port, "/metrics")[2]
    ex.write_trace(path, {"node": "gpu-node-a", "available": False, "gpus": []})
    assert _get(port, "/metrics")[0] == 503


def test_binds_loopback_only(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    ex.write_trace(path, {"gpus": []})
    with pytest.raises(ex.TraceError, match=r"127\.0\.0\.0/8"):
        ex.serve(path, 0, host="0.0.0.0")
