"""Turn the paths a user gives into text streams: files, folders, stdin and kustomizations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpu_policy.errors import InputError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Stream:
    text: str
    source: str
    """Path shown in findings."""
    kustomization: Path | None = None
    """Set when `text` is `kubectl kustomize` output rendered from this folder."""


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def render_kustomization(folder: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise InputError(
            f"{folder} is a kustomization, and rendering it needs `kubectl` on PATH (kubectl kustomize). "
            "Install kubectl, or render it yourself: `kubectl kustomize DIR | gpu-policy check -`."
        )
    try:
        done = subprocess.run(
            [kubectl, "kustomize", str(folder)],
            capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"kubectl kustomize {folder} did not finish in {KUSTOMIZE_TIMEOUT_SECONDS}s") from exc
    if done.returncode != 0:
        raise InputError(f"kubectl kustomize {folder} failed:\n{done.stderr.strip()}")
    return done.stdout


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc


def _walk_folder(folder: Path) -> Iterator[Stream]:
    kustomization = kustomization_file(folder)
    if kustomization is not None:
        yield Stream(render_kustomization(folder), str(folder), kustomization=folder)
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk_folder(entry)
        elif entry.suffix in MANIFEST_SUFFIXES and entry.is_file():
            yield Stream(_read_file(entry), str(entry))


def iter_streams(paths: list[str]) -> Iterator[Stream]:
    """Every input as text, in the order given; folders recurse in sorted order so runs are reproducible."""
    for raw in paths:
        if raw == "-":
            yield Stream(sys.stdin.read(), "<stdin>")
            continue
        path = Path(raw)
        if path.is_dir():
            yield from _walk_folder(path)
        elif path.is_file():
            yield Stream(_read_file(path), str(path))
        else:
            raise InputError(f"{raw}: no such file or folder")
