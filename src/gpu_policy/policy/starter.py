"""`gpu-policy init`: a commented starter `.gpu-policy.yaml` that holds only what a repository chooses."""

from __future__ import annotations

import os
from pathlib import Path

from gpu_policy.errors import GpuPolicyError
from gpu_policy.policy.loader import CONFIG_FILE

STARTER = Path(__file__).parent / "starter.yaml"


def starter_text() -> str:
    return STARTER.read_text(encoding="utf-8")


def write_starter(folder: Path, *, force: bool = False) -> Path:
    """Write the starter into `folder`; an existing file is kept unless `force` (never written through a symlink)."""
    target = folder / CONFIG_FILE
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise GpuPolicyError(f"{target} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise GpuPolicyError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(starter_text())
    return target
