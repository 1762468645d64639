"""Walk an input folder without leaving it: what to read, what to render, and what is not checked and why.

- Symbolic links are followed only when what they point at is inside the input folder (resolved);
- every folder is entered once and every file read once, by (device, inode): two links to `.` cannot make the
  walk exponential and a file reached twice is read once (the second name is listed);
- only regular files are read (a FIFO or device named `*.yaml` is listed, never opened);
- an unreadable folder is an `error` entry (reported), never a crash;
- hidden entries, other tools' YAML, Helm charts and `--exclude`d paths are listed as not checked; templates
  (by suffix) are `template` entries: read only when `--env` substitutes them;
- the walk is iterative (no recursion limit) and stops after `Limits.max_walk_entries` entries (an error:
  whatever follows is not checked).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpu_policy.loading.exclude import Exclude
from gpu_policy.loading.files import not_regular
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.not_manifests import MANIFEST_SUFFIXES, other_tool_reason, template_reason

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
VCS_FOLDERS = frozenset({".git", ".hg", ".svn"})


@dataclass(frozen=True)
class Entry:
    kind: Literal["file", "template", "kustomization", "skipped", "error"]
    shown: Path
    """The path as the user would write it: the input path joined with the path inside it."""
    name: str
    """The path relative to the input folder (POSIX), stable whatever the working directory."""
    real: Path | None = None
    """Resolved path to open (files) or render (kustomizations)."""
    reason: str = ""


@dataclass(frozen=True)
class _Folder:
    shown: Path
    name: str
    real: Path


def is_within(path: str | Path, root: str | Path) -> bool:
    """`path` is `root` or below it; both must already be resolved (os.path.realpath)."""
    path, root = str(path), str(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _interesting(name: str) -> bool:
    """Names whose skipping must be listed: anything that could hold a manifest."""
    return name.endswith(MANIFEST_SUFFIXES) or template_reason(name) is not None


class _Walk:
    def __init__(self, top: Path, limits: Limits, exclude: Exclude, kustomizations: bool) -> None:
        self.top = top
        self.root = Path(os.path.realpath(top))
        self.limits = limits
        self.exclude = exclude
        self.kustomizations = kustomizations
        self.seen_folders: dict[tuple[int, int], str] = {}
        self.seen_files: dict[tuple[int, int], str] = {}
        self.count = 0
        self.stopped = False

    def run(self) -> Iterator[Entry]:
        try:
            st = os.stat(self.root)
        except OSError as exc:
            yield Entry("error", self.top, "", reason=f"{self.top}: folder cannot be read: {exc.strerror}")
            return
        self.seen_folders[(st.st_dev, st.st_ino)] = "."
        stack: list[Iterator[Entry | _Folder]] = [self._children(_Folder(self.top, "", self.root))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, _Folder):
                stack.append(self._children(item))
            else:
                yield item
                if self.stopped:
                    return

    def _children(self, folder: _Folder) -> Iterator[Entry | _Folder]:
        try:
            names = sorted(os.listdir(folder.real))
        except OSError as exc:
            yield Entry("error", folder.shown, folder.name,
                        reason=f"{folder.shown}: folder cannot be read: {exc.strerror}")
            return
        if self.kustomizations and any(name in KUSTOMIZATION_FILES for name in names):
            yield Entry("kustomization", folder.shown, folder.name, real=folder.real)
            return
        if "Chart.yaml" in names:
            yield Entry("skipped", folder.shown, folder.name, reason=(
                f"{folder.shown}: a Helm chart (Chart.yaml): its templates become manifests only when helm "
                "renders them; not checked (check `helm template` output instead)"))
            return
        for name in names:
            self.count += 1
            if self.count > self.limits.max_walk_entries:
                self.stopped = True
                yield Entry("error", self.top, "", reason=(
                    f"{self.top}: more than {self.limits.max_walk_entries} entries; the rest is not checked"))
                return
            yield from self._child(folder, name)

    def _child(self, folder: _Folder, name: str) -> Iterator[Entry | _Folder]:
        shown = folder.shown / name
        relative = f"{folder.name}/{name}" if folder.name else name
        physical = folder.real / name
        try:
            st = os.lstat(physical)
        except OSError as exc:
            if _interesting(name):
                yield Entry("error", shown, relative, reason=f"{shown}: cannot read: {exc.strerror}")
            return
        if name.startswith("."):
            if name in VCS_FOLDERS:
                return
            if stat.S_ISDIR(st.st_mode) or _interesting(name):
                what = "folder" if stat.S_ISDIR(st.st_mode) else "file"
                yield Entry("skipped", shown, relative, reason=f"{shown}: hidden {what}; not checked")
            return
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(physical)
            try:
                st = os.stat(physical)
            except OSError:
                if _interesting(name):
                    yield Entry("skipped", shown, relative,
                                reason=f"{shown}: a symbolic link to a missing path; not checked")
                return
            if not is_within(target, self.root):
                if stat.S_ISDIR(st.st_mode) or _interesting(name):
                    yield Entry("skipped", shown, relative, reason=(
                        f"{shown}: a symbolic link to {target}, outside {self.top}; not followed"))
                return
            physical = Path(target)
        is_folder = stat.S_ISDIR(st.st_mode)
        pattern = self.exclude.match(relative, is_folder) if self.exclude else None
        if pattern is not None:
            if is_folder or _interesting(name):
                yield Entry("skipped", shown, relative, reason=f"{shown}: excluded by --exclude {pattern}")
            return
        key = (st.st_dev, st.st_ino)
        if is_folder:
            first = self.seen_folders.get(key)
            if first is not None:
                yield Entry("skipped", shown, relative,
                            reason=f"{shown}: the same folder as {first} (a symbolic link); walked once")
                return
            self.seen_folders[key] = relative
            yield _Folder(shown, relative, physical)
            return
        if not _interesting(name):
            return
        if not stat.S_ISREG(st.st_mode):
            yield Entry("skipped", shown, relative, reason=not_regular(str(shown), st.st_mode))
            return
        template = template_reason(name)
        other = other_tool_reason(relative) if template is None else None
        if other is not None:
            yield Entry("skipped", shown, relative, reason=f"{shown}: {other}")
            return
        first = self.seen_files.get(key)
        if first is not None:
            yield Entry("skipped", shown, relative, reason=f"{shown}: the same file as {first}; read once")
            return
        self.seen_files[key] = relative
        if template is not None:  # read only when --env substitutes it; listed otherwise
            yield Entry("template", shown, relative, real=physical, reason=f"{shown}: {template}")
        else:
            yield Entry("file", shown, relative, real=physical)


def walk(top: Path, limits: Limits, exclude: Exclude | None = None, *, kustomizations: bool = True
         ) -> Iterator[Entry]:
    """Entries under folder `top` in sorted order (depth first), so runs are reproducible.

    With `kustomizations` (the default) a folder holding a kustomization file is one `kustomization` entry and is
    not entered; without, it is walked like any folder (to index the files a kustomization was built from).
    """
    return _Walk(top, limits, exclude or Exclude(), kustomizations).run()
