"""Writing under `--report DIR` without following anything planted there.

The report folder may sit in a checkout a pull request controls. A symlink inside it (`findings.json ->
~/.bashrc`, `simulation -> /etc`) must not redirect a write: every folder below DIR is created or checked
without following symlinks (a symlink is refused), and every file is written to a fresh, unique
temporary name opened with O_CREAT|O_EXCL|O_NOFOLLOW, then renamed over the target (a rename replaces a
symlink itself, never what it points to).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from gpu_policy.errors import GpuPolicyError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _safe_dir(path: Path) -> None:
    """Create `path` as a real folder inside an existing one; refuse a symlink or a non-folder at `path`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
        info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise GpuPolicyError(f"--report: {path} is a symbolic link; refusing to write through it")
    if not stat.S_ISDIR(info.st_mode):
        raise GpuPolicyError(f"--report: {path} is not a folder")


def report_subdir(report_dir: Path, *parts: str) -> Path:
    """`report_dir/parts...` as real folders; symlinks inside the report folder are refused. The folder the user
    named may itself be (or sit under) a symlink: that is their choice, not the input's."""
    report_dir.mkdir(parents=True, exist_ok=True)
    if not report_dir.is_dir():
        raise GpuPolicyError(f"--report: {report_dir} is not a folder")
    current = report_dir
    for part in parts:
        if part in ("", ".", "..") or "/" in part or os.sep in part:
            raise GpuPolicyError(f"--report: unsafe path component {part!r}")
        current = current / part
        _safe_dir(current)
    return current


def write_report_bytes(report_dir: Path, relative: str, data: bytes) -> Path:
    """Write `data` to `report_dir/relative` through a unique O_EXCL|O_NOFOLLOW temp file and a rename."""
    *folders, name = Path(relative).parts
    directory = report_subdir(report_dir, *folders)
    target = directory / name
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise GpuPolicyError(f"--report: {target} is a folder")
    tmp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def write_report_file(report_dir: Path, relative: str, text: str) -> Path:
    return write_report_bytes(report_dir, relative, text.encode("utf-8"))

