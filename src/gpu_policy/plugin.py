"""The pytest plugin (entry point `pytest11`): options, the engine run as a session fixture, and the steps.

Any repository can run the bundled features on its own manifests:

    pytest --manifests=deploy/            # folder, file, kustomization, or `-` for stdin

or write its own features reusing these steps.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.engine import RunOptions, RunResult, run_engine
from gpu_policy.resources import features_dir, reference_manifests_dir
from gpu_policy.schemas.validator import default_crd_paths
from gpu_policy.steps import step_module_names

pytest_plugins = step_module_names()

SUITE_FILE = Path(__file__).resolve().parent / "suite" / "test_features.py"

preloaded_run: RunResult | None = None
"""Set by `gpu-policy check`, which runs the engine before pytest to report environment errors with exit 2."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpu-policy", "gpu-policy: GPU platform policy checks")
    group.addoption("--manifests", action="append", metavar="PATH", default=None,
                    help="manifests to check: file, folder, kustomization or '-' (repeatable); "
                         "default: the bundled reference manifests")
    group.addoption("--policies", metavar="DIR", default=None,
                    help="policies folder (cluster.yaml, workload-classes.yaml, ...); default: the bundled one")
    group.addoption("--profile", metavar="NAME", default=None,
                    help="policy profile: 'reference' for the bundled reference organisation's policies")
    group.addoption("--complete", action="store_true", default=None,
                    help="the manifests are the whole system: a reference to an absent object is a failure")
    group.addoption("--crd-dir", action="append", metavar="DIR", default=None,
                    help="folder of CRD YAML files (repeatable); default: $GPU_POLICY_CRD_PATH, then the cache")
    group.addoption("--ignore-missing-schemas", action="store_true", default=False,
                    help="list objects without a schema as not checked instead of failing")
    group.addoption("--gpu-policy-report", metavar="DIR", default=None,
                    help="write reports (simulation CSV/SVG, findings JSON) under DIR")
    group.addoption("--gpu-policy-today", metavar="YYYY-MM-DD", default=None,
                    help="the date exemptions expire against (default: today)")
    group.addoption("--no-bundled-features", action="store_true", default=False,
                    help="with --manifests, do not add the bundled feature suite to the run")


def _covers(arg: str, target: Path) -> bool:
    path = Path(arg.split("::", 1)[0]).resolve()
    return target == path or path in target.parents


def _feature_tags() -> set[str]:
    tags: set[str] = set()
    for feature in features_dir().glob("*.feature"):
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("@"):
                tags.update(tag.lstrip("@") for tag in line.split() if tag.startswith("@"))
    return tags


def pytest_configure(config: pytest.Config) -> None:
    # pytest-bdd turns Gherkin tags into marks; declaring them keeps `--strict-markers` usable and `-m` documented.
    descriptions = {"static": "checks that read manifests only", "live": "checks that need a cluster (--live)"}
    for tag in sorted(_feature_tags() | set(descriptions)):
        config.addinivalue_line("markers", f"{tag}: {descriptions.get(tag, 'feature tag')}")
    wants_suite = config.getoption("manifests") and not config.getoption("no_bundled_features")
    if wants_suite and not any(_covers(arg, SUITE_FILE) for arg in config.args):
        config.args.append(str(SUITE_FILE))


@pytest.fixture(scope="session")
def gpu_policy_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = request.config
    manifests = config.getoption("manifests") or [str(reference_manifests_dir())]
    crd_dirs = [Path(p) for p in config.getoption("crd_dir") or []] or default_crd_paths()
    report = config.getoption("gpu_policy_report")
    today = config.getoption("gpu_policy_today")
    return {
        "manifests": manifests,
        "policies_dir": Path(config.getoption("policies")) if config.getoption("policies") else None,
        "crd_paths": crd_dirs,
        "ignore_missing_schemas": bool(config.getoption("ignore_missing_schemas")),
        "report_dir": Path(report) if report else None,
        "today": dt.date.fromisoformat(today) if today else dt.date.today(),
        "profile": config.getoption("profile"),
        "complete": config.getoption("complete"),
    }


@pytest.fixture(scope="session")
def gpu_policy_run(gpu_policy_options: dict[str, Any]) -> RunResult:
    if preloaded_run is not None:
        return preloaded_run
    options = RunOptions(
        paths=list(gpu_policy_options["manifests"]),
        policies_dir=gpu_policy_options["policies_dir"],
        crd_paths=list(gpu_policy_options["crd_paths"]),
        ignore_missing_schemas=gpu_policy_options["ignore_missing_schemas"],
        report_dir=gpu_policy_options["report_dir"],
        today=gpu_policy_options["today"],
        profile=gpu_policy_options.get("profile"),
        complete=gpu_policy_options.get("complete"),
    )
    return run_engine(options)
