"""Live-mode tests run against a real testbed (see tests/testbed/conftest.py for when they run or skip)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.testbed import cluster
from tests.testbed.conftest import binaries_or_skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    binaries = binaries_or_skip()
    state_dir = tmp_path_factory.mktemp("testbed") / "state"
    state = cluster.up(state_dir, binaries=binaries, die_with_caller=True)
    try:
        yield state
    finally:
        cluster.down(state_dir)


@pytest.fixture(scope="module")
def kubeconfig(testbed: cluster.State) -> Path:
    return testbed.kubeconfig
