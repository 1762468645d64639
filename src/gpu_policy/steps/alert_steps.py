"""Alert behaviour as Gherkin, judged by `promtool test rules` (see gpu_policy.promql).

    Scenario: GPUMemoryPressure fires at 92% framebuffer use and stays silent at 50%
      Given the alert rules of the manifests under test
      And DCGM series every 1m:
        | series                                                 | values   |
        | DCGM_FI_DEV_FB_USED{gpu="0",pod="model-a-serving-1"}   | 73600x10 |
        | DCGM_FI_DEV_FB_FREE{gpu="0",pod="model-a-serving-1"}   | 6400x10  |
      Then "GPUMemoryPressure" is firing at 5m for gpu "0"

Vocabulary: `"<alert>" is firing at <t>`, `... is not firing at <t>`, either with `for <label> "<value>"`
(repeatable: `for gpu "0" and pod "p"`), `"<alert>" resolves by <t>`, and the label/annotation checks below.
Values use promtool's expanding notation (`95x10`, `0+10x5`, `_`, `stale`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from gpu_policy.engine import RunResult
from gpu_policy.promql.alerts import (
    AlertBehaviour,
    AlertPlan,
    AlertTestError,
    AllFiring,
    Expect,
    PreparedRuns,
    Resolves,
    Verdict,
    alert_names,
    prepare_alert_runs,
)
from gpu_policy.promql.check import CheckRun, check_rule_files, extract_all
from gpu_policy.promql.coverage import exercised_by_features, exercised_by_test_files, unexercised
from gpu_policy.promql.extract import RuleFile
from gpu_policy.promql.keda_eval import QueryEvaluation, dcgm_honor_labels, evaluate_queries
from gpu_policy.promql.sources import promql_sources
from gpu_policy.promql.testrun import SeriesTable, run_test_files, user_test_files
from gpu_policy.resources import alert_tests_dir, features_dir
from gpu_policy.rules.promql import promtool_check

_SCOPE = re.compile(r'(\w+) "((?:[^"\\]|\\.)*)"')


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("gpu-policy").addoption(
        "--alert-tests",
        action="append",
        metavar="DIR",
        default=None,
        help="folder of promtool test files (promtool's format) run against the manifests' PrometheusRules "
        "(repeatable); default: fixtures/alerts of the source tree",
    )


@dataclass
class AlertRules:
    run: RunResult
    files: list[RuleFile]
    """The rule files Prometheus evaluates: every PrometheusRule under test that loads."""
    names: dict[str, Any]
    """Every alert the PrometheusRules under test define, loaded or not (-> where)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Alert -> why it is never evaluated: its PrometheusRule does not load."""
    behaviour: AlertBehaviour | None = None

    def need_behaviour(self) -> AlertBehaviour:
        if self.behaviour is None:
            pytest.fail(
                "no series given: add a step like `And DCGM series every 1m:` with a table", pytrace=False
            )
        return self.behaviour

    def need_rules(self) -> None:
        """Skip a step that judges alert rules on a set without any (a team's partial set)."""
        if not self.names and not self.files and not self.rejected:
            pytest.skip(NO_PROMETHEUS_RULE)

    @property
    def loaded(self) -> set[str]:
        return {name for name in self.names if name not in self.rejected}


NO_PROMETHEUS_RULE = "the manifests under test hold no PrometheusRule: no alert behaviour to check"


def _scope(text: str | None) -> dict[str, str]:
    return {k: v.replace('\\"', '"') for k, v in _SCOPE.findall(text or "")}


def _judge(verdict: Verdict) -> None:
    if not verdict.ok:
        pytest.fail(verdict.message, pytrace=False)


def _checked_rule_files(run: RunResult) -> tuple[list[RuleFile], CheckRun]:
    # The rules' `promtool check rules` run (PrometheusRules and embedded queries) serves the scenarios too:
    # one promtool run over the set instead of two. Its PrometheusRule part is what a run over them alone gives.
    checked = promtool_check(run.context).prometheus_rules_only()
    if checked is None:  # promtool printed something no file owns: ask about the PrometheusRules alone
        files = extract_all(run.graph.of_kind("PrometheusRule"), [])
        checked = check_rule_files(files)
    return checked.files, checked


@given("the alert rules of the manifests under test", target_fixture="alert_rules")
def alert_rules_under_test(gpu_policy_run: RunResult) -> AlertRules:
    """Every alert scenario starts here (the feature's Background, which its KEDA query scenarios share): the rule
    files are checked by promtool once per run. It neither skips nor fails: a set without PrometheusRules still
    has KEDA queries to judge, and a PrometheusRule that does not load is one finding
    (prometheusrule-passes-promtool-check), not a failure of every scenario. The steps that judge alerts skip
    on a set without rules, and judge an alert of a PrometheusRule that does not load as the operator leaves it:
    never evaluated (prometheus-operator pkg/operator/rules.go PrometheusRuleSelector.Select skips such an object,
    "skipping prometheusrule", and keeps every other)."""
    files, names, rejected = gpu_policy_run.context.memo(
        "alert_steps.alert_rules", lambda: _loaded_rules(gpu_policy_run)
    )  # read-only, shared by the run's scenarios; each scenario has its own AlertRules (its series)
    return AlertRules(run=gpu_policy_run, files=files, names=names, rejected=rejected)


def _loaded_rules(run: RunResult) -> tuple[list[RuleFile], dict[str, Any], dict[str, str]]:
    """(the rule files that load, every alert defined -> where, alert -> why it is never evaluated)."""
    files, checked = _checked_rule_files(run)
    names = alert_names(files)
    # Where each PrometheusRule that does not load is reported; promtool output no file owns rejects them all.
    broken: dict[int, str] = {}
    for problem in checked.problems:
        broken.setdefault(id(problem.doc), f"{problem.doc.source}:{problem.line}")
    by_name = {f.name: f for f in files}
    for origin in checked.unattributed_origins:
        doc = by_name[origin].doc if origin in by_name else None
        for owner in [doc] if doc is not None else [f.doc for f in files]:
            if owner is not None:
                broken.setdefault(id(owner), owner.source)
    rejected: dict[str, str] = {}
    for name, places in names.items():
        docs = list({id(f.doc): f.doc for f, _, _ in places if f.doc is not None}.values())
        if docs and all(id(d) in broken for d in docs):
            where = ", ".join(f"{d.ref} at {broken[id(d)]}" for d in docs)
            rejected[name] = (
                f"{name} is defined only in a PrometheusRule that does not load ({where}, reported by "
                "prometheusrule-passes-promtool-check): the Prometheus Operator rejects such an object whole, so "
                f"{name} is never evaluated; fix that finding and this scenario judges it"
            )
    loaded = [f for f in files if f.doc is None or id(f.doc) not in broken]
    return loaded, names, rejected


SERIES_TABLE = parsers.re(r"(?:DCGM )?series every (?P<interval>\w+):")
IS_FIRING = parsers.re(r'"(?P<alert>[^"]+)" is firing at (?P<time>\w+)(?: for (?P<scope>.+))?$')
IS_NOT_FIRING = parsers.re(r'"(?P<alert>[^"]+)" is not firing at (?P<time>\w+)(?: for (?P<scope>.+))?$')
RESOLVES = parsers.re(r'"(?P<alert>[^"]+)" resolves by (?P<time>\w+)(?: for (?P<scope>.+))?$')
CARRY_REQUIRED = parsers.parse(
    'every firing alert among "{alerts}" carries the labels and annotations the alert policy requires'
)
SUMMARY_NAMES_GPU_AND_POD = parsers.parse('every firing alert among "{alerts}" has a summary naming its gpu and pod')
HAND_WRITTEN_TESTS = parsers.string("the hand-written promtool tests pass against these alert rules")


def _table(interval: str, datatable: list[list[str]]) -> SeriesTable | str:
    """The series table, or why it is not one."""
    header, *rows = datatable
    columns = [h.strip().lower() for h in header]
    if columns[:2] != ["series", "values"]:
        return f"the series table needs the columns | series | values |, got {header}"
    return SeriesTable(interval=interval, series=[(r[0].strip(), r[1].strip()) for r in rows])


def _is_firing(alert: str, time: str, scope: str | None) -> Expect:
    return Expect(alert, time, True, _scope(scope))


def _is_not_firing(alert: str, time: str, scope: str | None) -> Expect:
    return Expect(alert, time, False, _scope(scope))


def _resolves(alert: str, time: str, scope: str | None) -> Resolves:
    return Resolves(alert, time, _scope(scope))


def _all_firing(alerts: str) -> AllFiring:
    return AllFiring(tuple(a.strip() for a in alerts.split(",") if a.strip()))


_ALERT_CALLS: list[tuple[Any, Any]] = [
    (IS_FIRING, _is_firing),
    (IS_NOT_FIRING, _is_not_firing),
    (RESOLVES, _resolves),
    (CARRY_REQUIRED, _all_firing),
    (SUMMARY_NAMES_GPU_AND_POD, _all_firing),
]
"""The Then steps that judge alerts over a series table, with the call each makes (what `_plans` reads)."""

_PREPARED = pytest.StashKey[PreparedRuns]()


def _scenario_of(item: pytest.Item) -> Any:
    """The scenario pytest-bdd runs for this item (rendered with its example row), or None."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    obj = getattr(item, "obj", None)
    try:
        template = scenario_wrapper_template_registry.get(obj) if obj is not None else None
    except TypeError:
        return None
    if template is None:
        return None
    callspec = getattr(item, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example", {}) if callspec is not None else {}
    return template.render(example or {})


def _scenarios(items: list[pytest.Item]) -> list[Any]:
    """The scenarios of the session's items, each rendered once (an item that is not one is left out)."""
    scenarios = []
    for item in items:
        try:
            scenario = _scenario_of(item)
        except Exception:  # nothing of it is run ahead; its steps run promtool themselves
            continue
        if scenario is not None:
            scenarios.append(scenario)
    return scenarios


def _plans(scenarios: list[Any]) -> list[AlertPlan]:
    """Each series table of the session's scenarios with the alert calls of the Then steps after it, read with
    the step definitions' own parsers."""
    plans: list[AlertPlan] = []
    for scenario in scenarios:
        try:
            plans += _plans_of(scenario)
        except Exception:  # the step itself meets what stops its planning (a table without rows) and says so
            continue
    return plans


def _plans_of(scenario: Any) -> list[AlertPlan]:
    plans: list[AlertPlan] = []
    current: AlertPlan | None = None
    for step in scenario.steps:
        matches = step.type == "given" and SERIES_TABLE.is_matching(step.name) and step.datatable is not None
        if matches and (arguments := SERIES_TABLE.parse_arguments(step.name)) is not None:
            table = _table(arguments["interval"], step.datatable.raw())
            current = AlertPlan(table) if isinstance(table, SeriesTable) else None
            if current is not None:
                plans.append(current)
        elif step.type == "then" and current is not None:
            for parser, call in _ALERT_CALLS:
                if parser.is_matching(step.name) and (arguments := parser.parse_arguments(step.name)) is not None:
                    current.calls.append(call(**arguments))
                    break
    return plans


def _hand_written_tests_skip(alert_rules: AlertRules, files: list[Path], config: pytest.Config) -> str | None:
    """Why the hand-written tests step skips (None: it runs them): the bundled tests are the reference system's,
    judged only on rules that define the alerts they exercise; no test judges an alert whose PrometheusRule does
    not load (already a finding)."""
    exercised = set(exercised_by_test_files(files)) if files else set()
    rejected = sorted(exercised & set(alert_rules.rejected))
    if rejected:
        return alert_rules.rejected[rejected[0]] + (
            f" (the promtool tests also exercise {', '.join(rejected[1:])})" if rejected[1:] else ""
        )
    if not files or config.getoption("alert_tests", None):
        return None
    absent = sorted(exercised - set(alert_rules.names))
    if not absent:
        return None
    return (f"the bundled promtool tests ({', '.join(p.name for p in files)}) exercise alerts the PrometheusRules "
            f"under test do not define ({', '.join(absent)}); give your own with --alert-tests")


def _hand_written(scenarios: list[Any], alert_rules: AlertRules, config: pytest.Config) -> list[tuple[str, str]]:
    """The test files the hand-written tests step runs, when a scenario of the session has it."""
    for scenario in scenarios:
        if any(s.type == "then" and HAND_WRITTEN_TESTS.is_matching(s.name) for s in scenario.steps):
            files = _alert_test_files(config)
            if _hand_written_tests_skip(alert_rules, files, config):
                return []  # the step skips: nothing of it to run ahead
            try:
                return user_test_files(files, alert_rules.files)
            except Exception:  # the step itself meets it (a file that is not a mapping) and says so
                return []
    return []


def _prepared(alert_rules: AlertRules, request: pytest.FixtureRequest) -> PreparedRuns:
    """At the session's first alert step that runs promtool, every alert step of the session's scenarios (and its
    hand-written promtool tests) is run ahead in two promtool runs (`prepare_alert_runs`); a step finds its run
    there, or runs promtool itself as before."""
    stash = request.session.stash
    if _PREPARED not in stash:
        scenarios = _scenarios(list(request.session.items))
        try:
            prepared = prepare_alert_runs(alert_rules.files, alert_rules.loaded, _plans(scenarios),
                                          also=_hand_written(scenarios, alert_rules, request.config))
        except Exception:  # nothing prepared: each step runs promtool itself, and meets the problem there as before
            prepared = PreparedRuns()
        stash[_PREPARED] = prepared
    return stash[_PREPARED]


@given(SERIES_TABLE)
def series_table(
    alert_rules: AlertRules, interval: str, datatable: list[list[str]], request: pytest.FixtureRequest
) -> None:
    alert_rules.need_rules()
    table = _table(interval, datatable)
    if not isinstance(table, SeriesTable):
        pytest.fail(table, pytrace=False)
    if not alert_rules.files:
        pytest.skip(
            "no PrometheusRule under test loads, so no alert is evaluated (each is reported by "
            "prometheusrule-passes-promtool-check): fix those findings and this scenario judges the alerts"
        )
    alert_rules.behaviour = AlertBehaviour(
        alert_rules.files, alert_rules.loaded, table, prepared=_prepared(alert_rules, request).tests
    )


def _skip_unless_defined(alert_rules: AlertRules, *alerts: str) -> None:
    """A scenario about named alerts of the reference system is skipped, with this reason, on rules that do not
    define them (another team's PrometheusRules); when they are defined, the scenario judges them. Rules that
    define an alert the alert policy in force names (its `alerts` table) are that system's rules: a named alert
    missing from them is a failure, not a skip."""
    absent = [a for a in alerts if a not in alert_rules.names]
    policy_names = set(alert_rules.run.policy.alerts.get("alerts") or {})
    if absent and policy_names & set(alert_rules.names):
        pytest.fail(
            f"no alert named {', '.join(repr(a) for a in absent)} in the PrometheusRules under test, which define "
            f"the alert policy's {', '.join(sorted(policy_names & set(alert_rules.names)))} "
            f"({alert_rules.run.policy.source_of('alerts')}); alerts: {', '.join(sorted(alert_rules.names))}",
            pytrace=False,
        )
    if absent:
        pytest.skip(
            f"the PrometheusRules under test define no alert named {', '.join(repr(a) for a in absent)}: this "
            "scenario is about the reference system's alerts"
        )
    for alert in alerts:
        if alert in alert_rules.rejected:
            pytest.skip(alert_rules.rejected[alert])


def _judge_call(alert_rules: AlertRules, alert: str, call: Expect | Resolves) -> None:
    _skip_unless_defined(alert_rules, alert)
    try:
        _judge(call.run(alert_rules.need_behaviour()))
    except AlertTestError as exc:
        pytest.fail(str(exc), pytrace=False)


@then(IS_FIRING)
def alert_is_firing(alert_rules: AlertRules, alert: str, time: str, scope: str | None) -> None:
    _judge_call(alert_rules, alert, _is_firing(alert, time, scope))


@then(IS_NOT_FIRING)
def alert_is_not_firing(alert_rules: AlertRules, alert: str, time: str, scope: str | None) -> None:
    _judge_call(alert_rules, alert, _is_not_firing(alert, time, scope))


@then(RESOLVES)
def alert_resolves(alert_rules: AlertRules, alert: str, time: str, scope: str | None) -> None:
    _judge_call(alert_rules, alert, _resolves(alert, time, scope))


def _firing(alert_rules: AlertRules, alerts: str) -> list[tuple[str, Any]]:
    """Each distinct firing alert (by labels) with the first time it fired."""
    wanted = [a.strip() for a in alerts.split(",") if a.strip()]
    _skip_unless_defined(alert_rules, *wanted)
    behaviour = alert_rules.need_behaviour()
    end = behaviour.table.end()
    fired = [(t, a) for t, a in _all_firing(alerts).run(behaviour) if a.labels.get("alertname") in wanted]
    silent = sorted(set(wanted) - {a.labels.get("alertname") for _, a in fired})
    if silent:
        pytest.fail(
            f"{', '.join(silent)} never fired between 0s and {end} with these series, so its labels "
            "and annotations cannot be checked: give series that make it fire",
            pytrace=False,
        )
    first: dict[str, tuple[str, Any]] = {}
    for at, fired_alert in fired:
        first.setdefault(fired_alert.describe(), (at, fired_alert))
    return list(first.values())


@then(CARRY_REQUIRED)
def alerts_carry_required(alert_rules: AlertRules, alerts: str) -> None:
    policy = alert_rules.run.policy.alerts
    required_labels = list(policy.get("requiredLabels", []))
    required_annotations = list(policy.get("requiredAnnotations", []))
    problems = []
    for time, alert in _firing(alert_rules, alerts):
        missing = [f"label {k}" for k in required_labels if not alert.labels.get(k, "").strip()]
        missing += [
            f"annotation {k}" for k in required_annotations if not alert.annotations.get(k, "").strip()
        ]
        expected = (policy.get("alerts", {}).get(alert.labels["alertname"], {}) or {}).get("severity")
        if expected and alert.labels.get("severity") != expected:
            missing.append(
                f'severity "{expected}" ({alert_rules.run.policy.source_of("alerts")}), '
                f'has "{alert.labels.get("severity")}"'
            )
        if missing:
            problems.append(f"at {time}: {alert.describe()} lacks {', '.join(missing)}")
    if problems:
        pytest.fail(
            "firing alerts without what the on-call person needs:\n" + "\n".join(sorted(set(problems))),
            pytrace=False,
        )


@then(SUMMARY_NAMES_GPU_AND_POD)
def alerts_summary_names_gpu_and_pod(alert_rules: AlertRules, alerts: str) -> None:
    if alert_rules.run.policy.alerts.get("gpuAlertsNameGpuAndPod") is not True:
        pytest.skip("the alert policy in force does not ask GPU alerts to name their gpu and pod "
                    "(gpuAlertsNameGpuAndPod)")
    problems = []
    for time, alert in _firing(alert_rules, alerts):
        summary = alert.annotations.get("summary", "")
        absent = []
        for label in ("gpu", "pod"):
            value = alert.labels.get(label)
            if not value:
                absent.append(f"the alert has no {label} label (the expression aggregates it away)")
            elif not re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", summary):
                absent.append(f'the summary does not name {label} "{value}"')
        if absent:
            problems.append(f"at {time}: {alert.describe()} summary {summary!r}: " + "; ".join(absent))
    if problems:
        pytest.fail(
            "an on-call person cannot tell which GPU and pod from the summary:\n"
            + "\n".join(sorted(set(problems))),
            pytrace=False,
        )


# -- hand-written promtool tests and coverage ----------------------------------------------------------------
def _alert_test_dirs(config: pytest.Config) -> list[Path]:
    given_dirs = config.getoption("alert_tests", None)
    if given_dirs:
        return [Path(d) for d in given_dirs]
    return [alert_tests_dir()]


def _alert_test_files(config: pytest.Config) -> list[Path]:
    return sorted(p for d in _alert_test_dirs(config) for p in d.glob("*.y*ml") if p.is_file())


@then(HAND_WRITTEN_TESTS)
def hand_written_tests_pass(alert_rules: AlertRules, request: pytest.FixtureRequest) -> None:
    alert_rules.need_rules()
    files = _alert_test_files(request.config)
    reason = _hand_written_tests_skip(alert_rules, files, request.config)
    if reason:
        pytest.skip(reason)
    if not files:
        pytest.fail(
            f"no promtool test files (*.yaml) in {', '.join(map(str, _alert_test_dirs(request.config)))}: "
            "give the folder of yours with --alert-tests",
            pytrace=False,
        )
    failed = [
        f"{path}:\n{result.output.strip()}"
        for path, result in run_test_files(files, alert_rules.files, _prepared(alert_rules, request).files).items()
        if result.returncode != 0
    ]
    if failed:
        pytest.fail("promtool test rules failed:\n" + "\n\n".join(failed), pytrace=False)


def _feature_files(config: pytest.Config) -> list[Path]:
    folders = {features_dir().resolve(), (config.rootpath / "features").resolve()}
    return sorted({p for d in folders if d.is_dir() for p in d.rglob("*.feature")})


@then("every alert is exercised by a scenario or a promtool test file")
def every_alert_exercised(alert_rules: AlertRules, request: pytest.FixtureRequest) -> None:
    alert_rules.need_rules()
    if alert_rules.run.policy.alerts.get("requireAlertTests") is not True:
        pytest.skip("the alert policy in force does not require every alert to be tested (requireAlertTests)")
    missing = unexercised(
        alert_rules.names,
        exercised_by_features(_feature_files(request.config)),
        exercised_by_test_files(_alert_test_files(request.config)),
    )
    if missing:
        pytest.fail(
            "alerts no scenario or promtool test exercises (they could be broken unnoticed):\n"
            + "\n".join(f"  {name}" for name in missing),
            pytrace=False,
        )


# -- KEDA queries over synthetic DCGM series --------------------------------------------------------------
def _keda(gpu_policy_run: RunResult, honor_labels: bool, explain: bool = True) -> list[QueryEvaluation]:
    queries = list(promql_sources(gpu_policy_run.graph).keda)
    if not queries:
        pytest.skip("the manifests under test hold no KEDA prometheus trigger")
    return [e for e in evaluate_queries(gpu_policy_run.graph, queries, honor_labels, explain=explain)
            if not e.skipped]


@then("a KEDA GPU query that selects pods by label reads 0 unless the exporter's scrape keeps its pod labels")
def keda_queries_need_honor_labels(gpu_policy_run: RunResult) -> None:
    """Without honorLabels the exporter's `pod`/`namespace` arrive as `exported_pod`/`exported_namespace`: show,
    with promtool, which queries then return nothing (KEDA reads 0), and fail when the set's scrape does that."""
    if not promql_sources(gpu_policy_run.graph).keda:
        pytest.skip("the manifests under test hold no KEDA prometheus trigger")
    honor, why = dcgm_honor_labels(gpu_policy_run.graph)
    if honor is True:
        return  # the scrape keeps the labels: nothing to evaluate with them renamed
    # promtool's report is shown only when the scrape is known to rename the labels (honor False)
    dependent = [e for e in _keda(gpu_policy_run, False, explain=honor is False) if not e.baseline]
    if not dependent:
        return  # every query still reads its series when the labels are renamed
    if honor is None:
        pytest.skip(f"these KEDA queries need the exporter's pod labels, and {why}: cannot tell what they read")
    problems = [
        f"{e.query.doc.ref} ({e.query.doc.source}:{e.query.line}) {e.query.where}: returns no series once the "
        f"exporter's labels are renamed exported_pod/exported_namespace, so KEDA reads 0:\n{e.output}"
        for e in dependent
    ]
    pytest.fail(f"{why}.\n\n" + "\n\n".join(problems), pytrace=False)
