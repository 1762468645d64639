"""Turn the paths a user gives into text streams: files, folders, stdin and kustomizations.

A path that does not exist, or a kustomization that cannot be rendered, stops the run (InputError): no
verdict is possible. A file that exists but cannot be read as text (binary, not UTF-8, too large) is a Stream
with `error` set: the loader reports it as a finding and every other file is still checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpu_policy.errors import InputError
from gpu_policy.loading.yaml_reader import MAX_FILE_BYTES

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT_SECONDS = 120
STDIN = "<stdin>"
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
"""Written by kustomize's `buildMetadata: [originAnnotations]`: the file or generator of each object."""


@dataclass(frozen=True)
class Stream:
    text: str
    source: str
    """Path shown in findings (as the user gave it, joined with the file's path inside a folder)."""
    name: str = ""
    """The file's path relative to the input it was found under: stable whatever the working directory."""
    kustomization: Path | None = None
    """Set when `text` is `kubectl kustomize` output rendered from this folder."""
    origin_base: Path | None = None
    """Folder that `config.kubernetes.io/origin` paths in `text` are relative to (kustomize output only)."""
    error: str | None = None
    """Why the file could not be read as text; `text` is empty then."""


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise InputError(
            "rendering a kustomization needs `kubectl` on PATH (`kubectl kustomize`). "
            "Install kubectl, or render it yourself: `kubectl kustomize DIR | gpu-policy check -`."
        )
    return kubectl


def _run_kustomize(kubectl: str, folder: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [kubectl, "kustomize", str(folder)],
            capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"kubectl kustomize {folder} did not finish in {KUSTOMIZE_TIMEOUT_SECONDS}s") \
            from exc


def render_kustomization(folder: Path) -> str:
    """`kubectl kustomize folder` output (no origin annotations)."""
    try:
        kubectl = _kubectl()
    except InputError as exc:
        raise InputError(f"{folder} is a kustomization: {exc}") from exc
    done = _run_kustomize(kubectl, folder)
    if done.returncode != 0:
        raise InputError(f"kubectl kustomize {folder} failed:\n{done.stderr.strip()}")
    return done.stdout


def render_with_origins(folder: Path) -> tuple[str, Path | None]:
    """Render `folder` through a throw-away overlay that turns on kustomize's origin annotations.

    Returns the output and the overlay folder the annotations' paths are relative to; when the overlay cannot
    be rendered (an old kustomize without buildMetadata, say) the folder is rendered directly, base None.
    The overlay only adds `config.kubernetes.io/origin` annotations, which the loader removes again.
    """
    try:
        kubectl = _kubectl()
    except InputError as exc:
        raise InputError(f"{folder} is a kustomization: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="gpu-policy-kustomize-") as tmp:
        overlay = Path(tmp).resolve()
        # kustomize accepts another kustomization folder as a resource only by a relative path.
        relative = os.path.relpath(folder.resolve(), overlay)
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - {json.dumps(relative)}\nbuildMetadata: [originAnnotations]\n",
            encoding="utf-8",
        )
        done = _run_kustomize(kubectl, overlay)
        if done.returncode == 0:
            return done.stdout, overlay
    return render_kustomization(folder), None


def _too_large(label: str, size: int) -> str:
    mib = 1024 * 1024
    return f"{label}: file is {size // mib} MiB, over the {MAX_FILE_BYTES // mib} MiB limit; refused"


def decode_bytes(data: bytes, label: str) -> tuple[str, str | None]:
    """(text, error): UTF-8 (with or without BOM) or UTF-16 with a BOM, as YAML allows; else an error."""
    if len(data) > MAX_FILE_BYTES:
        return "", _too_large(label, len(data))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError as exc:
            return "", f"{label}: not valid UTF-16 text ({exc.reason} at byte {exc.start})"
    if b"\x00" in data:
        return "", f"{label}: binary file (contains NUL bytes), not a YAML or JSON manifest"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return "", f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}); manifests are UTF-8"


def _read_file(path: Path, name: str) -> Stream:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # refuse before reading it into memory
            return Stream("", str(path), name, error=_too_large(str(path), size))
        data = path.read_bytes()
    except OSError as exc:
        return Stream("", str(path), name, error=f"{path}: cannot read: {exc.strerror}")
    text, error = decode_bytes(data, str(path))
    return Stream(text, str(path), name, error=error)


def _kustomization_stream(folder: Path, name: str) -> Stream:
    text, base = render_with_origins(folder)
    return Stream(text, str(folder), name or folder.name, kustomization=folder, origin_base=base)


def _walk_folder(folder: Path, root: Path) -> Iterator[Stream]:
    if kustomization_file(folder) is not None:
        yield _kustomization_stream(folder, folder.relative_to(root).as_posix() if folder != root else "")
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk_folder(entry, root)
        elif entry.suffix in MANIFEST_SUFFIXES and entry.is_file():
            yield _read_file(entry, entry.relative_to(root).as_posix())


def iter_streams(paths: list[str]) -> Iterator[Stream]:
    """Every input as text, in the order given; folders recurse in sorted order so runs are reproducible."""
    for raw in paths:
        if raw == "-":
            buffer = getattr(sys.stdin, "buffer", None)
            if buffer is not None:
                text, error = decode_bytes(buffer.read(), STDIN)
            else:  # a text stream without bytes underneath (tests, embedding)
                text, error = sys.stdin.read(), None
            yield Stream(text, STDIN, STDIN, error=error)
            continue
        path = Path(raw)
        if path.is_dir():
            yield from _walk_folder(path, path)
        elif path.is_file():
            yield _read_file(path, path.name)
        else:
            raise InputError(f"{raw}: no such file or folder")
