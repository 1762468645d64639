"""The common KEDA query shapes evaluated in-process over synthetic series (promtool evaluates the rest).

Shapes: one instant vector selector `metric{matchers}`, alone or inside `sum`, `avg`, `min`, `max` or `count`
with an optional `by (...)` / `without (...)` clause before or after the parentheses. Every series holds one
value per phase and has a sample every minute, so an instant selector at an evaluation time returns each matching
series' value at that minute (the 5m lookback never reaches an older phase).

Semantics of prometheus/prometheus v2.42 (the promtool of this machine):
- matching (model/labels/matcher.go): a label the series lacks reads as ""; `=~`/`!~` are anchored at both ends
  (`^(?:re)$`, labels/regexp.go); only patterns whose Python and RE2 readings agree are taken here (no escapes,
  braces, anchors, flags or groups' `(?` syntax), the others go to promtool;
- aggregation (promql/engine.go `aggregation`): one output per distinct value tuple of the `by` labels (or of
  every label but the `without` ones and `__name__`); sum, avg (mean), min, max, count over the group; an empty
  input yields no output.
`tests/promql/test_instant_eval.py` checks every shape against promtool on the same series.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from gpu_policy.promql.testrun import Sample
from gpu_policy.promql.text import KEYWORDS, Matcher, Token, selectors, tokenize

SIMPLE_AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count"})
_SAFE_PATTERN = re.compile(r"[A-Za-z0-9_\-.*+?|()\[\]:/ ,=@]*")


@dataclass(frozen=True)
class Shape:
    """`aggregation(grouping)(metric{matchers})`; aggregation None for a bare selector."""

    metric: str
    matchers: tuple[Matcher, ...]
    aggregation: str | None = None
    grouping: str | None = None
    """`by`, `without` or None."""
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputSeries:
    labels: dict[str, str]
    """Including `__name__`."""
    values: tuple[float, ...]
    """One value per phase."""


@lru_cache(maxsize=1 << 16)
def regex(pattern: str) -> re.Pattern[str]:
    """`re.compile`, kept for every query of a large set (the `re` module keeps 512 patterns: a 20k set has 2,000
    pod patterns, each compiled again at every use)."""
    return re.compile(pattern)


def _safe(matcher: Matcher) -> bool:
    if matcher.op in ("=", "!="):
        return True
    if "(?" in matcher.value or not _SAFE_PATTERN.fullmatch(matcher.value):
        return False
    try:
        regex(matcher.value)
    except re.error:
        return False
    return True


def _grouping(toks: Sequence[Token], i: int) -> tuple[str, tuple[str, ...], int] | None:
    """`by (a, b)` at toks[i]: (keyword, labels, index after it)."""
    if i >= len(toks) or toks[i].word not in ("by", "without"):
        return None
    keyword = toks[i].word
    if i + 1 >= len(toks) or toks[i + 1].kind != "(":
        return None
    labels: list[str] = []
    j = i + 2
    while j < len(toks) and toks[j].kind != ")":
        if toks[j].kind != "ident" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", toks[j].text):
            return None
        labels.append(toks[j].text)
        j += 1
        if j < len(toks) and toks[j].kind == ",":
            j += 1
    if j >= len(toks):
        return None
    return keyword, tuple(labels), j + 1


def _selector_end(toks: Sequence[Token], i: int) -> int | None:
    """`metric` or `metric{...}` starting at toks[i]: the index after it."""
    if i >= len(toks) or toks[i].kind != "ident" or toks[i].word in KEYWORDS:
        return None
    j = i + 1
    if j < len(toks) and toks[j].kind == "{":
        depth = 0
        while j < len(toks):
            if toks[j].kind == "{":
                depth += 1
            elif toks[j].kind == "}":
                depth -= 1
                if depth == 0:
                    return j + 1
            elif toks[j].kind not in ("ident", "op", "string", ","):
                return None
            j += 1
        return None
    return j


def shape(expr: str) -> Shape | None:
    """The query's shape when it is one this module evaluates, else None."""
    found = selectors(expr)
    if len(found) != 1:
        return None
    selector = found[0]
    if selector.metric is None or any(m.name == "__name__" for m in selector.matchers):
        return None
    if not all(_safe(m) for m in selector.matchers):
        return None
    toks = tokenize(expr)
    end = _selector_end(toks, 0)
    if end is not None:
        return Shape(selector.metric, selector.matchers) if end == len(toks) and toks[0].text == selector.metric \
            else None
    if not toks or toks[0].word not in SIMPLE_AGGREGATIONS:
        return None
    aggregation = toks[0].word
    i = 1
    grouping = _grouping(toks, i)
    if grouping is not None:
        i = grouping[2]
    if i >= len(toks) or toks[i].kind != "(":
        return None
    end = _selector_end(toks, i + 1)
    if end is None or toks[i + 1].text != selector.metric or end >= len(toks) or toks[end].kind != ")":
        return None
    i = end + 1
    if i < len(toks):
        if grouping is not None:
            return None
        grouping = _grouping(toks, i)
        if grouping is None or grouping[2] != len(toks):
            return None
    keyword, labels = (grouping[0], grouping[1]) if grouping else (None, ())
    return Shape(selector.metric, selector.matchers, aggregation, keyword, labels)


def _holds(matcher: Matcher, value: str) -> bool:
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = regex(matcher.value).fullmatch(value) is not None
    return found if matcher.op == "=~" else not found


def evaluate(query: Shape, series: Sequence[InputSeries], phase: int) -> list[Sample]:
    """The query's result at the end of `phase`."""
    selected = [
        s for s in series
        if s.labels.get("__name__") == query.metric
        and all(_holds(m, s.labels.get(m.name, "")) for m in query.matchers)
    ]
    if query.aggregation is None:
        return [Sample({k: v for k, v in s.labels.items()}, s.values[phase]) for s in selected]
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for s in selected:
        if query.grouping == "by":
            key = tuple((name, s.labels.get(name, "")) for name in sorted(set(query.labels)))
        elif query.grouping == "without":
            dropped = {*query.labels, "__name__"}
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k not in dropped))
        else:
            key = ()
        groups.setdefault(key, []).append(s.values[phase])
    out = []
    for key, values in groups.items():
        labels = {k: v for k, v in key if v != ""}
        if query.aggregation == "sum":
            value = sum(values)
        elif query.aggregation == "avg":
            value = sum(values) / len(values)
        elif query.aggregation == "min":
            value = min(values)
        elif query.aggregation == "max":
            value = max(values)
        else:
            value = float(len(values))
        out.append(Sample(labels, value))
    return out
