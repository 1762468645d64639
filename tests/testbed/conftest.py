"""Integration tests against a real testbed (etcd, kube-apiserver, controller manager, scheduler, kwok).

They run when the pinned binaries are already built (`gpu-policy testbed build`) or when GPU_POLICY_TESTBED=1, which
builds them first (the first build takes long). Otherwise they are skipped with that reason. One testbed is started
per test module that asks for it, in a temporary state folder, and always stopped.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.testbed import build, cluster

ENABLE_ENV = "GPU_POLICY_TESTBED"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


def binaries_or_skip() -> build.Layout:
    if shutil.which("go") is None:
        pytest.skip("testbed: no Go toolchain to build or key the testbed binaries")
    target = build.layout()
    missing = target.missing()
    if not missing:
        return target
    if os.environ.get(ENABLE_ENV) != "1":
        pytest.skip(
            f"testbed binaries not built ({', '.join(missing)} missing in {target.bin_dir}); "
            f"run `gpu-policy testbed build` or set {ENABLE_ENV}=1 to build them"
        )
    return build.build(progress=sys.stderr)


def running_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    """Start a testbed in a temporary state folder and always stop it: the body of every testbed fixture."""
    binaries = binaries_or_skip()
    state_dir = tmp_path_factory.mktemp("testbed") / "state"
    state = cluster.up(state_dir, binaries=binaries, die_with_caller=True)
    try:
        yield state
    finally:
        cluster.down(state_dir)


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    yield from running_testbed(tmp_path_factory)


@pytest.fixture(scope="module")
def kubeconfig(testbed: cluster.State) -> Path:
    return testbed.kubeconfig
