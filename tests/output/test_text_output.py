"""Text output for people (issue 10): the seed set's report fits in a third of the lines it took (383 before this
change), each rule's why/fix once, identical findings grouped, notes counted and listed with -v, nothing lost."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gpu_policy.cli import _wants_color
from gpu_policy.findings import Finding
from gpu_policy.reporting.text import LINE_WIDTH, _grouped, cut, finding_line, first_sentence
from tests.output.helpers import SEED_ARGS, gpu_policy, shared_check, shared_check_json

LINES_BEFORE = 383  # `gpu-policy check fixtures/seed-document/manifests | wc -l` before the text report rewrite


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    _, data = shared_check_json(*SEED_ARGS)
    return {
        "json": data,
        "text": shared_check(*SEED_ARGS).stdout,
        "verbose": shared_check(*SEED_ARGS, "-v").stdout,
        "compact": shared_check(*SEED_ARGS, "--compact").stdout,
    }


def test_default_output_is_at_most_a_third_of_before(seed: dict[str, Any]) -> None:
    lines = seed["text"].splitlines()
    assert len(lines) <= LINES_BEFORE // 3, len(lines)


def test_nothing_is_lost(seed: dict[str, Any]) -> None:
    for f in seed["json"]["findings"]:
        head = f"{f['file']}:{f['line']}: {f['severity']}: [{f['rule_id']}] {f['resource']}"
        assert head in seed["text"] and head in seed["compact"], head
        for detail in f["details"]:
            assert f"  | {detail}" in seed["verbose"], detail
    for note in seed["json"]["not_evaluated"]:
        assert note["reason"] in seed["verbose"]
        assert note["reason"] not in seed["text"]


def test_why_and_fix_once_per_rule(seed: dict[str, Any]) -> None:
    text = seed["text"]
    rationale = next(f["why"] for f in seed["json"]["findings"] if f["rule_id"] == "keda-no-dead-fields")
    assert text.count(first_sentence(rationale, LINE_WIDTH - 8)) == 1
    assert seed["verbose"].count(rationale) == 1
    assert sum(1 for line in text.splitlines() if "[keda-no-dead-fields]" in line) == 3
    assert "sources:" not in text and "sources:" in seed["verbose"]


def test_why_and_fix_wrap_to_a_terminal_only(seed: dict[str, Any]) -> None:
    from gpu_policy.reporting.text import _wrapped

    why = next(f["why"] for f in seed["json"]["findings"] if f["rule_id"] == "lost-metric-is-not-zero")
    assert _wrapped("why", why, None) == [f"  why: {why}"]
    wrapped = _wrapped("why", why, 100)
    assert len(wrapped) > 1 and all(len(line) <= 100 for line in wrapped)
    assert " ".join(line.strip() for line in wrapped) == f"why: {why}"


def test_identical_findings_are_grouped() -> None:
    same = Finding("promql-rule", "PrometheusRule/monitoring/x", "cannot unmarshal", file="a.yaml", line=3)
    other = Finding("promql-rule", "PrometheusRule/monitoring/x", "cannot unmarshal", file="a.yaml", line=9)
    grouped = _grouped([same, same, other])
    assert grouped == [(same, 2), (other, 1)]
    assert finding_line(same, count=2).endswith("cannot unmarshal (x2)")


def test_notes_are_counted_and_listed_with_verbose(seed: dict[str, Any]) -> None:
    summary = seed["json"]["summary"]
    assert f"{summary['notEvaluated']} schema rules not evaluated" in seed["text"]
    assert f"{summary['scenarios']['skipped']} skipped" in seed["text"]
    assert "schema rules not evaluated offline (neither passed nor failed):" in seed["verbose"]
    assert "scenarios skipped:" in seed["verbose"]
    assert "transition rule" not in seed["text"]


def test_compact_is_one_line_per_finding(seed: dict[str, Any]) -> None:
    lines = seed["compact"].splitlines()
    assert len(lines) == len(seed["json"]["findings"]) + 2 - _duplicates(seed["json"])
    assert "  why:" not in seed["compact"]


def _duplicates(data: dict[str, Any]) -> int:
    keys = [json.dumps([f["file"], f["line"], f["rule_id"], f["resource"], f["path"], f["message"]])
            for f in data["findings"]]
    return len(keys) - len(set(keys))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _wants_color(_Tty()) and not _wants_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _wants_color(_Tty())
    assert "\x1b[" not in gpu_policy("check", *SEED_ARGS, "--compact").stdout  # a pipe is not a TTY


def test_no_line_runs_to_a_thousand_characters_and_v_restores_every_text(seed: dict[str, Any]) -> None:
    """Issue 10: lines up to 1,270 characters (every long "why" in full). Default and --compact cut a message, a
    why or a fix at a word, marked `...`; -v prints each in full."""
    for output in ("text", "compact"):
        widest = max(len(line) for line in seed[output].splitlines())
        assert widest <= LINE_WIDTH + 160, (output, widest)
    assert max(len(f["why"]) for f in seed["json"]["findings"]) > 1000  # the texts are long; the lines are not
    assert " ..." in seed["text"] and "(-v prints the full texts" in seed["text"]
    for f in seed["json"]["findings"]:
        assert f["message"] in seed["verbose"], f["message"]
        assert f["why"] in seed["verbose"] and f["fix"] in seed["verbose"]


def test_cut_keeps_whole_words_and_marks_the_cut() -> None:
    text = "the nvidia.com/gpu limit 64 is unreachable within the cpu and memory limits of the pool"
    assert cut(text, 200) == text
    short = cut(text, 40)
    assert short.endswith(" ...") and len(short) <= 40 and text.startswith(short.removesuffix(" ..."))
    assert first_sentence("Budgets are cron in UTC (e.g. 9 to 5). Time zones are not supported.", 200) == (
        "Budgets are cron in UTC (e.g. 9 to 5). ...")


def test_counts_are_in_words() -> None:
    """Issue 10: "1 findings"."""
    done = shared_check(*SEED_ARGS, "--only", "dcgm-exporter-version-pinned")
    assert "result: FAILED (exit 1): 1 finding at or above --fail-on error" in done.stdout, done.stdout
    assert ": 1 error, 0 warnings;" in done.stdout
    assert "1 findings" not in done.stdout and "1 errors" not in done.stdout


def test_a_failed_scenario_is_placed_on_the_first_object_it_names(seed: dict[str, Any]) -> None:
    """A quoted list of alerts names the first alert's PrometheusRule line; a message naming two objects is placed
    on the one it names first."""
    by_rule = {f["rule_id"]: f for f in seed["json"]["findings"]}
    labels = by_rule["scenario/alerts/gpu-alerts-carry-the-labels-and-annotations-an-on-call-perso"]
    assert (labels["resource"], labels["line"]) == ("PrometheusRule/monitoring/gpu-alerts", 10)
    assert labels["file"].endswith("prometheusrule-gpu-alerts.yaml")
    keda = by_rule["scenario/alerts/keda-gpu-queries-that-select-pods-by-label-need-the-exporter"]
    assert keda["message"].index("ServiceMonitor/gpu-monitoring/dcgm-exporter") < keda["message"].find(
        "ScaledObject/") or "ScaledObject/" not in keda["message"]
    assert keda["resource"] == "ServiceMonitor/gpu-monitoring/dcgm-exporter"


def test_a_progress_line_on_stderr_for_long_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal (`gpu-policy check` passes progress=stderr.isatty()) each finished scenario rewrites one line
    on stderr, erased at the end; stdout (the report) gets nothing."""
    from gpu_policy.suite.collector import ScenarioCollector

    collector = ScenarioCollector(progress=True)
    collector.collected = 2
    collector.pytest_runtest_logfinish("features/x.feature::test_one")
    collector.pytest_runtest_logfinish("features/x.feature::test_two")
    collector.end_progress()
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("\r\x1b[K[1/2] features/x.feature::test_one\r\x1b[K[2/2] features/x.feature::test_two"
                   "\r\x1b[K")
    silent = ScenarioCollector(progress=False)
    silent.pytest_runtest_logfinish("features/x.feature::test_one")
    assert capsys.readouterr() == ("", "")
