"""The worked example of docs/cli.md: a repository's own feature reusing the rule steps through the plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.output.helpers import ROOT, SEED

DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def _block(after: str, fence: str) -> str:
    start = DOC.index(f"```{fence}\n{after}") + len(f"```{fence}\n")
    return DOC[start:DOC.index("```", start)]


def test_the_documented_custom_feature_runs(tmp_path: Path) -> None:
    for folder in ("features", "tests", "deploy"):
        (tmp_path / folder).mkdir()
    (tmp_path / "features" / "our_scaling.feature").write_text(_block("# features/our_scaling.feature", "gherkin"))
    (tmp_path / "tests" / "test_our_features.py").write_text(_block("# tests/test_our_features.py", "python"))
    scaler = SEED / "scaledobject-model-a-gpu-scaler.yaml"
    (tmp_path / "deploy" / scaler.name).write_text(scaler.read_text())
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/", "--manifests=deploy/", "--no-bundled-features",
                           "-q", "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    assert "deploy/scaledobject-model-a-gpu-scaler.yaml:39: error: [lost-metric-is-not-zero]" in done.stdout
