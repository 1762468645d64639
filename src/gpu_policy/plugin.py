"""The pytest plugin (entry point `pytest11`): options, the engine run as a session fixture, and the steps.

Any repository can run the bundled features on its own manifests:

    pytest --manifests=deploy/            # folder, file, kustomization, or `-` for stdin

or write its own features reusing these steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.engine import RunOptions, RunResult, parse_jobs, run_engine
from gpu_policy.resources import features_dir, reference_manifests_dir
from gpu_policy.schemas.validator import default_crd_paths
from gpu_policy.steps import step_module_names

pytest_plugins = step_module_names()

SUITE_FILE = Path(__file__).resolve().parent / "suite" / "test_features.py"
COLLECTOR_NAME = "gpu-policy-scenario-collector"
_BOUNDARY_KEY = pytest.StashKey[Path | None]()
_RUN_KEY = pytest.StashKey[RunResult]()
REPORT_COLLECTOR_NAME = "gpu-policy-report-collector"
DRILLS_ENV = "GPU_POLICY_DRILLS"
"""`GPU_POLICY_DRILLS=1` runs the @drill scenarios as `--drill` does."""

preloaded_run: RunResult | None = None
"""Set by `gpu-policy check`, which runs the engine before pytest to report environment errors with exit 2."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpu-policy", "gpu-policy: GPU platform policy checks")
    group.addoption("--manifests", action="append", metavar="PATH", default=None,
                    help="manifests to check: file, folder, kustomization or '-' (repeatable); "
                         "default: the bundled reference manifests")
    group.addoption("--policies", metavar="DIR", default=None,
                    help="policies folder (cluster.yaml, workload-classes.yaml, ...); default: the bundled one")
    group.addoption("--crd-dir", action="append", metavar="DIR", default=None,
                    help="folder of CRD YAML files (repeatable); default: $GPU_POLICY_CRD_PATH, then the cache")
    group.addoption("--ignore-missing-schemas", action="store_true", default=False,
                    help="list objects without a schema as not checked instead of failing")
    group.addoption("--report", dest="gpu_policy_report", metavar="DIR", default=None,
                    help="write findings.json, report.html and the simulation charts under DIR, as "
                         "`gpu-policy check --report`")
    group.addoption("--today", dest="gpu_policy_today", metavar="YYYY-MM-DD", default=None,
                    help="the date exemptions expire against (default: today)")
    # the names before they matched the CLI, kept working but not listed
    group.addoption("--gpu-policy-report", dest="gpu_policy_report", default=None, help=argparse.SUPPRESS)
    group.addoption("--gpu-policy-today", dest="gpu_policy_today", default=None, help=argparse.SUPPRESS)
    group.addoption("--only", dest="gpu_policy_only", nargs="+", action="extend", default=[], metavar="ID",
                    help="only the scenarios running these rule ids or @tags")
    group.addoption("--skip", dest="gpu_policy_skip", nargs="+", action="extend", default=[], metavar="ID",
                    help="skip the scenarios running these rule ids or @tags")
    group.addoption("--profile", dest="gpu_policy_profile", metavar="NAME", default=None, choices=["reference"],
                    help="start from a bundled policy profile ('reference'), as `gpu-policy check --profile`")
    group.addoption("--complete", dest="gpu_policy_complete", action=argparse.BooleanOptionalAction, default=None,
                    help="the set is the whole system: references to objects not in it are errors")
    group.addoption("--namespace", dest="gpu_policy_namespace", metavar="NS", default=None,
                    help="namespace of objects that set none (default: default)")
    group.addoption("--config", dest="gpu_policy_config", metavar="PATH", default=None,
                    help="configuration file or folder (default: .gpu-policy.yaml or gpu-policy/ upwards)")
    group.addoption("--env", dest="gpu_policy_env", action="append", metavar="KEY=VALUE", default=[],
                    help="substitute ${KEY} in templates (repeatable), as `gpu-policy check --env`")
    group.addoption("--env-file", dest="gpu_policy_env_file", metavar="FILE", default=None,
                    help="KEY=VALUE lines ('#' comments) to substitute, as `gpu-policy check --env-file`")
    group.addoption("--exclude", dest="gpu_policy_exclude", action="append", metavar="GLOB", default=[],
                    help="files not to check (repeatable; relative to the input folder)")
    group.addoption("--allow-remote-bases", dest="gpu_policy_allow_remote_bases", action="store_true",
                    default=False, help="let kustomize fetch remote bases (refused by default)")
    group.addoption("--jobs", dest="gpu_policy_jobs", type=parse_jobs, default=1, metavar="N",
                    help="processes that decode the YAML, as `gpu-policy check --jobs` (1: serial, the default; 0: "
                         "every core when the set is large); findings are the same")
    group.addoption("--no-bundled-features", action="store_true", default=False,
                    help="with --manifests, do not add the bundled feature suite to the run")
    group.addoption("--live", dest="gpu_policy_live", action="store_true", default=False,
                    help="read the cluster (as `gpu-policy check --live`): alone, judge its objects; with "
                         "--manifests, judge them and compare the cluster with them")
    group.addoption("--context", dest="gpu_policy_context", metavar="NAME", default=None,
                    help="kubeconfig context for --live (default: the current context)")
    group.addoption("--kubeconfig", dest="gpu_policy_kubeconfig", metavar="PATH", default=None,
                    help="kubeconfig for --live (default: $KUBECONFIG, then ~/.kube/config)")
    group.addoption("--live-namespace", dest="gpu_policy_live_namespace", action="append", metavar="NS",
                    default=[], help="with --live, read namespaced objects of NS only (repeatable)")
    group.addoption("--prometheus", dest="gpu_policy_prometheus", metavar="URL", default=None,
                    help="with --live, the Prometheus the live checks query")
    group.addoption("--drill", dest="gpu_policy_drill", action="store_true", default=False,
                    help="run the @drill scenarios (real controllers replay behaviours on the testbed; minutes "
                         "each); also GPU_POLICY_DRILLS=1. Without it they are skipped: 'needs --drill'")


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
    descriptions = {"static": "checks that read manifests only", "live": "checks that need a cluster (--live)",
                    "drill": "behaviour drills with real controllers (--drill)"}
    for tag in sorted(_feature_tags() | set(descriptions)):
        config.addinivalue_line("markers", f"{tag}: {descriptions.get(tag, 'feature tag')}")
    wants_suite = ((config.getoption("manifests") or config.getoption("gpu_policy_live"))
                   and not config.getoption("no_bundled_features"))
    if wants_suite and not any(_covers(arg, SUITE_FILE) for arg in config.args):
        config.args.append(str(SUITE_FILE))
    only, skip = config.getoption("gpu_policy_only"), config.getoption("gpu_policy_skip")
    if (only or skip) and not config.pluginmanager.has_plugin(COLLECTOR_NAME):
        from gpu_policy.suite.collector import ScenarioCollector
        from gpu_policy.suite.selection import Selection

        config.pluginmanager.register(ScenarioCollector(Selection.parse(only, skip)), COLLECTOR_NAME)
    if (config.getoption("gpu_policy_report") and preloaded_run is None
            and not config.pluginmanager.has_plugin(REPORT_COLLECTOR_NAME)):
        # `pytest --report DIR` writes findings.json and report.html as `gpu-policy check --report` does (the CLI
        # writes them itself: it has run the engine before pytest, preloaded_run is set)
        from gpu_policy.suite.collector import ScenarioCollector

        config.pluginmanager.register(ScenarioCollector(), REPORT_COLLECTOR_NAME)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report = config.getoption("gpu_policy_report", None)
    collector = config.pluginmanager.get_plugin(REPORT_COLLECTOR_NAME)
    run = config.stash.get(_RUN_KEY, None)
    if not report or collector is None or run is None or preloaded_run is not None:
        return
    from gpu_policy.reporting.files import write_report_file
    from gpu_policy.reporting.formats import render
    from gpu_policy.reporting.html import render_html
    from gpu_policy.reporting.verdict import build_verdict

    filtered = bool(config.getoption("keyword", "") or config.getoption("markexpr", "")
                    or config.getoption("gpu_policy_only") or config.getoption("gpu_policy_skip"))
    verdict = build_verdict(run, collector.scenarios(), filtered=filtered)
    write_report_file(Path(report), "findings.json", render("json", verdict))
    write_report_file(Path(report), "report.html", render_html(verdict, Path(report)))


def _ignored_boundary(config: pytest.Config) -> Path | None:
    """The outermost folder above the suite that pytest would not collect: a virtualenv (pyvenv.cfg) or a name in
    norecursedirs (`.venv`, `venv`, `.*`, ...). None when the suite lies in a collectable tree (a source checkout)."""
    patterns = [str(p) for p in config.getini("norecursedirs")]
    for parent in reversed(SUITE_FILE.parents):
        if (parent / "pyvenv.cfg").is_file() or any(fnmatch.fnmatch(parent.name, p) for p in patterns):
            return parent
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The bundled suite is collected wherever the package is installed, a `.venv` inside the repository
    included: pytest ignores virtualenvs and `.*`/`venv` folders (norecursedirs), which would collect 0 items
    from a pip-installed gpu-policy. Only the folders leading to the suite file are let through; everything else
    inside the ignored folder stays ignored (the rest of the virtualenv is never collected)."""
    if not any(_covers(arg, SUITE_FILE) for arg in config.args):
        return None
    if _BOUNDARY_KEY not in config.stash:
        config.stash[_BOUNDARY_KEY] = _ignored_boundary(config)
    boundary = config.stash[_BOUNDARY_KEY]
    if boundary is None:
        return None
    path = Path(collection_path)
    if path == SUITE_FILE or path in SUITE_FILE.parents:
        return False if path == boundary or boundary in path.parents else None
    if boundary in path.parents:
        return True
    return None


@pytest.fixture(scope="session")
def gpu_policy_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = request.config
    live = bool(config.getoption("gpu_policy_live"))
    manifests = config.getoption("manifests") or ([] if live else [str(reference_manifests_dir())])
    kubeconfig = config.getoption("gpu_policy_kubeconfig")
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
        "profile": config.getoption("gpu_policy_profile"),
        "complete": config.getoption("gpu_policy_complete"),
        "namespace": config.getoption("gpu_policy_namespace"),
        "config_path": Path(config.getoption("gpu_policy_config")) if config.getoption("gpu_policy_config") else None,
        "live": live,
        "kubeconfig": Path(kubeconfig) if kubeconfig else None,
        "kube_context": config.getoption("gpu_policy_context"),
        "live_namespaces": list(config.getoption("gpu_policy_live_namespace") or []),
        "prometheus_url": config.getoption("gpu_policy_prometheus"),
        "drills": bool(config.getoption("gpu_policy_drill")) or os.environ.get(DRILLS_ENV) == "1",
        "env": _env(config),
        "exclude": list(config.getoption("gpu_policy_exclude") or []),
        "allow_remote_bases": bool(config.getoption("gpu_policy_allow_remote_bases")),
        "jobs": int(config.getoption("gpu_policy_jobs")),
    }


def _env(config: pytest.Config) -> dict[str, str] | None:
    """`--env-file` then each `--env`, read as `gpu-policy check` reads them (a bad line stops the run, exit 4)."""
    from gpu_policy.cli import parse_env_file
    from gpu_policy.errors import GpuPolicyError

    env: dict[str, str] = {}
    try:
        if config.getoption("gpu_policy_env_file"):
            env.update(parse_env_file(Path(config.getoption("gpu_policy_env_file"))))
    except GpuPolicyError as exc:
        raise pytest.UsageError(str(exc)) from exc
    for item in config.getoption("gpu_policy_env") or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env or None


@pytest.fixture(scope="session")
def gpu_policy_run(gpu_policy_options: dict[str, Any], request: pytest.FixtureRequest) -> RunResult:
    if preloaded_run is not None:
        return preloaded_run
    run = _engine_run(gpu_policy_options)
    request.config.stash[_RUN_KEY] = run
    return run


def _engine_run(gpu_policy_options: dict[str, Any]) -> RunResult:
    options = RunOptions(
        paths=list(gpu_policy_options["manifests"]),
        policies_dir=gpu_policy_options["policies_dir"],
        crd_paths=list(gpu_policy_options["crd_paths"]),
        ignore_missing_schemas=gpu_policy_options["ignore_missing_schemas"],
        report_dir=gpu_policy_options["report_dir"],
        today=gpu_policy_options["today"],
        profile=gpu_policy_options["profile"],
        complete=gpu_policy_options["complete"],
        namespace=gpu_policy_options["namespace"],
        config_path=gpu_policy_options["config_path"],
        live=gpu_policy_options.get("live", False),
        kubeconfig=gpu_policy_options.get("kubeconfig"),
        kube_context=gpu_policy_options.get("kube_context"),
        live_namespaces=list(gpu_policy_options.get("live_namespaces") or []),
        prometheus_url=gpu_policy_options.get("prometheus_url"),
        env=gpu_policy_options.get("env"),
        exclude=list(gpu_policy_options.get("exclude") or []),
        allow_remote_bases=bool(gpu_policy_options.get("allow_remote_bases")),
        jobs=int(gpu_policy_options.get("jobs", 1)),
    )
    if not options.live:
        return run_engine(options)
    from gpu_policy.live.client import LiveError

    try:
        return run_engine(options)
    except LiveError as exc:  # the cluster cannot be read: one line and exit 2, as `gpu-policy check --live`
        pytest.exit(f"gpu-policy: error: {exc}", returncode=2)
