"""`gpu-policy`: check manifests against the bundled features, fetch CRD schemas, list rules.

Exit codes: 0 all scenarios pass, 1 findings (a scenario failed), 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gpu_policy import __version__
from gpu_policy.errors import GpuPolicyError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-policy", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the feature suite on manifests (default: the reference set)")
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="files, folders, kustomizations or '-' for stdin; default: bundled reference manifests")
    check.add_argument("--policies", metavar="DIR", help="policies folder (default: the bundled policies)")
    check.add_argument("--crd-dir", action="append", metavar="DIR", default=[],
                       help="folder of CRD YAML (repeatable); default: $GPU_POLICY_CRD_PATH, then the cache")
    check.add_argument("--ignore-missing-schemas", action="store_true",
                       help="list objects without a schema as not checked instead of failing")
    check.add_argument("--report", metavar="DIR", help="write findings.json and simulation charts under DIR")
    check.add_argument("--today", metavar="YYYY-MM-DD", help="date that exemptions expire against")
    check.add_argument("-k", dest="keyword", metavar="EXPR", help="only scenarios matching EXPR (pytest -k)")
    check.add_argument("-m", dest="tags", metavar="EXPR", help="only scenarios with these tags, e.g. 'keda and static'")
    check.add_argument("-v", "--verbose", action="store_true", help="list every scenario")

    schemas = sub.add_parser("schemas", help="CRD schema management")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    fetch = schemas_sub.add_parser("fetch", help="download the CRDs of the versions pinned in policies/cluster.yaml")
    fetch.add_argument("--policies", metavar="DIR")
    fetch.add_argument("--cache-dir", metavar="DIR", help="default: $XDG_CACHE_HOME/gpu-policy/crds")
    fetch.add_argument("--base-url", metavar="URL", help="mirror to fetch from instead of the upstream URLs")

    sub.add_parser("rules", help="list every rule: id, area, title")
    sub.add_parser("version", help="print the version")
    return parser


def _check(args: argparse.Namespace) -> int:
    import pytest

    from gpu_policy import plugin
    from gpu_policy.engine import RunOptions, run_engine
    from gpu_policy.reporting.json_report import write_json_report
    from gpu_policy.reporting.text import render_accounting
    from gpu_policy.resources import reference_manifests_dir
    from gpu_policy.schemas.validator import default_crd_paths

    paths = list(args.paths) or [str(reference_manifests_dir())]
    crd_paths = [Path(p) for p in args.crd_dir] or default_crd_paths()
    for path in crd_paths:
        if not path.is_dir():
            raise GpuPolicyError(f"--crd-dir {path}: no such folder")
    today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    options = RunOptions(
        paths=paths, policies_dir=Path(args.policies) if args.policies else None, crd_paths=crd_paths,
        ignore_missing_schemas=args.ignore_missing_schemas, report_dir=Path(args.report) if args.report else None,
        today=today,
    )
    # Run the engine once up front: environment errors exit 2 here, and the suite reuses the result.
    run = run_engine(options)
    if run.environment_errors:
        for error in run.environment_errors:
            print(f"gpu-policy: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    plugin.preloaded_run = run
    if options.report_dir is not None:
        write_json_report(run, options.report_dir / "findings.json")

    pytest_args = [str(plugin.SUITE_FILE), "-p", "no:cacheprovider", "--no-header", "-q", "-rs",
                   "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    pytest_args += [f"--manifests={p}" for p in paths]
    # The suite reuses the engine run above; steps that write or read beyond it see the same options.
    pytest_args += [f"--crd-dir={p}" for p in crd_paths]
    pytest_args.append(f"--gpu-policy-today={today.isoformat()}")
    if args.policies:
        pytest_args.append(f"--policies={args.policies}")
    if args.ignore_missing_schemas:
        pytest_args.append("--ignore-missing-schemas")
    if options.report_dir is not None:
        pytest_args.append(f"--gpu-policy-report={options.report_dir}")
    if args.verbose:
        pytest_args.append("-v")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.tags:
        pytest_args += ["-m", args.tags]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "gpu_policy.plugin", "-p", "pytest_bdd.plugin"]
    code = int(pytest.main(pytest_args))
    print()
    print(render_accounting(run))
    if code == pytest.ExitCode.OK:
        return EXIT_OK
    if code == pytest.ExitCode.TESTS_FAILED:
        return EXIT_FINDINGS
    print(f"gpu-policy: the suite did not run to completion (pytest exit code {code})", file=sys.stderr)
    return EXIT_ERROR


def _schemas_fetch(args: argparse.Namespace) -> int:
    from gpu_policy.policy.loader import PolicySet
    from gpu_policy.schemas.crds import user_cache_dir
    from gpu_policy.schemas.fetch import fetch_crds

    policy = PolicySet.load(args.policies)
    cache = Path(args.cache_dir) if args.cache_dir else user_cache_dir()
    written = fetch_crds(policy.cluster["crdSources"], cache, base_url_override=args.base_url)
    for path in written:
        print(path)
    print(f"{len(written)} CRD files in {cache}")
    return EXIT_OK


def _rules() -> int:
    from gpu_policy.rules.registry import all_rules

    for rule in sorted(all_rules().values(), key=lambda r: (r.area, r.id)):
        print(f"{rule.area:<14} {rule.id:<48} {rule.title}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "schemas":
            return _schemas_fetch(args)
        if args.command == "rules":
            return _rules()
        print(f"gpu-policy {__version__}")
        return EXIT_OK
    except GpuPolicyError as exc:
        print(f"gpu-policy: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
