"""`gpu-policy`: check manifests against the bundled features, explain and document rules, fetch CRD schemas.

Exit codes: 0 nothing fails (see --fail-on), 1 findings, 2 usage or environment error, 3 internal error (a bug:
rerun with --debug for the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import io
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gpu_policy import __version__
from gpu_policy.errors import GpuPolicyError
from gpu_policy.reporting.safety import escape_control

if TYPE_CHECKING:
    from gpu_policy.engine import RunResult
    from gpu_policy.reporting.verdict import Verdict

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
FORMATS = ("text", "json", "sarif", "junit", "github", "cucumber")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _FormatAction(argparse.Action):
    """`--format F`: a new (format, output) pair; the next `--output` belongs to it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        pairs = list(getattr(namespace, self.dest, None) or [])
        pairs.append([values, None])
        setattr(namespace, self.dest, pairs)


class _OutputAction(argparse.Action):
    """`--output FILE`: the file of the `--format` just before it (of the default text format when none)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        pairs = list(getattr(namespace, self.dest, None) or [])
        if not pairs:
            pairs.append(["text", None])
        if pairs[-1][1] is not None:
            parser.error("each --output follows its own --format (two --output after one --format)")
        pairs[-1][1] = values
        setattr(namespace, self.dest, pairs)


def _jobs(text: str) -> int:
    from gpu_policy.engine import parse_jobs

    return parse_jobs(text)


def _add_check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="files, folders, kustomizations or '-' for stdin; default: bundled reference manifests")
    check.add_argument("--policies", metavar="DIR", help="policies folder (default: the bundled policies)")
    check.add_argument("--crd-dir", action="append", metavar="DIR", default=[],
                       help="folder of CRD YAML (repeatable); default: $GPU_POLICY_CRD_PATH, then the cache")
    check.add_argument("--ignore-missing-schemas", action="store_true",
                       help="list objects without a schema as not checked instead of failing")
    check.add_argument("--report", metavar="DIR",
                       help="write findings.json, report.html and the simulation charts under DIR")
    check.add_argument("--alert-tests", action="append", default=[], metavar="DIR",
                       help="folder of promtool test files run against the manifests' PrometheusRules (repeatable); "
                            "default: the bundled ones")
    check.add_argument("--today", metavar="YYYY-MM-DD", help="date that exemptions expire against")
    check.add_argument("-k", dest="keyword", metavar="EXPR", help="only scenarios matching EXPR (pytest -k)")
    check.add_argument("-m", dest="tags", metavar="EXPR", help="only scenarios with these tags, e.g. 'keda and static'")
    check.add_argument("--only", nargs="+", action="extend", default=[], metavar="ID",
                       help="only these rule ids or @tags (and the scenarios that run them)")
    check.add_argument("--skip", nargs="+", action="extend", default=[], metavar="ID",
                       help="skip these rule ids or @tags")
    check.add_argument("--fail-on", choices=("error", "warning", "never"), default="error",
                       help="lowest severity that fails the run (default: error; warnings are reported only)")
    check.add_argument("--format", action=_FormatAction, choices=FORMATS, dest="outputs",
                       help="output format (repeatable): " + ", ".join(FORMATS) + "; default: text")
    check.add_argument("--output", action=_OutputAction, metavar="FILE", dest="outputs",
                       help="file for the --format given just before it ('-' for stdout); default: stdout")
    check.add_argument("--compact", action="store_true", help="text: one line per finding")
    check.add_argument("-v", "--verbose", action="store_true",
                       help="text: details, sources, notes (not checked, skipped) and every scenario")
    check.add_argument("--allow-empty", action="store_true",
                       help="accept a set (or a PATH) holding no Kubernetes object instead of exiting 2")
    check.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    check.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                       help="processes that decode the YAML (default 1: serial; 0: every core when the set is "
                            "large); findings are the same")
    # options whose behaviour other modules implement (passed through RunOptions)
    check.add_argument("--complete", action=argparse.BooleanOptionalAction, default=None,
                       help="the set is the whole system: references to objects not in it are errors "
                            "(default: as .gpu-policy.yaml says; the bundled reference set is complete)")
    check.add_argument("--namespace", metavar="NS", help="namespace of objects that set none (default: default)")
    check.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="substitute ${KEY} in templates (repeatable)")
    check.add_argument("--env-file", metavar="FILE", help="KEY=VALUE lines ('#' comments) to substitute")
    check.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching files")
    check.add_argument("--allow-remote-bases", action="store_true",
                       help="let kustomize fetch remote bases (refused by default)")
    check.add_argument("--config", metavar="PATH", help="configuration file (default: .gpu-policy.yaml upwards)")
    check.add_argument("--profile", metavar="NAME", choices=["reference"],
                       help="start from a bundled policy profile: 'reference' (the design's organisation)")
    live = check.add_argument_group("live mode (read-only; see README 'Live mode')")
    live.add_argument("--live", action="store_true",
                      help="read the cluster: alone, the rules judge its objects; with PATHs, they judge the "
                           "manifests and the cluster is compared with them (dry run, drift); runtime checks too")
    live.add_argument("--context", dest="kube_context", metavar="NAME",
                      help="kubeconfig context for --live (default: the current context)")
    live.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --live (default: $KUBECONFIG, "
                                                           "then ~/.kube/config)")
    live.add_argument("--live-namespace", action="append", default=[], metavar="NS",
                      help="with --live, read namespaced objects of NS only (repeatable; default: all namespaces)")
    live.add_argument("--prometheus", metavar="URL", help="with --live, the Prometheus the live checks query")
    check.add_argument("--drill", action="store_true",
                       help="also run the @drill scenarios: real controllers replay the behaviours on the testbed "
                            "(minutes each; see `gpu-policy drill --list`)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-policy", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"gpu-policy {__version__}")
    parser.add_argument("--debug", action="store_true", dest="debug_top",
                        help="print the traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the rules and the feature suite on manifests (default: the "
                                         "bundled reference set)")
    _add_check_options(check)

    schemas = sub.add_parser("schemas", help="CRD schema management")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    fetch = schemas_sub.add_parser("fetch", help="download the CRDs of the versions pinned in policies/cluster.yaml")
    fetch.add_argument("--policies", metavar="DIR")
    fetch.add_argument("--cache-dir", metavar="DIR", help="default: $XDG_CACHE_HOME/gpu-policy/crds")
    fetch.add_argument("--base-url", metavar="URL", help="mirror to fetch from instead of the upstream URLs")

    rules = sub.add_parser("rules", help="list every rule: id, class, severity, area, tags, title")
    rules.add_argument("--format", choices=("table", "json"), default="table")
    explain = sub.add_parser("explain", help="everything about one rule, with a failing and a passing example "
                                             "(both checked by running the rule)")
    explain.add_argument("rule_id", metavar="RULE-ID")
    docs = sub.add_parser("docs", help="write the rule reference (one Markdown page per rule)")
    docs.add_argument("--out", metavar="DIR", default="docs/rules")
    docs.add_argument("--check", action="store_true", help="exit 1 when the pages in --out are not up to date")
    init = sub.add_parser("init", help="write a commented starter .gpu-policy.yaml into the current folder")
    init.add_argument("--force", action="store_true", help="overwrite an existing .gpu-policy.yaml")
    from gpu_policy.testbed import command as testbed_command

    testbed_command.add_parser(sub)
    from gpu_policy.drills import command as drill_command

    drill_command.add_parser(sub)
    sub.add_parser("version", help="print the version")
    return parser


# -- check --------------------------------------------------------------------------------------------------------
def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as envsubst users write them: blank lines and `#` comments ignored, `export ` allowed,
    one level of matching quotes removed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GpuPolicyError(f"--env-file {path}: {exc.strerror or exc}") from exc
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _ENV_KEY.match(key):
            raise GpuPolicyError(f"--env-file {path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def _env(args: argparse.Namespace) -> dict[str, str] | None:
    env: dict[str, str] = {}
    if args.env_file:
        env.update(parse_env_file(Path(args.env_file)))
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise GpuPolicyError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env or None


def _outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    chosen = list(args.outputs or []) or [["text", None]]
    pairs = [(str(fmt), None if out in (None, "-") else str(out)) for fmt, out in chosen]
    if sum(1 for _, out in pairs if out is None) > 1:
        raise GpuPolicyError("only one format can go to stdout: give the others an --output FILE")
    return pairs


def _under(source: str, path: str) -> bool:
    if path == "-":
        return source == "<stdin>"
    for base in (os.path.normpath(path), os.path.realpath(path)):
        base = base.rstrip(os.sep) or os.sep
        for candidate in (os.path.normpath(source), os.path.realpath(source)):
            if candidate == base or candidate.startswith(base + os.sep):
                return True
    return False


def _yielded(run: RunResult, path: str) -> bool:
    """The path gave an object, or something reported about its files (an unreadable or invalid file is a
    finding, not an empty path)."""
    from gpu_policy.loading.document import source_prefixes

    if path == "-":  # helm output names its templates (`# Source:`) instead of <stdin>
        return "<stdin>" in run.load.sources and bool(run.load.documents or run.load.findings)
    # A document's source names more than its file: helm output adds its template, `file (chart/templates/x.yaml)`,
    # and an object kustomize rendered without a trusted origin is `<folder> (kustomize output)` (loader.load_stream
    # and _KustomizeOrigins). A `helm template > rendered.yaml` named on its own was "no Kubernetes object found".
    sources = [part for d in run.load.documents for part in source_prefixes(d.source)]
    sources += [part for f in run.load.findings if f.file for part in source_prefixes(f.file)]
    sources += [n.source for n in run.load.not_checked]
    return any(_under(source, path) for source in sources)


def _check_not_empty(run: RunResult, paths: list[str]) -> None:
    if not run.load.documents and not run.load.findings and not run.load.not_checked:
        raise GpuPolicyError("no Kubernetes object found in " + ", ".join(paths)
                             + " (pass --allow-empty to accept an empty set)")
    empty = [p for p in paths if not _yielded(run, p)]
    if empty:
        raise GpuPolicyError("no Kubernetes object found in " + ", ".join(empty)
                             + " (pass --allow-empty to accept it)")


AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
ADDOPTS = "PYTEST_ADDOPTS"


def _pytest_args(args: argparse.Namespace, paths: list[str], crd_paths: list[Path], today: dt.date) -> list[str]:
    from gpu_policy import plugin

    suite = plugin.SUITE_FILE.parent  # its own pytest.ini: no configuration or conftest.py of the folders above
    pytest_args = [str(plugin.SUITE_FILE), "-c", str(suite / "pytest.ini"), f"--rootdir={suite}",
                   f"--confcutdir={suite}", "-p", "no:cacheprovider", "--no-header", "-q",
                   "-W", "ignore::pytest.PytestAssertRewriteWarning", "-o", "console_output_style=classic"]
    pytest_args += [f"--manifests={p}" for p in paths]
    pytest_args += [f"--crd-dir={p}" for p in crd_paths]
    pytest_args.append(f"--today={today.isoformat()}")
    if args.policies:
        pytest_args.append(f"--policies={args.policies}")
    if args.ignore_missing_schemas:
        pytest_args.append("--ignore-missing-schemas")
    if args.report:
        pytest_args.append(f"--report={args.report}")
    pytest_args += [f"--alert-tests={folder}" for folder in args.alert_tests]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.tags:
        pytest_args += ["-m", args.tags]
    if getattr(args, "drill", False):
        pytest_args.append("--drill")
    # Only our own plugins: third-party ones installed beside gpu-policy (hypothesis, xdist, a user's own) would
    # cost start-up time and could change how the suite runs. The autoload is turned off around the run.
    pytest_args += ["-p", "gpu_policy.plugin", "-p", "pytest_bdd.plugin"]
    return pytest_args


@contextlib.contextmanager
def _no_plugin_autoload() -> Iterator[None]:
    """No third-party plugin autoloaded and no PYTEST_ADDOPTS (a CI job's `-n 4` or `--cov`) in the internal
    suite; the environment is put back afterwards."""
    saved = {name: os.environ.get(name) for name in (AUTOLOAD, ADDOPTS)}
    os.environ[AUTOLOAD] = "1"
    os.environ.pop(ADDOPTS, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _long_lived_heap() -> Iterator[Callable[[], None]]:
    """The decoded manifests, the graph and the rules' caches live until the check ends, yet the cyclic garbage
    collector scanned them again and again: 3.1 s of a 20k-object check's 12.3 s of CPU (1.5 s of it the
    `gc.collect()`s pytest makes when its session ends). The collector is paused while the engine builds them;
    the caller then calls the yielded function, which freezes every object alive (`gc.freeze`: left out of
    later collections) and resumes collecting, so what the suite makes afterwards is collected as before. On
    exit the frozen objects are handed back (`gc.unfreeze`) for an in-process caller. Reference counting, which
    frees almost everything, is untouched; a caller that already froze objects or paused the collector keeps
    its own arrangement."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield lambda: None
        return

    def settled() -> None:
        gc.freeze()
        gc.enable()

    gc.disable()
    try:
        yield settled
    finally:
        gc.enable()
        gc.unfreeze()


def _run_suite(args: argparse.Namespace, run: RunResult, pytest_args: list[str], selection: Any) -> Verdict:
    import pytest

    from gpu_policy import plugin
    from gpu_policy.reporting.verdict import build_verdict
    from gpu_policy.suite.collector import ScenarioCollector

    collector = ScenarioCollector(selection, progress=sys.stderr.isatty() and not args.debug)
    plugin.preloaded_run = run
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), _no_plugin_autoload():
            code = int(pytest.main(pytest_args, plugins=[collector]))
    finally:
        plugin.preloaded_run = None
        collector.end_progress()
    if args.debug:
        sys.stderr.write(captured.getvalue())
    if code == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or (collector.collected == 0 and not collector.collection_errors):
        chosen = " ".join(f"{flag} {value!r}" for flag, value in (("-k", args.keyword), ("-m", args.tags))
                          if value)
        chosen += "".join(f" --only {v}" for v in args.only) + "".join(f" --skip {v}" for v in args.skip)
        raise GpuPolicyError(f"no scenario matches the selection{' ' + chosen.strip() if chosen.strip() else ''}"
                             " (see `gpu-policy rules` for rule ids and tags)")
    if code == pytest.ExitCode.USAGE_ERROR:
        raise GpuPolicyError("the feature suite rejected its arguments: " + captured.getvalue().strip()[-500:])
    from gpu_policy.engine import InternalError

    extra = [InternalError("feature suite collection", error.splitlines()[-1] if error else "failed", error)
             for error in collector.collection_errors]
    if code == pytest.ExitCode.INTERNAL_ERROR and not extra:
        extra.append(InternalError("feature suite", "pytest internal error", captured.getvalue()[-4000:]))
    return build_verdict(run, collector.scenarios(), filtered=bool(args.keyword or args.tags),
                         fail_on=args.fail_on, extra_internal=extra)


def _write(fmt: str, verdict: Verdict, args: argparse.Namespace, stream: TextIO, color: bool) -> None:
    import shutil

    from gpu_policy.reporting import formats

    tty = bool(getattr(stream, "isatty", lambda: False)())
    width = shutil.get_terminal_size().columns if tty else None
    stream.write(formats.render(fmt, verdict, verbose=args.verbose, compact=args.compact, color=color,
                                width=width))


def _check(args: argparse.Namespace) -> int:
    from gpu_policy.engine import RunOptions, run_engine
    from gpu_policy.reporting.files import report_subdir, write_report_file
    from gpu_policy.reporting.formats import render
    from gpu_policy.resources import reference_manifests_dir
    from gpu_policy.schemas.validator import default_crd_paths
    from gpu_policy.suite.selection import Selection

    if any(p.strip() == "" for p in args.paths):
        raise GpuPolicyError("an empty PATH was given (an unset shell variable?); name a file, folder or '-'")
    pairs = _outputs(args)
    if (args.kube_context or args.kubeconfig or args.live_namespace or args.prometheus) and not args.live:
        raise GpuPolicyError("--context, --kubeconfig, --live-namespace and --prometheus need --live")
    if args.paths:
        paths = list(args.paths)
    elif args.live:
        paths = []  # the cluster's objects are the set
    else:
        paths = [str(reference_manifests_dir())]
        print(f"gpu-policy: no PATH given: checking the bundled reference set ({paths[0]})", file=sys.stderr)
    crd_paths = [Path(p) for p in args.crd_dir] or default_crd_paths()
    for path in crd_paths:
        if not path.is_dir():
            raise GpuPolicyError(f"--crd-dir {path}: no such folder")
    try:
        today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    except ValueError as exc:
        raise GpuPolicyError(f"--today {args.today!r}: expected YYYY-MM-DD") from exc
    from gpu_policy.rules.registry import all_rules

    if args.keyword and args.keyword.strip() in all_rules():
        # `-k RULE-ID`: scenario names are sentences, not ids; select the rule's scenarios instead of matching none
        args.only = [*args.only, args.keyword.strip()]
        args.keyword = None
    selection = Selection.parse(args.only, args.skip)
    only_ids, skip_ids = selection.rule_ids()
    options = RunOptions(
        paths=paths, policies_dir=Path(args.policies) if args.policies else None, crd_paths=crd_paths,
        ignore_missing_schemas=args.ignore_missing_schemas, report_dir=Path(args.report) if args.report else None,
        today=today, complete=args.complete, namespace=args.namespace, env=_env(args), exclude=list(args.exclude),
        allow_remote_bases=args.allow_remote_bases, config_path=Path(args.config) if args.config else None,
        profile=args.profile, only=only_ids, skip=skip_ids, live=args.live,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None, kube_context=args.kube_context,
        live_namespaces=list(args.live_namespace), prometheus_url=args.prometheus, jobs=args.jobs,
    )
    if options.report_dir is not None:
        # refuse a planted symlink before anything is written (the scaling steps write under simulation/)
        report_subdir(options.report_dir)
        if os.path.lexists(options.report_dir / "simulation"):
            report_subdir(options.report_dir, "simulation")
    # Run the engine once up front: environment errors exit 2 here, and the suite reuses the result.
    with _long_lived_heap() as settled:
        run = run_engine(options, set(only_ids) if selection.only else None)
        settled()
        if run.environment_errors:
            for error in run.environment_errors:
                print(f"gpu-policy: error: {escape_control(error)}", file=sys.stderr)
            return EXIT_ERROR
        if not args.allow_empty and paths:
            _check_not_empty(run, paths)
        verdict = _run_suite(args, run, _pytest_args(args, paths, crd_paths, today), selection)
    if options.report_dir is not None:
        from gpu_policy.reporting.html import render_html

        write_report_file(options.report_dir, "findings.json", render("json", verdict))
        write_report_file(options.report_dir, "report.html", render_html(verdict, options.report_dir))
    color = _wants_color(sys.stdout)
    for fmt, output in pairs:
        if output is None:
            _write(fmt, verdict, args, sys.stdout, color)
        else:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            with open(output, "w", encoding="utf-8") as handle:
                _write(fmt, verdict, args, handle, False)
    for crash in verdict.internal_errors:
        print(f"gpu-policy: internal error in {crash.where}: {crash.error}"
              + ("" if args.debug else " (run with --debug for the traceback)"), file=sys.stderr)
        if args.debug and crash.traceback:
            print(crash.traceback, file=sys.stderr)
    return verdict.exit_code


def _wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


# -- other commands -------------------------------------------------------------------------------------------------
def _schemas_fetch(args: argparse.Namespace) -> int:
    from gpu_policy.metrics.dcgm import release_folder, user_csv_cache
    from gpu_policy.policy.loader import PolicySet
    from gpu_policy.schemas.crds import user_cache_dir
    from gpu_policy.schemas.fetch import fetch_crds, fetch_dcgm_csvs

    policy = PolicySet.load(args.policies)
    cache = Path(args.cache_dir) if args.cache_dir else user_cache_dir()
    written = fetch_crds(policy.cluster["crdSources"], cache, base_url_override=args.base_url)
    csv_cache = cache.parent / "dcgm-exporter" if args.cache_dir else user_csv_cache()
    csvs = fetch_dcgm_csvs(release_folder(policy.cluster), csv_cache, base_url_override=args.base_url)
    for path in [*written, *csvs]:
        print(path)
    print(f"{len(written)} CRD files in {cache}")
    print(f"{len(csvs)} DCGM exporter collector files in {csv_cache / release_folder(policy.cluster)}")
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from gpu_policy.reporting.ruledocs import rules_json, rules_table

    print(rules_json() if args.format == "json" else rules_table())
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from gpu_policy.reporting.ruledocs import explain

    print(explain(args.rule_id))
    return EXIT_OK


def _docs(args: argparse.Namespace) -> int:
    from gpu_policy.reporting.ruledocs import stale_pages, write_docs

    out = Path(args.out)
    if args.check:
        stale = stale_pages(out)
        for name in stale:
            print(f"{out / name}: out of date (run `gpu-policy docs --out {out}`)", file=sys.stderr)
        return EXIT_FINDINGS if stale else EXIT_OK
    for path in write_docs(out):
        print(path)
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _check(args)
    if args.command == "schemas":
        return _schemas_fetch(args)
    if args.command == "rules":
        return _rules(args)
    if args.command == "explain":
        return _explain(args)
    if args.command == "docs":
        return _docs(args)
    if args.command == "init":
        from gpu_policy.policy.starter import write_starter

        print(f"wrote {write_starter(Path.cwd(), force=args.force)}: uncomment what your organisation chooses")
        return EXIT_OK
    if args.command == "testbed":
        from gpu_policy.testbed import command as testbed_command

        return testbed_command.run(args)
    if args.command == "drill":
        from gpu_policy.drills import command as drill_command

        return drill_command.run(args)
    print(f"gpu-policy {__version__}")
    return EXIT_OK


def _silence_stdout() -> None:
    """After a closed pipe (`gpu-policy rules | head`), further writes and the final flush must not raise."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False) or args.debug_top)
    args.debug = debug
    try:
        code = _dispatch(args)
        sys.stdout.flush()
        if argv is None:
            # The process ends next (the console script, `python -m gpu_policy`): the interpreter's last collection
            # would walk every object the run left in reference cycles (1.8 s of CPU after a 20k-object check)
            # only to free memory that the exit frees anyway. Frozen objects are left out of it.
            gc.freeze()
        return code
    except GpuPolicyError as exc:
        print(f"gpu-policy: error: {escape_control(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gpu-policy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:
        if debug:
            traceback.print_exc()
        message = escape_control(" ".join(str(exc).split())[:500])
        print(f"gpu-policy: internal error: {type(exc).__name__}: {message}"
              + ("" if debug else " (run with --debug for the traceback)"), file=sys.stderr)
        return EXIT_INTERNAL
