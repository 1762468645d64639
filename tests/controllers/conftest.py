"""KEDA and Karpenter on the testbed: one testbed `--with keda,karpenter` for the whole package (see
tests/testbed/conftest.py for when it runs or skips: with GPU_POLICY_TESTBED=1 it always runs, building what is
missing)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gpu_policy.testbed import cluster
from tests.in_process import check_json
from tests.testbed.conftest import running_testbed

T = TypeVar("T")
CONTEXT = "gpu-policy-testbed"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


HPA_SYNC_SECONDS = 5
"""These tests wait for the HPA to act on KEDA's metric, not for when it acts: the controller manager reconciles HPAs
every 5 s here instead of Kubernetes' 15 s (test_keda's scaling test took 45 s, most of it waiting for syncs). The
drills, whose timings the simulator predicts, keep the default."""


@pytest.fixture(scope="package")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.State]:
    # KEDA's and Karpenter's CRDs: nothing here uses the Prometheus Operator's (KEDA queries the metrics stack's
    # Prometheus process), whose schemas cost the API server most of its start-up CPU.
    yield from running_testbed(tmp_path_factory, components=("keda", "karpenter"), hpa_sync_seconds=HPA_SYNC_SECONDS,
                               crds=("keda", "karpenter"))


@pytest.fixture(scope="package")
def kubeconfig(testbed: cluster.State) -> Path:
    return testbed.kubeconfig


@pytest.fixture(scope="package")
def api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 240.0, interval: float = 1.0) -> T:
    """Poll `probe` (bounded in time) until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout:.0f} s (last: {last!r})")


#: `gpu-policy check --format json ARGS` in this process (tests/in_process.py): (exit code, report, stderr).
gpu_policy = check_json


def findings_of(report: dict[str, Any], rule_id: str) -> list[dict[str, Any]]:
    return [f for f in report.get("findings", []) if f["rule_id"] == rule_id]


def condition(obj: dict[str, Any] | Any, kind: str) -> dict[str, Any] | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def is_true(obj: dict[str, Any] | Any, kind: str) -> bool:
    found = condition(obj, kind)
    return bool(found and found.get("status") == "True")
