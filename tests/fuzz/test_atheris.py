"""A bounded atheris run in CI: raw bytes through the YAML reader and loader, and through the whole engine.

The harness is tests/fuzz/atheris_harness.py (also the entry for a long campaign, `-max_total_time=1800`). It runs
in a child process: atheris instruments the modules it imports, and libFuzzer exits the process when it is done.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("atheris_harness.py")
RUNS = int(os.environ.get("GPU_POLICY_ATHERIS_RUNS", "500"))
"""Loader inputs per CI run (a campaign raises it, or runs the harness with -max_total_time)."""
SECONDS = int(os.environ.get("GPU_POLICY_ATHERIS_SECONDS", "5"))
"""Seconds of engine mutations after the seed corpus in a CI run."""

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                 reason="atheris is not installed (pip install -e '.[fuzz]'; Linux x86_64 wheels)")]


def _fuzz(tmp_path: Path, target: str, *options: str) -> str:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    done = subprocess.run(
        [sys.executable, str(HARNESS), target, "--seed-corpus", str(corpus), "-max_len=65536", "-timeout=60",
         "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/", *options, str(corpus)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    log = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))
    assert done.returncode == 0, f"atheris found a crash ({target}); input in {artifacts}:\n{log[-6000:]}"
    assert not list(artifacts.iterdir()), log[-3000:]
    assert "Done " in log, log[-3000:]
    return log


def test_loader_survives_fuzzed_bytes(tmp_path: Path) -> None:
    log = _fuzz(tmp_path, "loader", f"-runs={RUNS}", "-seed=1")
    assert f"Done {RUNS} runs" in log


def test_engine_survives_fuzzed_bytes(tmp_path: Path) -> None:
    # a few seconds of mutations after the seed corpus (the reference manifests) has run once
    log = _fuzz(tmp_path, "engine", f"-max_total_time={SECONDS}", "-seed=1")
    assert "INITED" in log, "the seed corpus did not run"
