"""Metric names a PromQL expression reads, found by a small lexer (prometheus/prometheus
promql/parser/lex.go).

Not a parser: it skips strings, label matchers `{...}`, range/subquery brackets `[...]`, label lists of
`by/without/on/ignoring/group_left/group_right (...)`, function names (an identifier followed by `(`),
keywords and
Grafana template variables (`$var`, `${var}`, `[[var]]`). What is left are metric names.
"""

from __future__ import annotations

import re
from functools import cache

DCGM_PREFIX = "DCGM_FI_"
_DCGM_NAME = re.compile(r"\bDCGM_FI_[A-Z0-9_]+\b")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}) | (
    _LABEL_LIST_KEYWORDS
)


def dcgm_metric_names(expr: str) -> list[str]:
    """`DCGM_FI_*` identifiers in order of first use (these are DCGM field names exported as metrics)."""
    seen: dict[str, None] = {}
    for match in _DCGM_NAME.finditer(strip_strings(expr)):
        seen.setdefault(match.group(0))
    return list(seen)


def strip_strings(expr: str) -> str:
    """The expression with quoted strings and comments blanked (label values never name metrics)."""
    out: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`":
            j = i + 1
            while j < len(expr) and expr[j] != ch:
                j += 2 if expr[j] == "\\" and ch != "`" else 1
            out.append(" " * (min(j, len(expr) - 1) - i + 1))
            i = j + 1
            continue
        if ch == "#":
            j = expr.find("\n", i)
            j = len(expr) if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@cache
def metric_names(expr: str) -> tuple[str, ...]:
    """Every metric name the expression selects, in order of first use."""
    text = _GRAFANA_VAR.sub(" 1 ", strip_strings(expr))
    seen: dict[str, None] = {}
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            close = text.find("}", i)
            i = n if close < 0 else close + 1
            continue
        if ch == "[":
            close = text.find("]", i)
            i = n if close < 0 else close + 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            # numbers and durations (5m, 1e3, 0x1F)
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "._"):
                j += 1
            i = j
            continue
        match = _IDENT.match(text, i)
        if match is None:
            i += 1
            continue
        word = match.group(0)
        j = match.end()
        k = j
        while k < n and text[k].isspace():
            k += 1
        following = text[k] if k < n else ""
        if word.lower() in _LABEL_LIST_KEYWORDS and following == "(":
            close = text.find(")", k)
            i = n if close < 0 else close + 1
            continue
        # `sum by (x) (...)` / `sum without (x) (...)`: an aggregation whose grouping precedes its argument
        grouping_next = re.match(r"(by|without)\s*\(", text[k:]) is not None
        if following == "(" or grouping_next or word.lower() in _KEYWORDS:
            i = j  # a function or aggregation name, or an operator keyword
            continue
        seen.setdefault(word)
        i = j
    return tuple(seen)
