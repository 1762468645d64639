"""`gpu-policy check --live` when the cluster cannot be read: exit 2 and one clear line on stderr, no traceback.
These need no testbed: a closed port, a port that never answers and broken kubeconfigs on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gpu_policy import cli
from gpu_policy.live import client as live_client


def _kubeconfig(folder: Path, server: str) -> Path:
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "far",
        "clusters": [{"name": "far", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "far", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "far", "context": {"cluster": "far", "user": "far"}}],
    }))  # fmt: skip
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("gpu-policy: error:")]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_api_server_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    config = _kubeconfig(tmp_path, f"https://127.0.0.1:{port}")
    line = _one_error_line(capsys, ["check", "--live", "--kubeconfig", str(config)])
    assert line.startswith(f"gpu-policy: error: cluster far (https://127.0.0.1:{port}) unreachable: ")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hung API server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_hung_api_server_times_out_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_client, "REQUEST_TIMEOUT", (1.0, 1.0))
    config = _kubeconfig(tmp_path, f"https://127.0.0.1:{silent_server}")
    line = _one_error_line(capsys, ["check", "--live", "--kubeconfig", str(config)])
    assert line.startswith(f"gpu-policy: error: cluster far (https://127.0.0.1:{silent_server}) unreachable: ")
    assert "timed out" in line.lower()


def test_a_kubeconfig_without_the_context_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    line = _one_error_line(capsys, ["check", "--live", "--kubeconfig", str(config), "--context", "nowhere"])
    assert line.startswith(f"gpu-policy: error: cannot load kubeconfig {config}: ")
    assert "nowhere" in line


def test_a_missing_kubeconfig_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(capsys, ["check", "--live", "--kubeconfig", str(tmp_path / "absent")])
    assert line.startswith(f"gpu-policy: error: cannot load kubeconfig {tmp_path / 'absent'}")


def test_cluster_options_without_live_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(capsys, ["check", "--context", "prod"])
    assert line == "gpu-policy: error: --context, --kubeconfig, --live-namespace and --prometheus need --live"


def test_live_flags_reach_run_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gpu_policy import engine

    seen: list[engine.RunOptions] = []

    class Stop(Exception):
        pass

    def capture(options: engine.RunOptions, rule_ids: object = None) -> object:
        seen.append(options)
        raise Stop

    monkeypatch.setattr(engine, "run_engine", capture)
    with pytest.raises(Stop):
        cli._dispatch(cli._parser().parse_args([
            "check", "--live", "--context", "prod", "--kubeconfig", "kc.yaml", "--live-namespace", "inference",
            "--live-namespace", "gpu-monitoring", "--prometheus", "http://127.0.0.1:9090", "--namespace", "ml",
        ]))
    [options] = seen
    assert (options.live, options.kube_context, options.kubeconfig) == (True, "prod", Path("kc.yaml"))
    assert options.live_namespaces == ["inference", "gpu-monitoring"]
    assert options.prometheus_url == "http://127.0.0.1:9090"
    assert options.namespace == "ml"  # the manifests' default namespace stays its own option
    assert options.paths == []  # --live alone: the cluster's objects are the set, not the bundled manifests


def test_the_pytest_plugin_exits_2_with_one_line_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = _kubeconfig(tmp_path, f"https://127.0.0.1:{_closed_port()}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--live", "--kubeconfig",
                           str(config), "--rootdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert "gpu-policy: error: cluster far (https://127.0.0.1:" in output and "unreachable" in output
    assert "Traceback" not in output
