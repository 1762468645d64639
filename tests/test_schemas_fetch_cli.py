"""`gpu-policy schemas fetch` fills the user cache from a mirror, and `check` then validates with those CRDs alone."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """The pinned CRDs served as `<base>/<source name>/<file>` on 127.0.0.1 (the layout --base-url expects)."""
    shared = Path(os.environ["GPU_POLICY_CRD_PATH"])
    root = tmp_path / "mirror"
    for source in ("karpenter", "keda", "prometheus-operator"):
        (root / source).mkdir(parents=True)
        for crd in (shared / source).rglob("*.yaml"):
            shutil.copy(crd, root / source / crd.name)
    (root / "dcgm-exporter").mkdir()
    for csv in Path(os.environ["GPU_POLICY_DCGM_CSV_PATH"]).rglob("*.csv"):
        shutil.copy(csv, root / "dcgm-exporter" / csv.name)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_then_check_uses_the_cache(mirror: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GPU_POLICY_CRD_PATH", "GPU_POLICY_DCGM_CSV_PATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    fetched = subprocess.run([sys.executable, "-m", "gpu_policy", "schemas", "fetch", "--base-url", mirror],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert fetched.returncode == 0, fetched.stderr
    assert f"{len(list(Path(os.environ['GPU_POLICY_CRD_PATH']).rglob('*.yaml')))} CRD files in" in fetched.stdout
    assert "3 DCGM exporter collector files in" in fetched.stdout
    release = tmp_path / "cache" / "gpu-policy" / "dcgm-exporter" / "4.5.3-4.8.2"
    assert sorted(p.name for p in release.iterdir()) == [
        "1.x-compatibility-metrics.csv", "dcp-metrics-included.csv", "default-counters.csv"]
    checked = subprocess.run([sys.executable, "-m", "gpu_policy", "check", "-k", "schema"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "0 not checked" in checked.stdout


def test_fetch_from_an_unreachable_mirror_is_an_environment_error(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "gpu_policy", "schemas", "fetch", "--base-url", "http://127.0.0.1:9"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "cannot download http://127.0.0.1:9/karpenter/karpenter.sh_nodepools.yaml" in done.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.yaml"))


def test_collector_csvs_are_read_from_the_cache_when_no_path_is_set(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_policy.metrics.dcgm import csv_root

    monkeypatch.delenv("GPU_POLICY_DCGM_CSV_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "gpu-policy" / "dcgm-exporter" / "4.5.3-4.8.2").mkdir(parents=True)
    assert csv_root("4.5.3-4.8.2") == tmp_path / "gpu-policy" / "dcgm-exporter"
    assert csv_root("9.9.9-9.9.9") != tmp_path / "gpu-policy" / "dcgm-exporter"


def test_a_fetched_file_that_is_not_a_collector_csv_is_refused(tmp_path: Path) -> None:
    from gpu_policy.errors import SchemaSourceError
    from gpu_policy.schemas.fetch import _check_is_collector_csv

    _check_is_collector_csv("u", "# comment\nDCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).\n")
    with pytest.raises(SchemaSourceError, match="not a DCGM exporter collector CSV"):
        _check_is_collector_csv("u", "<html>404</html>\n")
