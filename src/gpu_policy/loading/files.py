"""Read one file, or stdin, without letting what it is decide what we do: regular files only, bounded reads.

A path is opened with `O_NOFOLLOW` (unless the caller already resolved it or the user named it) and
`O_NONBLOCK` (opening a FIFO must not wait for a writer), then `fstat`ed: anything but a regular file (a FIFO,
`/dev/zero`, a socket) is not read. At most `max_file_bytes + 1` bytes are ever read, so a file that is too large,
or grows while it is read, is refused without being held in memory.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from gpu_policy.loading.limits import Limits, shown_size

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileRead:
    data: bytes = b""
    error: str | None = None
    """Why the file could not be read although it should have been (a finding: unreadable, too large)."""
    skipped: str | None = None
    """Why the file was deliberately not read (listed as not checked): not a regular file, a symlink."""


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(label: str, mode: int) -> str:
    return f"{label}: {file_kind(mode)}, not a regular file; not read"


def too_large(label: str, size: int, limits: Limits, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"{label}: {more}{shown_size(size)}, over the {shown_size(limits.max_file_bytes)} limit; refused"


def _read_capped(fd: int, limit: int) -> bytes:
    """Up to limit + 1 bytes: enough to know a file is over the limit without reading the rest."""
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def read_regular(path: Path, label: str, limits: Limits, *, follow: bool = False) -> FileRead:
    """The bytes of `path` if it is a regular file within the size limit; otherwise why not.

    `follow=False` refuses a symbolic link as the last component (the caller resolved and checked it already).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        before = os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        return FileRead(error=f"{label}: cannot read: {exc.strerror}")
    if not stat.S_ISREG(before.st_mode):  # never even open a device or a FIFO: opening one can have effects
        return FileRead(skipped=not_regular(label, before.st_mode))
    if before.st_size > limits.max_file_bytes:
        return FileRead(error=too_large(label, before.st_size, limits))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return FileRead(skipped=f"{label}: a symbolic link; not followed")
        return FileRead(error=f"{label}: cannot read: {exc.strerror}")
    try:
        st = os.fstat(fd)  # what was opened, which may not be what was looked at a moment ago
        if not stat.S_ISREG(st.st_mode):
            return FileRead(skipped=not_regular(label, st.st_mode))
        data = _read_capped(fd, limits.max_file_bytes)
    except BlockingIOError:
        return FileRead(skipped=f"{label}: cannot be read without waiting; not read")
    except OSError as exc:
        return FileRead(error=f"{label}: cannot read: {exc.strerror}")
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        return FileRead(error=too_large(label, len(data), limits, at_least=True))
    return FileRead(data=data)


def read_stdin(label: str, limits: Limits) -> tuple[bytes | str, str | None]:
    """stdin in chunks, at most the limit + 1 (bytes, or text when stdin has no bytes underneath); or an error."""
    buffer = getattr(sys.stdin, "buffer", None)
    limit = limits.max_file_bytes
    if buffer is None:  # a text stream without bytes underneath (tests, embedding)
        text = sys.stdin.read(limit + 1)
        if len(text) > limit:
            return "", too_large(label, len(text), limits, at_least=True)
        return text, None
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = buffer.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    if total > limit:
        return b"", too_large(label, total, limits, at_least=True)
    return b"".join(parts), None
