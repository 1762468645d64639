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

from gpu_policy.schemas.crds import CRD_PATH_ENV, default_crd_paths
from gpu_policy.testbed import build, cluster

ENABLE_ENV = "GPU_POLICY_TESTBED"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: starts the local testbed cluster (needs its built binaries)")


def binaries_or_skip(components: tuple[str, ...] = ()) -> dict[str, build.Layout]:
    """The core's layout and those of `components` (keda, karpenter); built first when GPU_POLICY_TESTBED=1."""
    if shutil.which("go") is None:
        pytest.skip("testbed: no Go toolchain to build or key the testbed binaries")
    targets = build.layouts(components)
    missing = {name: target.missing() for name, target in targets.items() if target.missing()}
    if not missing:
        return targets
    if os.environ.get(ENABLE_ENV) != "1":
        what = "; ".join(f"{name}: {', '.join(names)} missing in {targets[name].bin_dir}"
                         for name, names in missing.items())  # fmt: skip
        flag = f" --with {','.join(components)}" if components else ""
        pytest.skip(f"testbed binaries not built ({what}); run `gpu-policy testbed build{flag}` or set "
                    f"{ENABLE_ENV}=1 to build them")  # fmt: skip
    return build.build_components(components, progress=sys.stderr)


def running_testbed(
    tmp_path_factory: pytest.TempPathFactory, components: tuple[str, ...] = (), hpa_sync_seconds: int | None = None,
    crds: bool | tuple[str, ...] = True,
) -> Iterator[cluster.State]:
    """Start a testbed in a temporary state folder and always stop it: the body of every testbed fixture.
    `crds=False` installs none (GPU_POLICY_CRD_PATH names an empty folder while it starts), a tuple of folder names
    only the CRDs in those subfolders of each CRD path (("karpenter", "keda") of ../shared/crds: not the Prometheus
    Operator's 4.4 MB); the API server spends about 6 s of CPU establishing the 21 pinned ones, which tests that
    never use them need not wait for. A CRD path without such subfolders installs all its CRDs."""
    targets = binaries_or_skip(components)
    state_dir = tmp_path_factory.mktemp("testbed") / "state"
    with pytest.MonkeyPatch.context() as patch:
        if crds is False:
            patch.setenv(CRD_PATH_ENV, str(tmp_path_factory.mktemp("no-crds")))
        elif crds is not True:
            chosen = [root / name for root in default_crd_paths() for name in crds if (root / name).is_dir()]
            if chosen:
                patch.setenv(CRD_PATH_ENV, os.pathsep.join(map(str, chosen)))
        state = cluster.up(state_dir, binaries=targets["core"], die_with_caller=True, components=components,
                           addons=targets, hpa_sync_seconds=hpa_sync_seconds)
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
