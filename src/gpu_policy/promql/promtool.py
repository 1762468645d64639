"""Finding and running promtool. A missing promtool is an environment error naming the package, never a
skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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


SHARED_MEMORY = "/dev/shm"
SHARED_MEMORY_MIN_FREE = 256 * 1024 * 1024
"""Left free in /dev/shm before it is used: a container's small default (64 MiB in Docker) is not."""


def scratch_root() -> str | None:
    """Where the folders of the files promtool reads are made: /dev/shm (memory) when neither $TMPDIR, $TEMP nor
    $TMP names a folder and /dev/shm is a writable folder with room to spare, else Python's default
    (`tempfile.gettempdir()`). A check writes a file per PrometheusRule (3,333 at 20k objects) and per KEDA query
    promtool evaluates, then deletes them: on this project's ext4 /tmp that took 0.03 to 1 s of kernel CPU
    (the more the disk was in use), on tmpfs a few hundredths. Each folder is private (mkdtemp: mode 0700) either
    way."""
    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")):
        return None  # the user chose where temporary files go
    try:
        if not os.path.isdir(SHARED_MEMORY) or not os.access(SHARED_MEMORY, os.W_OK | os.X_OK):
            return None
        stats = os.statvfs(SHARED_MEMORY)
    except OSError:
        return None
    return SHARED_MEMORY if stats.f_bavail * stats.f_frsize >= SHARED_MEMORY_MIN_FREE else None


def scratch_folder(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A private temporary folder for files promtool reads (see `scratch_root`), removed on exit."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=scratch_root())


@cache
def promtool_version() -> str:
    result = run_promtool(["--version"])
    first = result.output.strip().splitlines()
    return first[0] if first else "unknown"
