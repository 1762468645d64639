"""The builder runs `go build` only for binaries missing from the key's folder, and reports failures exactly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.testbed import build
from gpu_policy.testbed.pins import wrapper_modules_dir

pytestmark = pytest.mark.skipif(build.shutil.which("go") is None, reason="the builder needs the Go toolchain")


def _fill(bin_dir: Path, names: tuple[str, ...]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


def test_nothing_is_built_when_every_binary_of_the_key_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPU_POLICY_TESTBED_CACHE", str(tmp_path))
    target = build.layout()
    _fill(target.bin_dir, build.BINARY_NAMES)

    def must_not_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"go build ran although the binary is cached: {args}")

    assert build.build(runner=must_not_run).bin_dir == target.bin_dir
    assert target.missing() == []


def test_only_the_missing_binary_is_built_and_a_failure_names_command_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPU_POLICY_TESTBED_CACHE", str(tmp_path))
    target = build.layout()
    _fill(target.bin_dir, tuple(n for n in build.BINARY_NAMES if n != "kwok"))
    calls: list[list[str]] = []

    def failing_go(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        assert kwargs["cwd"] == wrapper_modules_dir() / "kwok"
        assert kwargs["env"]["CGO_ENABLED"] == "0"
        return subprocess.CompletedProcess(command, 1, "", "go: sigs.k8s.io/kwok@v0.8.0: reading proxy: 404 Not Found")

    with pytest.raises(build.BuildError, match=r"go build .*kwok/cmd/kwok.* exited 1:\ngo: sigs.k8s.io/kwok@v0.8.0"):
        build.build(runner=failing_go)
    assert len(calls) == 1 and calls[0][-1] == "sigs.k8s.io/kwok/cmd/kwok"
    assert target.missing() == ["kwok"]
    assert not any(p.name.endswith(".partial") for p in target.bin_dir.iterdir())
    assert os.access(target.binary("etcd"), os.X_OK)


def test_unknown_binary_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_POLICY_TESTBED_CACHE", str(tmp_path))
    with pytest.raises(build.BuildError, match="unknown testbed binary kubelet"):
        build.build(["kubelet"])
