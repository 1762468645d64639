"""An installed wheel checks offline (issue 10: a pip-installed `gpu-policy check` failed on the DCGM collector
list, which was neither bundled nor fetched). The wheel is built from this checkout and installed into a throwaway
virtualenv; it runs from an empty folder with GPU_POLICY_DCGM_CSV_PATH and GPU_POLICY_CRD_PATH unset and an empty
user cache, every proxy pointing at a closed local port (nothing can be downloaded but from the 127.0.0.1 mirror).
Without data it says what to run; after `gpu-policy schemas fetch` (from the mirror) it checks offline."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.output.helpers import ROOT
from tests.test_schemas_fetch_cli import mirror  # noqa: F401  (the fixture: the pinned files on 127.0.0.1)

CLOSED = "http://127.0.0.1:9"


def _installed_wheel(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip took 5 s of CPU): this environment's pip installs into it (`pip --python`).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    new_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies come from this test's environment (no download); gpu-policy is the wheel just built
    (Path(new_site) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    [wheel] = wheels.glob("gpu_policy-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return venv / "bin" / "gpu-policy"


@pytest.mark.slow
def test_an_installed_wheel_checks_offline_once_schemas_fetch_filled_the_cache(tmp_path: Path,
                                                                                mirror: str) -> None:  # noqa: F811
    gpu_policy = _installed_wheel(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("GPU_POLICY_CRD_PATH", "GPU_POLICY_DCGM_CSV_PATH", "PYTHONPATH")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), HTTP_PROXY=CLOSED, HTTPS_PROXY=CLOSED, http_proxy=CLOSED,
               https_proxy=CLOSED, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")

    before = subprocess.run([str(gpu_policy), "check", "--only", "dcgm-metrics-are-collected", "--compact"],
                            cwd=empty, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert before.returncode == 1, before.stdout[-3000:] + before.stderr[-2000:]
    assert "[dcgm-metrics-are-collected] DaemonSet/gpu-monitoring/dcgm-exporter" in before.stdout
    assert "gpu-policy schemas fetch" in before.stdout  # says what to run, in the line itself

    fetched = subprocess.run([str(gpu_policy), "schemas", "fetch", "--base-url", mirror], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert fetched.returncode == 0, fetched.stdout[-2000:] + fetched.stderr[-2000:]
    assert "3 DCGM exporter collector files in" in fetched.stdout

    after = subprocess.run([str(gpu_policy), "check"], cwd=empty, env=env, capture_output=True, text=True,
                           timeout=900, check=False)
    assert after.returncode == 0, after.stdout[-4000:] + after.stderr[-2000:]
    assert "dcgm-metrics-are-collected" not in after.stdout and "could not be read" not in after.stdout
    assert "checking the bundled reference set" in after.stderr
    assert list(empty.iterdir()) == []  # nothing written into the working folder
