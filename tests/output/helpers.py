"""Running the command line as a user does, from the repository root."""

from __future__ import annotations

import atexit
import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.in_process import run_cli

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


_shared: dict[tuple[str, ...], tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]] = {}
_shared_outputs: list[Path] = []


def _shared_folder() -> Path:
    if not _shared_outputs:
        folder = Path(tempfile.mkdtemp(prefix="gpu-policy-shared-checks-"))
        atexit.register(shutil.rmtree, folder, True)
        _shared_outputs.append(folder)
    return _shared_outputs[0]


def _in_process(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`gpu-policy ARGS` from the repository root in this process: `cli.main`, the function the script calls."""
    return run_cli(args)


def shared_check(*args: str) -> subprocess.CompletedProcess[str]:
    """`gpu-policy check ARGS`, run once per test process for each ARGS and shared by every test that reads it.

    Several modules judge the same command's output (the seed set's text, -v and --compact reports, its JSON): each
    ran its own child process before, and the seed set was checked eight times per test run. The output is the
    command's own (`cli.main` writing to a captured stdout, which is no terminal, as a pipe is not); what only a
    child process shows (the script, exit status, a pipe) stays tested by tests/test_cli.py and the tests that still
    call `gpu_policy`."""
    key = ("check", *args)
    if key not in _shared:
        _shared[key] = (_in_process(list(key)), None)
    done, _ = _shared[key]
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, done.stderr)


def shared_check_json(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`gpu-policy check ARGS --format json --output FILE` and the parsed FILE, once per test process (as
    `shared_check`); each caller gets its own copy of the report."""
    key = ("check", *args, "--format", "json")
    if key not in _shared:
        out = _shared_folder() / f"findings-{len(_shared)}.json"
        done = _in_process([*key, "--output", str(out)])
        assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
        _shared[key] = (done, json.loads(out.read_text(encoding="utf-8")))
    done, data = _shared[key]
    assert data is not None
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, done.stderr), copy.deepcopy(data)
