"""`gpu-policy` in this process: `cli.main`, the function the script calls, from the repository root, its output
captured. A child `python -m gpu_policy` costs about 0.75 s of CPU of interpreter and import start-up before the
check begins; tests that judge what a check reports run it here, and what only a child process shows (the script,
exit status, pipes, signals, memory caps) stays tested by tests/test_cli.py, tests/security and the tests that say
they run the script."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gpu_policy import cli

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`gpu-policy ARGS` with `env` added to the environment for the call: exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            code = cli.main(args)
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(["gpu-policy", *args], code, out.getvalue(), err.getvalue())


def check_json(*args: str) -> tuple[int, dict[str, Any], str]:
    """`gpu-policy check --format json ARGS` (NO_COLOR=1): (exit code, report or {} when none was printed, stderr)."""
    done = run_cli(["check", "--format", "json", *args], env={"NO_COLOR": "1"})
    report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, report, done.stderr
