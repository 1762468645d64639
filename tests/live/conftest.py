"""Live-mode tests run against one real testbed for the whole package (see tests/testbed/conftest.py for when
they run or skip)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed import cluster
from tests.testbed.conftest import running_testbed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


@pytest.fixture(scope="package")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    yield from running_testbed(tmp_path_factory)


@pytest.fixture(scope="package")
def kubeconfig(testbed: cluster.State) -> Path:
    return testbed.kubeconfig


@pytest.fixture(scope="package")
def reference_applied(kubeconfig: Path) -> list[dict[str, Any]]:
    """The bundled reference manifests, rendered by kustomize and applied server-side to the testbed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(reference_manifests_dir())], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "apply", "--server-side", "--field-manager=gpu-policy-test",
         "-f", "-"],
        input=rendered, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]
