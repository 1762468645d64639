"""Running the command line as a user does, from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SEED = ROOT / "fixtures" / "seed-document" / "manifests"
SEED_ARGS = (str(SEED), "--profile", "reference", "--complete")
"""The seed is the reference organisation's own design: judged with its profile, as a complete set."""


def gpu_policy(*args: str, cwd: Path = ROOT, stdin: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpu_policy", *args], cwd=cwd, input=stdin, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def check_json(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`gpu-policy check ARGS --format json --output FILE`, and the parsed FILE."""
    out = tmp / "findings.json"
    done = gpu_policy("check", *args, "--format", "json", "--output", str(out))
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text(encoding="utf-8"))
