"""Alert behaviour over synthetic series, judged by promtool: fires / does not fire / resolves, with its
diff."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpu_policy.promql.extract import RuleFile
from gpu_policy.promql.promtool import PromtoolResult
from gpu_policy.promql.testrun import (
    SINGLE_TEST_FILE,
    Alert,
    SeriesTable,
    TestFileRun,
    format_duration,
    run_test,
    run_test_batch,
    seconds,
    test_file_run,
    unit_test_text,
)


class AlertTestError(AssertionError):
    """promtool could not run the test at all (rules that do not load, bad series notation)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


@dataclass
class AlertBehaviour:
    rule_files: Sequence[RuleFile]
    alert_names: set[str]
    table: SeriesTable
    prepared: Mapping[str, TestFileRun] = field(default_factory=dict)
    """Runs made ahead of time (`prepare_alert_runs`): a test file found here is not run again."""
    _fired: dict[tuple[str, float], list[Alert]] = field(default_factory=dict)

    def _run(self, alert_checks: list[tuple[str, str, list[Alert]]], confirming: bool) -> TestFileRun:
        """One promtool test of these alert checks: asking what fired (empty expectations), or `confirming` an
        expectation built from that."""
        return run_test(self.rule_files, self.table, alert_checks, prepared=self.prepared)

    def _assumes_firing(self) -> bool:
        """Planning ahead on runs not made yet: a step that goes on only if its alert fired is followed as if it
        did (see `_Planner`)."""
        return False

    def _require(self, alert: str) -> None:
        if alert not in self.alert_names:
            known = ", ".join(sorted(self.alert_names)) or "none"
            raise AlertTestError(
                f"no alert named {alert!r} in the PrometheusRules under test (alerts: {known})"
            )

    def fired(self, points: Iterable[tuple[str, str]]) -> dict[tuple[str, float], list[Alert]]:
        """What promtool says is firing at each (alertname, time); one promtool run for all new points."""
        wanted = [(a, t) for a, t in points]
        missing = [(a, t) for a, t in wanted if (a, seconds(t)) not in self._fired]
        if missing:
            run = self._run([(a, t, []) for a, t in missing], confirming=False)
            if run.result.returncode != 0 and not run.alerts:
                raise AlertTestError(
                    f"promtool could not run the alert test:\n{run.result.output.strip()}\n"
                    f"--- test file ---\n{run.text}"
                )
            for a, t in missing:
                self._fired[(a, seconds(t))] = run.alerts.get((a, seconds(t)), [])
        return {(a, seconds(t)): self._fired[(a, seconds(t))] for a, t in wanted}

    def expect(self, alert: str, time: str, firing: bool, labels: dict[str, str] | None = None) -> Verdict:
        """Is `alert` firing (or not) at `time` for series carrying `labels`? promtool judges and explains."""
        self._require(alert)
        wanted = labels or {}
        got = self.fired([(alert, time)])[(alert, seconds(time))]
        matching = [a for a in got if a.matches(wanted)]
        if firing:
            expected = got if matching else [*got, Alert({"alertname": alert, **wanted}, {})]
        else:
            expected = [a for a in got if not a.matches(wanted)]
        ours = bool(matching) == firing
        verdict = self._run([(alert, time, expected)], confirming=True)
        theirs = verdict.result.returncode == 0
        scope = "".join(f' {k}="{v}"' for k, v in wanted.items())
        claim = (
            f"{alert}{' for' + scope if scope else ''} {'is firing' if firing else 'is not firing'} at {time}"
        )
        if ours and theirs:
            return Verdict(True, claim)
        summary = f"expected: {claim}\nfiring at {time}: " + (
            ", ".join(a.describe() for a in got) or "nothing"
        )
        if ours != theirs:
            summary += (
                "\n(gpu-policy and promtool disagree: this is a bug in gpu-policy's reading of promtool)"
            )
        return Verdict(False, f"{summary}\n--- promtool test rules ---\n{verdict.result.output.strip()}")

    def resolves_by(self, alert: str, time: str, labels: dict[str, str] | None = None) -> Verdict:
        """Fires at some evaluation before `time`, and no longer at `time`."""
        self._require(alert)
        end = seconds(time)
        step = seconds(self.table.interval)
        times = [format_duration(i * step) for i in range(int(end // step))]
        before = self.fired([(alert, t) for t in times])
        wanted = labels or {}
        fired_at = [t for t in times if any(a.matches(wanted) for a in before[(alert, seconds(t))])]
        if not fired_at and not self._assumes_firing():
            scope = "".join(f' {k}="{v}"' for k, v in wanted.items())
            return Verdict(
                False,
                f"{alert}{scope} never fired before {time}, so it cannot resolve by then "
                f"(evaluated every {self.table.interval} from 0s)",
            )
        verdict = self.expect(alert, time, firing=False, labels=labels)
        since = fired_at[0] if fired_at else "a time not known yet"  # the latter only while planning ahead
        if verdict.ok:
            return Verdict(True, f"{alert} fired from {since} and resolved by {time}")
        return Verdict(False, f"{alert} fired from {since} but has not resolved by {time}\n{verdict.message}")

    def all_firing(self, until: str) -> list[tuple[str, Alert]]:
        """Every (time, alert) firing at any evaluation step from 0 to `until`, for every alert."""
        step = seconds(self.table.interval)
        times = [format_duration(i * step) for i in range(int(seconds(until) // step) + 1)]
        fired = self.fired([(a, t) for a in sorted(self.alert_names) for t in times])
        return [
            (format_duration(t), alert)
            for (_, t), alerts in sorted(fired.items(), key=lambda kv: kv[0][1])
            for alert in alerts
        ]


# -- every alert step of a run in two promtool runs ------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """`AlertBehaviour.expect`: is `alert` firing (or not) at `time` for series carrying `labels`."""

    alert: str
    time: str
    firing: bool
    labels: dict[str, str] = field(default_factory=dict)

    def run(self, behaviour: AlertBehaviour) -> Verdict:
        return behaviour.expect(self.alert, self.time, self.firing, self.labels)


@dataclass(frozen=True)
class Resolves:
    """`AlertBehaviour.resolves_by`."""

    alert: str
    time: str
    labels: dict[str, str] = field(default_factory=dict)

    def run(self, behaviour: AlertBehaviour) -> Verdict:
        return behaviour.resolves_by(self.alert, self.time, self.labels)


@dataclass(frozen=True)
class AllFiring:
    """`AlertBehaviour.all_firing` until the last sample of the series table, for a step about `alerts`."""

    alerts: tuple[str, ...] = ()

    def run(self, behaviour: AlertBehaviour) -> list[tuple[str, Alert]]:
        # The step has skipped (or failed) already when one of its alerts is not defined; a plan must stop here too,
        # or it would run every alert of the rules (a monorepo's thousands) for a scenario that never runs.
        for alert in self.alerts:
            behaviour._require(alert)
        return behaviour.all_firing(behaviour.table.end())


AlertCall = Expect | Resolves | AllFiring


@dataclass
class AlertPlan:
    """One series table and the alert calls made on it, in order (the Then steps of a scenario after its table)."""

    table: SeriesTable
    calls: list[AlertCall] = field(default_factory=list)


_PLACEHOLDER = PromtoolResult(args=("test", "rules", SINGLE_TEST_FILE), returncode=0, output="")


@dataclass
class _Planner(AlertBehaviour):
    """Makes a plan's calls with the real methods, without running promtool: a test file already prepared gives its
    run; another is recorded. Until every "what fired" run it needs is prepared, its answers are placeholders
    ("nothing fired"): the "what fired" files it asks for depend only on the calls (which points are asked, which are
    already known), and a step that goes on only if its alert fired is followed as if it did; a confirmation, built
    from those answers, is recorded only once they are all real."""

    wanted: list[str] = field(default_factory=list)
    guessing: bool = False

    def _run(self, alert_checks: list[tuple[str, str, list[Alert]]], confirming: bool) -> TestFileRun:
        text = unit_test_text(self.rule_files, self.table, alert_checks)
        found = self.prepared.get(text)
        if found is not None:
            return found
        if not confirming:
            self.guessing = True
        if not (confirming and self.guessing):
            self.wanted.append(text)
        return TestFileRun(result=_PLACEHOLDER, alerts={}, samples={}, text=text)

    def _assumes_firing(self) -> bool:
        return self.guessing


@dataclass
class PreparedRuns:
    tests: dict[str, TestFileRun] = field(default_factory=dict)
    """`run_test`'s test file text -> its run (`AlertBehaviour.prepared`)."""
    files: dict[tuple[str, str], PromtoolResult] = field(default_factory=dict)
    """(name, text) of another test file (`testrun.run_test_files`'s `prepared`) -> its run."""


def prepare_alert_runs(
    rule_files: Sequence[RuleFile],
    names: set[str],
    plans: Sequence[AlertPlan],
    also: Sequence[tuple[str, str]] = (),
    rounds: int = 2,
) -> PreparedRuns:
    """Every promtool test file the plans' calls will run, run ahead in at most `rounds` promtool processes (each
    round one `promtool test rules` of many files: first what fired, with the test files `also` (name, text), then
    the confirmations built from it). A call the plans did not foresee, or a file the batch could not answer, runs
    alone as before: the prepared runs are keyed by the test file's exact text."""
    done = PreparedRuns()
    prepared = done.tests
    extra = list(dict.fromkeys(also))
    for _ in range(rounds):
        wanted: list[str] = []
        for plan in plans:
            planner = _Planner(rule_files, names, plan.table, prepared)
            for call in plan.calls:
                try:
                    call.run(planner)
                except Exception:  # the step itself meets it (AlertTestError, a bad time) and says so
                    break
            wanted += planner.wanted
        new = [text for text in dict.fromkeys(wanted) if text not in prepared]
        if not new and not extra:
            break
        results = run_test_batch(rule_files, [(SINGLE_TEST_FILE, text) for text in new] + extra)
        for text, result in zip(new, results[: len(new)], strict=True):
            if result is not None:
                prepared[text] = test_file_run(result, text)
        for key, result in zip(extra, results[len(new) :], strict=True):
            if result is not None:
                done.files[key] = result
        extra = []
    return done


def alert_names(rule_files: Iterable[RuleFile]) -> dict[str, list[tuple[RuleFile, int, int]]]:
    """alertname -> where it is defined (rule file, group index, rule index)."""
    found: dict[str, list[tuple[RuleFile, int, int]]] = {}
    for rule_file in rule_files:
        if rule_file.doc is None:
            continue
        for gi, group in enumerate(rule_file.doc.spec.get("groups") or []):
            if not isinstance(group, dict):
                continue
            for ri, rule in enumerate(group.get("rules") or []):
                if isinstance(rule, dict) and isinstance(rule.get("alert"), str):
                    found.setdefault(rule["alert"], []).append((rule_file, gi, ri))
    return found
