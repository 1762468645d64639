"""Finding and running promtool. A missing promtool is an environment error naming the package, never a
skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gpu_policy.errors import GpuPolicyError

INSTALL_HINT = (
    "install Debian package `prometheus` (apt-get install -y --no-install-recommends prometheus), "
    "or point $GPU_POLICY_PROMTOOL at a promtool binary"
)


class PromtoolMissing(GpuPolicyError):
    """promtool is not installed: alert and PromQL checks cannot give a verdict."""


@dataclass(frozen=True)
class PromtoolResult:
    args: tuple[str, ...]
    returncode: int
    output: str
    """stdout and stderr interleaved as promtool wrote them (it names a file on stdout, its errors on
    stderr)."""


@cache
def promtool_path() -> str:
    configured = os.environ.get("GPU_POLICY_PROMTOOL")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise PromtoolMissing(
                f"$GPU_POLICY_PROMTOOL={configured} is not an executable file; {INSTALL_HINT}"
            )
        return configured
    found = shutil.which("promtool")
    if found is None:
        raise PromtoolMissing(f"promtool not found on PATH; {INSTALL_HINT}")
    return found


def run_promtool(args: Sequence[str], cwd: Path | str | None = None, timeout: float = 120) -> PromtoolResult:
    command = (promtool_path(), *args)
    try:
        done = subprocess.run(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except OSError as exc:
        raise PromtoolMissing(f"cannot run {command[0]}: {exc}; {INSTALL_HINT}") from exc
    return PromtoolResult(
        args=tuple(args), returncode=done.returncode, output=done.stdout.decode("utf-8", errors="replace")
    )


@cache
def promtool_version() -> str:
    result = run_promtool(["--version"])
    first = result.output.strip().splitlines()
    return first[0] if first else "unknown"
