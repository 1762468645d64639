"""gpu_policy.promql.text: the PromQL lexer and the few structural readings the rules rely on."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_policy.promql.text import (
    Matcher,
    aggregations,
    comparison_threshold,
    dcgm_metric_names,
    divisors,
    grouping_labels,
    is_bare_selector,
    metric_names,
    outer_aggregation,
    selectors,
    strip_strings,
    tokenize,
)

# -- examples ---------------------------------------------------------------------------------------------


def test_strings_and_comments_never_name_metrics() -> None:
    expr = 'up{job="DCGM_FI_DEV_GPU_UTIL"} # DCGM_FI_DEV_FB_USED in a comment\n + `raw DCGM_FI_X` * 0'
    assert metric_names(expr) == ("up",)
    assert dcgm_metric_names(expr) == []


def test_names_skip_functions_keywords_label_lists_durations_and_grafana_variables() -> None:
    expr = (
        "sum by (pod) (rate(a_total[$__rate_interval])) / on(pod) group_left(node) "
        "max without (gpu) (b) offset 5m and ignoring(x) c unless ${d} > [[e]]"
    )
    assert metric_names(expr) == ("a_total", "b", "c")
    assert grouping_labels(expr) == ("pod", "pod", "node", "gpu", "x")


def test_keywords_are_case_insensitive_like_the_prometheus_lexer() -> None:
    # lex.go looks keywords up lowercased: `SUM BY` is an aggregation, `AND` an operator.
    assert metric_names("SUM BY (pod) (x) AND y") == ("x", "y")
    found = outer_aggregation("SUM BY (pod) (x)")
    assert found is not None and (found.operator, found.grouping, found.labels) == ("sum", "by", ("pod",))


def test_name_matcher_and_recording_rule_names() -> None:
    assert metric_names('{__name__="DCGM_FI_DEV_GPU_UTIL", pod="a"}') == ("DCGM_FI_DEV_GPU_UTIL",)
    assert metric_names('{__name__=~"DCGM_.*"}') == ()  # a regex names no single metric
    # colons are reserved for recording rules: never an exporter's metric
    assert dcgm_metric_names("DCGM_FI_DEV_GPU_UTIL:avg5m + DCGM_FI_DEV_FB_FREE") == ["DCGM_FI_DEV_FB_FREE"]


def test_subquery_colon_is_not_part_of_a_name() -> None:
    tokens = tokenize("max_over_time(x[5m:1m])")
    assert [t.text for t in tokens] == ["max_over_time", "(", "x", "[", "5m", ":", "1m", "]", ")"]
    assert [t.kind for t in tokens][3:8] == ["[", "duration", "op", "duration", "]"]
    assert metric_names("a:b:c[5m:30s]") == ("a:b:c",)


def test_selector_matchers_with_escapes_and_all_operators() -> None:
    found = selectors(r'x{a="1", b!="two", c=~"m-\".*", d!~' + "'q'" + r"} / {e=`raw\d`}")
    assert [(s.metric, s.matchers) for s in found] == [
        (
            "x",
            (Matcher("a", "=", "1"), Matcher("b", "!=", "two"), Matcher("c", "=~", 'm-".*'), Matcher("d", "!~", "q")),
        ),
        (None, (Matcher("e", "=", r"raw\d"),)),
    ]


@pytest.mark.parametrize(
    ("query", "operator", "whole"),
    [
        ("sum(DCGM_FI_DEV_GPU_UTIL{pod=~'a-.*'})", "sum", True),
        ("avg by (pod) (x)", "avg", True),
        ("avg(x) by (pod)", "avg", True),
        ("((max(x)))", "max", True),
        ('100 * avg(x{a="sum("})', "avg", False),
        ("sum(x) / count(y)", "sum", False),
        ("topk(3, sum by (pod) (x))", "topk", True),
        ("rate(x[5m])", None, False),
        ("rate(sum(x)[5m:])", None, False),  # the sum is inside a function: not at the top level
        ('x{label="avg("}', None, False),
    ],
)
def test_outer_aggregation(query: str, operator: str | None, whole: bool) -> None:
    found = outer_aggregation(query)
    assert (found.operator if found else None, found.whole if found else False) == (operator, whole)


def test_nested_aggregations_are_all_listed() -> None:
    found = aggregations("max(avg by (gpu) (x)) + avg(y)")
    assert [(a.operator, a.labels, a.top_level) for a in found] == [
        ("max", (), True),
        ("avg", ("gpu",), False),
        ("avg", (), True),
    ]


@pytest.mark.parametrize(
    ("query", "bare"),
    [("x", True), ('x{a="b"}', True), ('{__name__="x"}', True), ("(x)", True), ("x[5m]", False),
     ("rate(x[5m])", False), ("x + y", False), ("sum", False), ("", False)],
)  # fmt: skip
def test_bare_selector(query: str, bare: bool) -> None:
    assert is_bare_selector(query) is bare


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("DCGM_FI_DEV_GPU_UTIL > 90", (">", 90.0)),
        ('x{a=">5", b!="3"} >= bool 0.9', (">=", 0.9)),
        ("90 < x", ("<", 90.0)),
        ("x > -1", (">", -1.0)),
        ("x > 1e2", (">", 100.0)),
        ("x == 0x1F", ("==", 31.0)),
        ("x > Inf", (">", float("inf"))),
        ("(a > 1) and (b < 5)", ("<", 5.0)),  # the last comparison with a constant
        ("x > y", None),
        ("rate(x[5m]) offset 1m", None),
    ],
)
def test_comparison_threshold(expr: str, want: tuple[str, float] | None) -> None:
    assert comparison_threshold(expr) == want


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("a / b + c", (("b",),)),
        ("a / b ^ c", (("b", "c"),)),
        ("a / (b + c)", (("b", "c"),)),
        ("a / on(pod) group_left sum by (pod) (b) * c", (("b",),)),
        ("a / rate(b[5m] offset 1m) - c", (("b",),)),
        ("a / -b", (("b",),)),
        ("a / (", ((),)),  # unclosed: the operand runs to the end
    ],
)
def test_divisors_follow_precedence(expr: str, want: tuple[tuple[str, ...], ...]) -> None:
    assert divisors(expr) == want


# -- properties -------------------------------------------------------------------------------------------

names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n.lower() not in {"and", "or", "unless", "atan2", "bool", "offset", "start", "end", "inf", "nan",
                                "by", "without", "on", "ignoring", "group_left", "group_right", "sum", "avg",
                                "max", "min", "count", "quantile", "stddev", "stdvar", "group", "topk",
                                "bottomk", "count_values", "limitk", "limit_ratio"}
)  # fmt: skip
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
matchers = st.lists(st.tuples(names, st.sampled_from(["=", "!=", "=~", "!~"]), values), max_size=4)


@given(st.text(max_size=80))
def test_lexing_any_text_never_fails_and_tokens_are_slices_of_it(text: str) -> None:
    tokens = tokenize(text)
    assert all(text[t.start : t.start + len(t.text)] == t.text for t in tokens)
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)
    stripped = strip_strings(text)
    assert len(stripped) == len(text) and stripped.count("\n") == text.count("\n")
    # every reading is total on any input
    metric_names(text), selectors(text), aggregations(text), comparison_threshold(text), divisors(text)
    is_bare_selector(text)


@given(names, matchers)
def test_selectors_round_trip_their_matchers(metric: str, written: list[tuple[str, str, str]]) -> None:
    # json.dumps without ensure_ascii writes what Go's strconv.Quote would: escapes only `"`, `\` and controls
    body = ", ".join(f"{name}{op}{json.dumps(value, ensure_ascii=False)}" for name, op, value in written)
    expr = f"{metric}{{{body}}}"
    assert selectors(expr)[0].matchers == tuple(Matcher(*m) for m in written)
    assert metric_names(expr) == (metric,)  # label names and values never count as metrics
    assert is_bare_selector(expr)


@given(names, st.sampled_from(["sum", "avg", "max", "min", "count"]), st.lists(names, max_size=3),
       st.sampled_from(["before", "after", "none"]), st.sampled_from(["by", "without"]))  # fmt: skip
def test_aggregation_grouping_is_read_wherever_it_is_written(
    metric: str, operator: str, labels: list[str], place: str, grouping: str
) -> None:
    label_list = f"{grouping} ({', '.join(labels)})"
    inner = f"rate({metric}[5m])"
    expr = {
        "before": f"{operator} {label_list} ({inner})",
        "after": f"{operator}({inner}) {label_list}",
        "none": f"{operator}({inner})",
    }[place]
    found = outer_aggregation(expr)
    assert found is not None and found.operator == operator and found.whole
    assert (found.grouping, found.labels) == ((None, ()) if place == "none" else (grouping, tuple(labels)))
    assert metric_names(expr) == (metric,)
    scaled = outer_aggregation(f"100 * {expr}")
    assert scaled is not None and scaled.operator == operator and not scaled.whole


@given(names, st.sampled_from(sorted({">", "<", ">=", "<=", "==", "!="})),
       st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.booleans())  # fmt: skip
def test_threshold_is_the_compared_constant(metric: str, op: str, number: float, use_bool: bool) -> None:
    expr = f'avg by (gpu) ({metric}{{pod=~"x > 5"}}) {op} {"bool " if use_bool else ""}{number!r}'
    assert comparison_threshold(expr) == (op, number)


def test_vllm_counter_without_total_is_flagged_and_with_total_is_not() -> None:
    from tests.rules._helpers import run_rule

    rule = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {{name: r, namespace: m}}
spec:
  groups: [{{name: g, rules: [{{alert: A, expr: '{expr}', for: 5m}}]}}]
"""
    found = run_rule("vllm-counters-have-total-suffix", rule.format(expr="rate(vllm:num_preemptions[5m]) > 1"))
    assert found == [("PrometheusRule/m/r", found[0][1])] and "vllm:num_preemptions_total" in found[0][1]
    total = rule.format(expr="rate(vllm:num_preemptions_total[5m]) > 1")
    assert run_rule("vllm-counters-have-total-suffix", total) == []
    assert run_rule("vllm-counters-have-total-suffix", rule.format(expr="vllm:num_requests_waiting > 1")) == []
