"""Issue 9: the file walk and the reads stay inside what the user gave, and nothing in it can hang or exhaust us."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.loading import files, walk
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.loader import LOAD_RULE, LoadResult, load_manifests

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block blocks."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def reasons(result: LoadResult) -> dict[str, str]:
    return {Path(n.source).name: n.reason for n in result.not_checked}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path the loader opens to read."""
    seen: list[Path] = []
    original = files.read_regular

    def spy(path: Path, *args: Any, **kwargs: Any) -> files.FileRead:
        seen.append(Path(path))
        return original(path, *args, **kwargs)

    for module in ("gpu_policy.loading.sources", "gpu_policy.loading.loader", "gpu_policy.loading.kustomize"):
        monkeypatch.setattr(f"{module}.read_regular", spy)
    return seen


def test_symlinks_out_of_the_input_folder_are_listed_and_never_read(tmp_path: Path, reads: list[Path]) -> None:
    write(tmp_path / "outside" / "secret.yaml", CONFIGMAP.format(name="secret"))
    inside = tmp_path / "in"
    write(inside / "ok.yaml", CONFIGMAP.format(name="ok"))
    (inside / "leak.yaml").symlink_to(tmp_path / "outside" / "secret.yaml")
    (inside / "leakdir").symlink_to(tmp_path / "outside")
    (inside / "passwd.yaml").symlink_to("/etc/passwd")
    result = load_manifests([str(inside)])
    assert [d.name for d in result.documents] == ["ok"]
    found = reasons(result)
    assert found["leak.yaml"] == f"a symbolic link to {tmp_path / 'outside' / 'secret.yaml'}, outside {inside}; " \
                                 "not followed"
    assert "outside" in found["leakdir"] and "outside" in found["passwd.yaml"]
    assert result.findings == []
    assert all(str(p).startswith(str(inside)) for p in reads), reads


def test_a_link_inside_the_folder_is_followed_but_a_file_is_read_once(tmp_path: Path, reads: list[Path]) -> None:
    write(tmp_path / "a.yaml", CONFIGMAP.format(name="a"))
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    write(tmp_path / "real" / "c.yaml", CONFIGMAP.format(name="c"))
    (tmp_path / "z-alias").symlink_to("real")
    result = load_manifests([str(tmp_path)])
    assert [d.name for d in result.documents] == ["a", "c"]
    assert reasons(result) == {
        "b.yaml": "the same file as a.yaml; read once",
        "z-alias": "the same folder as real (a symbolic link); walked once",
    }
    assert len(reads) == 2


def test_two_links_to_the_folder_itself_cannot_make_the_walk_exponential(tmp_path: Path, reads: list[Path]) -> None:
    write(tmp_path / "cm.yaml", CONFIGMAP.format(name="cm"))
    for name in ("x", "y", "z"):
        (tmp_path / name).symlink_to(".")
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "up").symlink_to("..")
    started = time.monotonic()
    with at_most(5):
        result = load_manifests([str(tmp_path)])
    assert time.monotonic() - started < 2
    assert [d.name for d in result.documents] == ["cm"] and len(reads) == 1
    assert sorted(reasons(result)) == ["up", "x", "y", "z"]
    assert all("the same folder as ." in r for r in reasons(result).values())


def test_a_fifo_named_yaml_is_listed_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    write(tmp_path / "ok.yaml", CONFIGMAP.format(name="ok"))
    with at_most(5):
        result = load_manifests([str(tmp_path)])
        direct = load_manifests([str(tmp_path / "pipe.yaml")])
    assert [d.name for d in result.documents] == ["ok"]
    assert reasons(result) == {"pipe.yaml": "a FIFO (named pipe), not a regular file; not read"}
    assert "a FIFO" in direct.not_checked[0].reason and direct.findings == []


def test_a_device_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # in a folder: a link out of it
    with at_most(5):
        in_folder = load_manifests([str(tmp_path)])
        direct = load_manifests(["/dev/zero"])  # named by the user: still only regular files are read
    assert "outside" in reasons(in_folder)["zero.yaml"]
    assert [(n.source, n.reason) for n in direct.not_checked] == [
        ("/dev/zero", "a character device, not a regular file; not read")
    ]


def test_a_fifo_swapped_in_after_the_walk_looked_is_not_read(tmp_path: Path) -> None:
    # The file is checked again on the opened descriptor (fstat), so a swap between look and open changes nothing.
    os.mkfifo(tmp_path / "swap.yaml")
    with at_most(5):
        read = files.read_regular(tmp_path / "swap.yaml", "swap.yaml", Limits())
    assert read.skipped is not None and read.data == b""


def test_a_huge_file_is_refused_from_its_size_without_reading_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(5 * 1024**3)  # 5 GiB, sparse
    read_bytes: list[int] = []
    original = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: read_bytes.append(n) or original(fd, n))
    result = load_manifests([str(tmp_path)])
    assert [(f.rule_id, f.message) for f in result.findings] == [
        (LOAD_RULE, f"{big}: 5120 MiB, over the 32 MiB limit; refused")
    ]
    assert read_bytes == []


def test_reads_stop_at_the_limit_plus_one_byte_when_the_size_lies(tmp_path: Path) -> None:
    # /proc files say size 0 and a growing file says less than it holds: the read itself is capped.
    limit = 1000
    path = write(tmp_path / "grows.yaml", "a: " + "x" * 5000 + "\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert len(files._read_capped(fd, limit)) == limit + 1
    finally:
        os.close(fd)


class _EndlessZeros(io.RawIOBase):
    """Standard input that never ends: reading it whole would never return (or exhaust memory)."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.served > 64 * 1024 * 1024:
            raise AssertionError("stdin was read far past the limit")
        view = memoryview(buffer)
        view[:] = b"\0" * len(view)
        self.served += len(view)
        return len(view)


def test_stdin_is_read_in_chunks_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _EndlessZeros()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(raw)))
    result = load_manifests(["-"], limits=Limits(max_file_bytes=1024 * 1024))
    assert [(f.resource, f.message) for f in result.findings] == [
        ("<stdin>", "<stdin>: more than 1 MiB, over the 1 MiB limit; refused")
    ]
    assert raw.served <= 1024 * 1024 + 64 * 1024


def test_an_unreadable_subfolder_is_a_finding_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a" / "ok.yaml", CONFIGMAP.format(name="ok"))
    write(tmp_path / "locked" / "hidden.yaml", CONFIGMAP.format(name="hidden"))
    write(tmp_path / "z.yaml", CONFIGMAP.format(name="z"))
    original = os.listdir
    locked = str(tmp_path / "locked")

    def listdir(path: Any) -> list[str]:  # as chmod 000 does for anyone but root
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(walk.os, "listdir", listdir)
    result = load_manifests([str(tmp_path)])
    assert [d.name for d in result.documents] == ["ok", "z"]
    assert [(f.rule_id, f.resource, f.message) for f in result.findings] == [
        (LOAD_RULE, "<file:locked>", f"{locked}: folder cannot be read: Permission denied")
    ]
    assert [n.source for n in result.not_checked] == [locked]


def test_an_unreadable_file_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path / "locked.yaml", CONFIGMAP.format(name="locked"))
    write(tmp_path / "ok.yaml", CONFIGMAP.format(name="ok"))
    original = os.open

    def fake_open(path: Any, flags: int, *args: Any) -> int:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return original(path, flags, *args)

    monkeypatch.setattr(files.os, "open", fake_open)
    result = load_manifests([str(tmp_path)])
    assert [d.name for d in result.documents] == ["ok"]
    assert [f.message for f in result.findings] == [f"{locked}: cannot read: Permission denied"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_a_folder_without_permissions_is_a_finding(tmp_path: Path) -> None:  # pragma: no cover - non-root runs
    write(tmp_path / "locked" / "x.yaml", CONFIGMAP.format(name="x"))
    (tmp_path / "locked").chmod(0)
    try:
        result = load_manifests([str(tmp_path)])
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [f.resource for f in result.findings] == ["<file:locked>"]


def test_deep_folders_do_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    chain = [tmp_path / "deep"]
    for _ in range(600):  # the old recursive walk used two frames a level: over the recursion limit
        chain.append(chain[-1] / "d")
    for folder in chain:
        folder.mkdir()
    leaf = write(chain[-1] / "deep.yaml", CONFIGMAP.format(name="deep"))
    try:
        assert [d.name for d in load_manifests([str(tmp_path)]).documents] == ["deep"]
    finally:  # shutil.rmtree (pytest's clean-up of old temporary folders) recurses: remove it bottom up here
        leaf.unlink()
        for folder in reversed(chain):
            folder.rmdir()


def test_the_walk_stops_after_its_entry_limit_and_says_so(tmp_path: Path) -> None:
    for i in range(10):
        write(tmp_path / f"cm{i}.yaml", CONFIGMAP.format(name=f"cm{i}"))
    result = load_manifests([str(tmp_path)], limits=Limits(max_walk_entries=4))
    assert [d.name for d in result.documents] == ["cm0", "cm1", "cm2", "cm3"]
    assert [(f.resource, f.message) for f in result.findings] == [
        (f"<file:{tmp_path.name}>", f"{tmp_path}: more than 4 entries; the rest is not checked")
    ]


def test_a_file_of_many_tiny_documents_stops_at_the_document_limit(tmp_path: Path) -> None:
    write(tmp_path / "many.yaml", "a: 1\n---\n" * 50 + CONFIGMAP.format(name="late"))
    result = load_manifests([str(tmp_path)], limits=Limits(max_documents_per_file=20))
    assert result.documents == []
    messages = sorted({f.message for f in result.findings})
    assert messages[-1] == ("the file holds more than 20 documents; this document and the rest of the file are "
                            "not read")
    assert len(result.findings) == 21  # 20 documents without identity (a manifest file: errors) and the limit


def test_past_the_runs_text_budget_inputs_are_not_parsed(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.yaml", CONFIGMAP.format(name=name))  # 71 bytes each
    result = load_manifests([str(tmp_path)], limits=Limits(max_total_bytes=150))
    assert [d.name for d in result.documents] == ["a", "b"]
    assert [f.message for f in result.findings] == [
        f"{tmp_path / 'c.yaml'}: the inputs hold more than 150 bytes of text in all; this and every later input are "
        "not checked"
    ]
