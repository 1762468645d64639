"""Turn the paths a user gives into text streams: files, folders, stdin and kustomizations.

A path that does not exist, or a kustomization that cannot be rendered, stops the run (InputError): no
verdict is possible. A file that exists but cannot be read as text (binary, not UTF-8, too large, unreadable) is a
Stream with `error` set: the loader reports it as a finding and every other file is still checked. What is not
read on purpose (outside the folder, not a regular file, a template, another tool's YAML, excluded) is a Stream
with `skipped` set: listed as not checked, with why. A kustomization refused for what it contains (a remote base,
a path outside the folder, a build that would not end) is an `error` Stream too. How folders are walked:
walk.py; how files are read: files.py; how kustomizations are rendered: kustomize.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gpu_policy.errors import InputError
from gpu_policy.loading.exclude import Exclude
from gpu_policy.loading.files import FileRead, read_regular, read_stdin, too_large
from gpu_policy.loading.kustomize import KustomizeRefused, Renderer, local_bases
from gpu_policy.loading.limits import DEFAULT_LIMITS, Limits, shown_size
from gpu_policy.loading.not_manifests import MANIFEST_SUFFIXES, other_tool_reason, template_reason
from gpu_policy.loading.walk import KUSTOMIZATION_FILES, Entry, walk

__all__ = ["MANIFEST_SUFFIXES", "ORIGIN_ANNOTATION", "STDIN", "Stream", "decode_bytes", "iter_streams"]

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
    """Why the file could not be read as text; `text` is empty then (a finding)."""
    skipped: str | None = None
    """Why the file was not read on purpose; `text` is empty then (listed as not checked, not a finding)."""
    root: Path | None = None
    """The input folder (resolved): nothing outside it is read on behalf of this stream (origin annotations)."""
    template: str | None = None
    """Set for a template file read only to be substituted (`--env`): why it is listed if it still is one."""


def decode_bytes(data: bytes, label: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str | None]:
    """(text, error): UTF-8 (with or without BOM) or UTF-16 with a BOM, as YAML allows; else an error."""
    if len(data) > limits.max_file_bytes:
        return "", too_large(label, len(data), limits)
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


def _file_stream(read: FileRead, source: str, name: str, root: Path | None, limits: Limits,
                 template: str | None = None) -> Stream:
    if read.skipped is not None:
        return Stream("", source, name, skipped=read.skipped, root=root)
    if read.error is not None:
        return Stream("", source, name, error=read.error, root=root)
    text, error = decode_bytes(read.data, source, limits)
    return Stream(text, source, name, error=error, root=root, template=template)


@dataclass(frozen=True)
class _Options:
    limits: Limits
    exclude: Exclude
    allow_remote_bases: bool
    substitute: bool
    """Templates by suffix are read (to be substituted, then checked if no other placeholder is left)."""


def _entry_stream(entry: Entry, root: Path, renderer: Renderer, options: _Options) -> Stream:
    source = str(entry.shown)
    if entry.kind == "kustomization":
        assert entry.real is not None
        try:
            text, base = renderer.render_with_origins(entry.real)
        except KustomizeRefused as exc:
            return Stream("", source, entry.name or entry.shown.name, error=str(exc), root=root)
        return Stream(text, source, entry.name or entry.shown.name, kustomization=entry.shown,
                      origin_base=base, root=root)
    if entry.kind == "file":
        assert entry.real is not None
        return _file_stream(read_regular(entry.real, source, options.limits), source, entry.name, root,
                            options.limits)
    if entry.kind == "template" and options.substitute:
        assert entry.real is not None
        return _file_stream(read_regular(entry.real, source, options.limits), source, entry.name, root,
                            options.limits, template=entry.reason)
    if entry.kind == "error":
        return Stream("", source, entry.name, error=entry.reason, root=root)
    return Stream("", source, entry.name, skipped=entry.reason, root=root)


def _bases_rendered_by_overlays(entries: list[Entry], root: Path, shown_root: Path, limits: Limits
                                ) -> dict[Path | None, str]:
    """Kustomization folders of the walk that another kustomization of the walk builds on -> that one (shown)."""
    folders = {entry.real: entry for entry in entries if entry.kind == "kustomization"}
    if len(folders) < 2:
        return {}
    rendered_in: dict[Path | None, str] = {}
    for folder, entry in folders.items():
        assert folder is not None
        for base in local_bases(folder, root, shown_root, limits):
            if base in folders and base != folder:
                rendered_in.setdefault(base, str(entry.shown))
    return rendered_in


def _path_streams(raw: str, options: _Options) -> Iterator[Stream]:
    path = Path(raw)
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise InputError(f"{raw}: no such file or folder") from exc
    except OSError as exc:
        yield Stream("", raw, path.name, error=f"{raw}: cannot read: {exc.strerror}")
        return
    if stat.S_ISDIR(st.st_mode):
        root = Path(os.path.realpath(path))
        renderer = Renderer(root, path, options.limits, options.allow_remote_bases)
        entries = list(walk(path, options.limits, options.exclude))
        rendered_in = _bases_rendered_by_overlays(entries, root, path, options.limits)
        for entry in entries:
            overlay = rendered_in.get(entry.real) if entry.kind == "kustomization" else None
            if overlay is not None:
                yield Stream("", str(entry.shown), entry.name, root=root, skipped=(
                    f"a kustomization that {overlay} builds on: checked as part of it, as it is applied "
                    "(`kubectl apply -k`), not rendered on its own"))
            else:
                yield _entry_stream(entry, root, renderer, options)
        return
    # A file named on the command line is read even through a symbolic link: the user chose that path.
    name = path.name
    pattern = options.exclude.match(name, False) if options.exclude else None
    template = template_reason(name)
    other = other_tool_reason(name)
    skipped = None
    if pattern is not None:
        skipped = f"{raw}: excluded by --exclude {pattern}"
    elif template is not None and not options.substitute:
        skipped = f"{raw}: {template}"
    elif template is None and other is not None:
        skipped = f"{raw}: {other}"
    elif name in KUSTOMIZATION_FILES:
        # kustomize's build file (kustomize api/konfig/general.go RecognizedKustomizationFileNames), never an
        # object of the cluster: kustomize.config.k8s.io has no metadata.name to require. What reaches the cluster
        # is what its folder builds (`kubectl apply -k`), which a folder path renders; a hook handing over the
        # changed files one by one must not get "metadata.name is missing" for it.
        folder = str(path.parent)
        skipped = (f"{raw}: a kustomization (kustomize's build file), not an object of the cluster; not checked on "
                   f"its own: check its folder (`gpu-policy check {folder}`) for what `kubectl apply -k {folder}` "
                   "applies")
    if skipped is not None:
        yield Stream("", raw, name, skipped=skipped)
        return
    read = read_regular(path, raw, options.limits, follow=True)
    yield _file_stream(read, raw, name, None, options.limits,
                       template=f"{raw}: {template}" if template is not None else None)


def iter_streams(paths: Sequence[str], *, limits: Limits = DEFAULT_LIMITS, exclude: Sequence[str] = (),
                 allow_remote_bases: bool = False, substitute: bool = False) -> Iterator[Stream]:
    """Every input as text, in the order given; folders recurse in sorted order so runs are reproducible."""
    options = _Options(limits, Exclude(exclude), allow_remote_bases, substitute)
    total = 0
    over = False
    for stream in _all_streams(paths, options):
        total += len(stream.text)
        if total <= limits.max_total_bytes:
            yield stream
            continue
        # Parsing is what costs: text past the run's budget is dropped before it is parsed.
        budget = shown_size(limits.max_total_bytes)
        if not over:
            over = True
            yield replace(stream, text="", error=f"{stream.source}: the inputs hold more than {budget} of text "
                                                 "in all; this and every later input are not checked")
        else:
            yield replace(stream, text="", skipped=f"not checked: the inputs hold more than {budget} in all")


def _all_streams(paths: Sequence[str], options: _Options) -> Iterator[Stream]:
    for raw in paths:
        if raw == "-":
            data, error = read_stdin(STDIN, options.limits)
            if isinstance(data, bytes) and error is None:
                text, error = decode_bytes(data, STDIN, options.limits)
            else:
                text = data if isinstance(data, str) else ""
            yield Stream(text, STDIN, STDIN, error=error)
            continue
        yield from _path_streams(raw, options)
