"""`promtool test rules` driven from Python: synthetic series in, what fired (or what a query returned) out.

promtool asserts exact expected alerts, labels and annotations included. To assert only "fires / does not fire
for gpu 0", a first run asks with empty expectations and reads promtool's own "got:" answer; the
expectation is
then built from that answer and the assertion, and a second run lets promtool judge it — its diff is the
failure
message (prometheus/prometheus cmd/promtool/unittest.go prints `exp:` / `got:` for every failed evaluation).
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_policy.promql.extract import RuleFile
from gpu_policy.promql.promtool import PromtoolResult, run_promtool, scratch_folder

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_ALERT_HEADER = re.compile(r"^\s*alertname: (.*), time: (\S+?),\s*$")
_EXPR_HEADER = re.compile(r'^\s*expr: ("(?:[^"\\]|\\.)*"), time: (\S+?),\s*$')
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r'(\{(?:[^"{}]|"(?:[^"\\]|\\.)*")*\})\s+(\S+?)(?:,\s+|$)')


def seconds(duration: str) -> float:
    """A Prometheus duration (`5m`, `1h30m`, `90s`) in seconds."""
    text = duration.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def format_duration(total: float) -> str:
    whole = int(total)
    if whole != total or whole == 0:
        return f"{int(total * 1000)}ms" if whole != total else "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out


def _go_unquote(text: str) -> str:
    try:
        value = ast.literal_eval(f'"{text}"')
        return value if isinstance(value, str) else text
    except (ValueError, SyntaxError):
        return text


def parse_labels(text: str) -> dict[str, str]:
    """`{a="1", b="x\\"y"}` (Prometheus' labels.String) -> dict."""
    return {k: _go_unquote(v) for k, v in _PAIR.findall(text)}


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]

    def matches(self, wanted: dict[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in wanted.items())

    def as_expected(self) -> dict[str, Any]:
        labels = {k: v for k, v in self.labels.items() if k != "alertname"}
        return {"exp_labels": labels, "exp_annotations": dict(self.annotations)}

    def describe(self) -> str:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return "{" + labels + "}"


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass
class SeriesTable:
    interval: str
    series: list[tuple[str, str]] = field(default_factory=list)
    """(series selector, promtool values notation such as `95x10` or `0+10x5 _ stale`)."""

    def input_series(self) -> list[dict[str, str]]:
        return [{"series": s, "values": v} for s, v in self.series]

    def end(self) -> str:
        """Last sample time of the longest series (promtool notation: `axn` is n+1 samples, `_xn` n gaps)."""
        longest = 0
        for _, values in self.series:
            count = 0
            for token in values.split():
                match = re.search(r"x(\d+)$", token)
                count += (int(match.group(1)) + (0 if token.startswith("_") else 1)) if match else 1
            longest = max(longest, count)
        return format_duration(max(longest - 1, 0) * seconds(self.interval))


@dataclass
class TestFileRun:
    result: PromtoolResult
    alerts: dict[tuple[str, float], list[Alert]]
    """(alertname, eval time in seconds) -> alerts promtool says fired, for every point that failed."""
    samples: dict[tuple[str, float], list[Sample]]
    text: str
    """The test file that was run (kept for failure messages)."""


def _rule_file_names(rule_files: Sequence[RuleFile | Path]) -> list[str]:
    return [f.name if isinstance(f, RuleFile) else str(Path(f).resolve()) for f in rule_files]


def _write_rule_files(folder: Path, rule_files: Sequence[RuleFile | Path]) -> None:
    for rule_file in rule_files:
        if isinstance(rule_file, RuleFile):
            rule_file.write(folder)


def parse_test_output(
    output: str,
) -> tuple[dict[tuple[str, float], list[Alert]], dict[tuple[str, float], list[Sample]]]:
    """promtool's failure report -> what it got, per alert check and per expression check."""
    alerts: dict[tuple[str, float], list[Alert]] = {}
    samples: dict[tuple[str, float], list[Sample]] = {}
    current_alert: tuple[str, float] | None = None
    in_got = False
    pending_labels: dict[str, str] | None = None
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        header = _ALERT_HEADER.match(line)
        expr_header = _EXPR_HEADER.match(line)
        if header:
            current_alert = (header.group(1), seconds(header.group(2)))
            alerts.setdefault(current_alert, [])
            in_got = False
        elif expr_header:
            current_alert = None
            key = (_go_unquote(expr_header.group(1)[1:-1]), seconds(expr_header.group(2)))
            got: list[Sample] = []
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("got:"):
                j += 1
            if j < len(lines):
                body = lines[j].strip()[len("got:") :].strip()
                for labels_text, value in _SAMPLE.findall(body):
                    got.append(Sample(parse_labels(labels_text), float(value)))
            samples[key] = got
            i = j
        elif current_alert is not None and stripped.startswith("got:"):
            in_got = True
        elif current_alert is not None and in_got and stripped.startswith("Labels:"):
            pending_labels = parse_labels(stripped[len("Labels:") :])
        elif current_alert is not None and in_got and stripped.startswith("Annotations:"):
            alerts[current_alert].append(
                Alert(pending_labels or {}, parse_labels(stripped[len("Annotations:") :]))
            )
            pending_labels = None
        elif stripped.startswith("name:"):
            current_alert = None
            in_got = False
        i += 1
    return alerts, samples


def unit_test_text(
    rule_files: Sequence[RuleFile | Path],
    table: SeriesTable,
    alert_checks: Sequence[tuple[str, str, list[Alert]]] = (),
    expr_checks: Sequence[tuple[str, str]] = (),
    evaluation_interval: str | None = None,
    name: str = "gpu-policy",
) -> str:
    """The promtool unit test file `run_test` runs (its text is also the key of a prepared run)."""
    test: dict[str, Any] = {
        "rule_files": _rule_file_names(rule_files),
        "evaluation_interval": evaluation_interval or table.interval,
        "tests": [
            {
                "name": name,
                "interval": table.interval,
                "input_series": table.input_series(),
                "alert_rule_test": [
                    {"eval_time": t, "alertname": a, "exp_alerts": [e.as_expected() for e in expected]}
                    for a, t, expected in alert_checks
                ],
                "promql_expr_test": [{"expr": e, "eval_time": t, "exp_samples": []} for e, t in expr_checks],
            }
        ],
    }
    return json.dumps(test, indent=2, ensure_ascii=False)


def test_file_run(result: PromtoolResult, text: str) -> TestFileRun:
    alerts, samples = parse_test_output(result.output)
    return TestFileRun(result=result, alerts=alerts, samples=samples, text=text)


SINGLE_TEST_FILE = "test.yaml"
"""The name `run_test` gives its test file (promtool prints it in its `Unit Testing:` header)."""


def run_test(
    rule_files: Sequence[RuleFile | Path],
    table: SeriesTable,
    alert_checks: Sequence[tuple[str, str, list[Alert]]] = (),
    expr_checks: Sequence[tuple[str, str]] = (),
    evaluation_interval: str | None = None,
    name: str = "gpu-policy",
    prepared: Mapping[str, TestFileRun] | None = None,
) -> TestFileRun:
    """One promtool unit test: `alert_checks` are (alertname, eval_time, expected alerts); `expr_checks` are
    (expr, eval_time) asked with no expected samples, so promtool reports what each returned. A test file whose
    text is in `prepared` (`alerts.prepare_alert_runs` over the same rule files) is not run again: its prepared
    run is what this run would give."""
    text = unit_test_text(rule_files, table, alert_checks, expr_checks, evaluation_interval, name)
    if prepared is not None and (found := prepared.get(text)) is not None:
        return found
    with scratch_folder("gpu-policy-test-") as folder:
        _write_rule_files(Path(folder), rule_files)
        (Path(folder) / SINGLE_TEST_FILE).write_text(text, encoding="utf-8")
        result = run_promtool(["test", "rules", SINGLE_TEST_FILE], cwd=folder)
    return test_file_run(result, text)


# -- several test files in one promtool run ------------------------------------------------------------------
# promtool 2.42 (prometheus v2.42.0 cmd/promtool/unittest.go, `RulesUnitTest` and `ruleUnitTest`) tests the files
# of `promtool test rules a.yaml b.yaml ...` one after the other, each on its own (its own rule files, storage and
# rule manager; an error stops that file only), and prints for each:
#   stdout  `Unit Testing:  <file name as given>`             (fmt.Println("Unit Testing: ", filename))
#   then    stdout `  SUCCESS`, or stderr `  FAILED:` and every error followed by an empty stdout line
#   then    stdout an empty line
# and exits 0 when every file passed, 1 (failureExitCode) when one failed. Nothing else is printed (the rule
# manager's logger is a no-op logger), stdout and stderr are unbuffered writes to the one pipe `run_promtool`
# reads, and rule files are resolved relative to the test file's folder (`resolveAndGlobFilepaths`), so a file
# next to the rule files gives, between its header and the next one, exactly what a run of that file alone gives
# after its header: that run's output is the single run's header followed by it, and its exit code 0 or 1 as the
# section says SUCCESS or FAILED. Anything else (another exit code, such as a Go panic's 2; a header missing or
# out of order; a section that is neither) leaves every file of the batch unanswered, and callers run them alone.
BATCH_FILE_PREFIX = "gpu-policy-batch-"


def split_batch_output(
    result: PromtoolResult, batch_names: Sequence[str], single_names: Sequence[str]
) -> list[PromtoolResult | None]:
    """`promtool test rules <batch_names...>`'s result -> for each file, what `promtool test rules <single name>`
    gives for the same file (see above), or None for every file when the output is not one section per file."""
    unknown: list[PromtoolResult | None] = [None] * len(batch_names)
    if result.returncode not in (0, 1) or len(batch_names) != len(single_names):
        return unknown
    output = result.output
    starts: list[int] = []
    position = 0
    for index, name in enumerate(batch_names):
        header = f"Unit Testing:  {name}\n"
        if index == 0:
            at = 0 if output.startswith(header) else -1
        else:
            at = output.find("\n" + header, position)
            at = at + 1 if at >= 0 else -1
        if at < 0:
            return unknown
        starts.append(at)
        position = at + len(header)
    results: list[PromtoolResult | None] = []
    for index, (name, single) in enumerate(zip(batch_names, single_names, strict=True)):
        end = starts[index + 1] if index + 1 < len(starts) else len(output)
        body = output[starts[index] + len(f"Unit Testing:  {name}\n") : end]
        if body == "  SUCCESS\n\n":
            code = 0
        elif body.startswith("  FAILED:\n") and body.endswith("\n\n"):
            code = 1
        else:
            return unknown
        results.append(
            PromtoolResult(args=("test", "rules", single), returncode=code, output=f"Unit Testing:  {single}\n{body}")
        )
    if result.returncode != max(r.returncode for r in results if r is not None):
        return unknown
    return results


def run_test_batch(
    rule_files: Sequence[RuleFile | Path], files: Sequence[tuple[str, str]]
) -> list[PromtoolResult | None]:
    """`files` are (name, text) of promtool test files that would each be run alone as `promtool test rules
    <name>` in a folder holding the rule files; all are run in one promtool process, and each gets what its own
    run would give (`split_batch_output`), or None when the batch's output cannot be read that way."""
    if not files:
        return []
    nonce = secrets.token_hex(4)  # a section header no rule, label or annotation text can spell in advance
    batch_names = [f"{BATCH_FILE_PREFIX}{nonce}-{index}.yaml" for index in range(len(files))]
    if set(batch_names) & set(_rule_file_names(rule_files)):
        return [None] * len(files)
    with scratch_folder("gpu-policy-batch-") as folder:
        _write_rule_files(Path(folder), rule_files)
        for batch_name, (_, text) in zip(batch_names, files, strict=True):
            (Path(folder) / batch_name).write_text(text, encoding="utf-8")
        try:
            result = run_promtool(["test", "rules", *batch_names], cwd=folder)
        except subprocess.TimeoutExpired:
            return [None] * len(files)  # each file, run alone, then meets its own time limit
    return split_batch_output(result, batch_names, [name for name, _ in files])


def user_test_files(paths: Sequence[Path], rule_files: Sequence[RuleFile]) -> list[tuple[str, str]]:
    """(name, text) of the test file `run_test_files` runs for each hand-written file, in order."""
    import yaml  # local: only this path reads user YAML

    files: list[tuple[str, str]] = []
    for index, path in enumerate(paths):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a promtool test file (a mapping with `tests`)")
        if data.get("rule_files"):
            data["rule_files"] = [
                str((path.parent / f).resolve()) if not Path(f).is_absolute() else f for f in data["rule_files"]
            ]
        else:
            data["rule_files"] = [f.name for f in rule_files]
        files.append((f"user-test-{index}.yaml", json.dumps(data, ensure_ascii=False, default=str)))
    return files


def run_test_files(
    paths: Sequence[Path],
    rule_files: Sequence[RuleFile],
    prepared: Mapping[tuple[str, str], PromtoolResult] | None = None,
) -> dict[Path, PromtoolResult]:
    """Hand-written promtool test files. A file without `rule_files` is run against `rule_files` (the
    manifests' extracted PrometheusRules); one that names its own keeps them, resolved next to the file. A file
    whose (name, text) is in `prepared` (a `run_test_batch` over the same rule files) is not run again."""
    files = user_test_files(paths, rule_files)
    results: dict[Path, PromtoolResult] = {
        path: found
        for path, key in zip(paths, files, strict=True)
        if prepared is not None and (found := prepared.get(key)) is not None
    }
    if len(results) == len(files):
        return results
    with scratch_folder("gpu-policy-user-tests-") as folder:
        _write_rule_files(Path(folder), rule_files)
        for path, (name, text) in zip(paths, files, strict=True):
            if path in results:
                continue
            (Path(folder) / name).write_text(text, encoding="utf-8")
            results[path] = run_promtool(["test", "rules", name], cwd=folder)
    return {path: results[path] for path in paths}
