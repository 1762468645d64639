"""Alert behaviour over synthetic series, judged by promtool: fires / does not fire / resolves, with its
diff."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpu_policy.promql.extract import RuleFile
from gpu_policy.promql.testrun import Alert, SeriesTable, format_duration, run_test, seconds


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
    _fired: dict[tuple[str, float], list[Alert]] = field(default_factory=dict)

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
            run = run_test(self.rule_files, self.table, [(a, t, []) for a, t in missing])
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
        verdict = run_test(self.rule_files, self.table, [(alert, time, expected)])
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
        if not fired_at:
            scope = "".join(f' {k}="{v}"' for k, v in wanted.items())
            return Verdict(
                False,
                f"{alert}{scope} never fired before {time}, so it cannot resolve by then "
                f"(evaluated every {self.table.interval} from 0s)",
            )
        verdict = self.expect(alert, time, firing=False, labels=labels)
        if verdict.ok:
            return Verdict(True, f"{alert} fired from {fired_at[0]} and resolved by {time}")
        return Verdict(
            False, f"{alert} fired from {fired_at[0]} but has not resolved by {time}\n{verdict.message}"
        )

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
