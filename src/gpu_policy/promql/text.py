"""PromQL read as text: tokens, metric names, aggregations, label matchers and alert thresholds.

The lexing follows Prometheus' own lexer (prometheus/prometheus promql/parser/lex.go): strings in `"`, `'`
(with backslash escapes) and backticks (raw), `#` comments to the end of the line, identifiers that may hold
`:` (recording-rule names) except inside `[...]`, where `:` separates a subquery's range and step, keywords
(`and`, `by`, `offset`, aggregation operators, ...) matched case-insensitively, numbers (`90`, `0.9`, `1e3`,
`0x1F`, `Inf`, `NaN`) and durations (`5m`, `1h30m`). Grafana template variables (`$var`, `${var}`,
`${var:fmt}`, `[[var]]`) are single VARIABLE tokens, so dashboard queries can be read as written.

Everything here is error tolerant: malformed input never raises, an unclosed bracket closes at the end.

What this module does NOT do (promtool, via gpu_policy.promql.check, is the parser of record):
- it builds no syntax tree and knows no operator precedence beyond what `divisors` needs, no types and no
  function signatures: an identifier followed by `(` is taken as a function call or an aggregation;
- Prometheus 3 UTF-8 quoted names (`{"my.metric"}`, `{"label.name"="x"}`) are not read as names;
- `offset` and `@` modifiers are skipped, never interpreted;
- `comparison_threshold` takes the number literal next to the comparison; constant arithmetic
  (`> 0.9 * 100`) is not evaluated (the 0.9 is returned).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple

TokenKind = Literal[
    "ident", "number", "duration", "string", "variable", "op", "(", ")", "{", "}", "[", "]", ",", "other"
]

DCGM_PREFIX = "DCGM_FI_"
AGGREGATIONS = frozenset(
    {
        "sum", "avg", "max", "min", "count", "quantile", "stddev", "stdvar", "group", "topk", "bottomk",
        "count_values", "limitk", "limit_ratio",
    }
)  # fmt: skip
"""promql/parser/lex.go `key` aggregators (limitk/limit_ratio: Prometheus 3, experimental)."""
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = (
    frozenset({"and", "or", "unless", "atan2", "bool", "offset", "start", "end", "inf", "nan"})
    | LABEL_LIST_KEYWORDS
    | AGGREGATIONS
)
"""Words the lexer never returns as identifiers, so never metric names (lex.go `key`, matched lowercased)."""
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_IDENT_IN_BRACKETS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"(?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![A-Za-z0-9_.])"
    r"|(?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
)
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z_][A-Za-z0-9_]*(?::[^\]]*)?\]\]")
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=", "=~", "!~")
_OPEN_CLOSE = {"(": ")", "{": "}", "[": "]"}
_CLOSERS = frozenset(_OPEN_CLOSE.values())


class Token(NamedTuple):
    # a named tuple, not a frozen dataclass: the lexer makes one per token (tens of thousands for a large set's
    # alerts and queries) and a frozen dataclass's __init__ costs several times a tuple's
    kind: TokenKind
    text: str
    start: int
    """Offset of the token in the expression."""

    @property
    def word(self) -> str:
        """The identifier lowercased, as the lexer compares keywords ("" for other tokens)."""
        return self.text.lower() if self.kind == "ident" else ""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    """`=`, `!=`, `=~` or `!~`."""
    value: str
    """The string literal's content (escapes of `"`/`'` strings resolved)."""


@dataclass(frozen=True)
class Selector:
    metric: str | None
    """The metric name before the braces, or a `__name__="x"` matcher's value; None when neither."""
    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class Aggregation:
    operator: str
    """Lowercased: `sum`, `avg`, `topk`, ..."""
    grouping: Literal["by", "without"] | None
    labels: tuple[str, ...]
    top_level: bool
    """Outside any parentheses, braces or brackets (ignoring parentheses around the whole expression)."""
    whole: bool
    """The aggregation is the whole expression: nothing is applied to its result."""


def tokenize(expr: str) -> tuple[Token, ...]:
    """The tokens of `expr`, comments dropped."""
    return _parsed(expr).tokens


def strip_strings(expr: str) -> str:
    """`expr` with string literals and comments blanked by spaces (offsets and newlines kept)."""
    out = list(expr)
    for start, end in _parsed(expr).blanked:
        for i in range(start, end):
            if out[i] != "\n":
                out[i] = " "
    return "".join(out)


def metric_names(expr: str) -> tuple[str, ...]:
    """Every metric name the expression selects, in order of first use (`{__name__="x"}` included)."""
    return _parsed(expr).metric_names


def dcgm_metric_names(expr: str) -> list[str]:
    """`DCGM_FI_*` metrics the expression reads, in order of first use. Names with `:` are recording rules
    (colons are reserved for them, prometheus docs practices/naming), never exporter metrics."""
    return [m for m in metric_names(expr) if m.startswith(DCGM_PREFIX) and ":" not in m]


def selectors(expr: str) -> tuple[Selector, ...]:
    """Every vector selector: `name`, `name{...}` or `{...}`, in order."""
    return _parsed(expr).selectors


def grouping_labels(expr: str) -> tuple[str, ...]:
    """Labels named in `by/without/on/ignoring/group_left/group_right (...)` lists, in order."""
    return _parsed(expr).grouping_labels


def aggregations(expr: str) -> tuple[Aggregation, ...]:
    """Every aggregation operator applied in the expression, outermost first where nested."""
    return _parsed(expr).aggregations


def outer_aggregation(expr: str) -> Aggregation | None:
    """The first aggregation at the top level: `sum(...)`, `avg by (x) (...)`, the avg of `100 * avg(x)`."""
    return next((a for a in aggregations(expr) if a.top_level), None)


def is_bare_selector(expr: str) -> bool:
    """The whole expression is one instant selector (`name`, `name{...}`, `{...}`): one series per target."""
    parsed = _parsed(expr)
    first, last = parsed.body
    toks = parsed.tokens
    if first >= last:
        return False
    if toks[first].kind == "ident" and toks[first].word not in KEYWORDS:
        nxt = first + 1
        if nxt == last:
            return True
        return toks[nxt].kind == "{" and parsed.close[nxt] + 1 == last
    return toks[first].kind == "{" and parsed.close[first] + 1 == last


_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Comparison:
    written: str
    """The operator as written (`90 < x` keeps `<`)."""
    value: float
    series_op: str
    """The operator read as `<series> <op> <constant>`: `90 < x` is `x > 90`."""


def comparison(expr: str) -> Comparison | None:
    """The constant an alert compares against: the last `<op> [bool] <number>`, or else the first `<number> <op>`
    (then the operator is flipped for `series_op`); None when no comparison has a number literal beside it.
    Comparisons inside label matchers (`{a!="x"}`) are not comparisons."""
    parsed = _parsed(expr)
    toks = parsed.tokens
    right: Comparison | None = None
    left: Comparison | None = None
    for i, tok in enumerate(toks):
        if tok.kind != "op" or tok.text not in COMPARISONS or parsed.brace_depth[i]:
            continue
        j = i + 1
        if j < len(toks) and toks[j].word == "bool":
            j += 1
        value = _signed_number(toks, j)
        if value is not None:
            right = Comparison(tok.text, value, tok.text)
        if left is None and i > 0:
            before = _number_value(toks[i - 1])
            if before is not None:
                sign = -1.0 if i > 1 and toks[i - 2].text == "-" and _is_unary(toks, i - 2) else 1.0
                left = Comparison(tok.text, sign * before, _FLIPPED[tok.text])
    return right or left


def comparison_threshold(expr: str) -> tuple[str, float] | None:
    """(operator as written, constant) of `comparison`."""
    found = comparison(expr)
    return None if found is None else (found.written, found.value)


def divisors(expr: str) -> tuple[tuple[str, ...], ...]:
    """For each `/`, the metric names of its right operand (`/` binds tighter than `+ -`, `^` tighter than
    `/`: the divisor of `a / b + c` is b, of `a / b ^ 2` is `b ^ 2`)."""
    parsed = _parsed(expr)
    found: list[tuple[str, ...]] = []
    for i, tok in enumerate(parsed.tokens):
        if tok.kind == "op" and tok.text == "/":
            end = parsed.operand_end(i + 1)
            found.append(_names_in(parsed, i + 1, end))
    return tuple(found)


# -- implementation ------------------------------------------------------------------------------------
def _lex(expr: str) -> tuple[list[Token], list[tuple[int, int]]]:
    tokens: list[Token] = []
    blanked: list[tuple[int, int]] = []
    brackets = 0
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            end = expr.find("\n", i)
            end = n if end < 0 else end
            blanked.append((i, end))
            i = end
            continue
        if ch in "\"'`":
            j = i + 1
            while j < n and expr[j] != ch:
                j += 2 if expr[j] == "\\" and ch != "`" else 1
            end = min(j + 1, n)
            blanked.append((i, end))
            tokens.append(Token("string", expr[i:end], i))
            i = end
            continue
        if ch in "$[":
            variable = _VARIABLE.match(expr, i)
            if variable:
                tokens.append(Token("variable", variable.group(), i))
                i = variable.end()
                continue
        if "0" <= ch <= "9" or (ch == "." and i + 1 < n and "0" <= expr[i + 1] <= "9"):
            number = _NUMBER.match(expr, i)
            assert number is not None
            kind: TokenKind = "duration" if number.group("duration") else "number"
            tokens.append(Token(kind, number.group(), i))
            i = number.end()
            continue
        ident = (_IDENT_IN_BRACKETS if brackets else _IDENT).match(expr, i)
        if ident:
            tokens.append(Token("ident", ident.group(), i))
            i = ident.end()
            continue
        if expr.startswith(_TWO_CHAR_OPS, i):
            tokens.append(Token("op", expr[i : i + 2], i))
            i += 2
            continue
        if ch in "()[]{},":
            brackets += (ch == "[") - (ch == "]")
            brackets = max(brackets, 0)
            tokens.append(Token(ch, ch, i))  # type: ignore[arg-type]
        elif ch in "+-*/%^<>=@:":
            tokens.append(Token("op", ch, i))
        else:
            tokens.append(Token("other", ch, i))
        i += 1
    return tokens, blanked


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "xuU" and len(code) > 1:
        return chr(int(code[1:], 16))
    if len(code) == 3 and code.isdigit():
        return chr(int(code, 8))
    return _SIMPLE_ESCAPES.get(code, code)


def _unquote(literal: str) -> str:
    """A string literal's value, escapes resolved as Go's strconv.Unquote does (the parser calls it)."""
    body = literal[1:-1] if len(literal) > 1 and literal[-1] == literal[0] else literal[1:]
    return body if literal[0] == "`" or "\\" not in body else _ESCAPE.sub(_unescape, body)


def _number_value(tok: Token) -> float | None:
    if tok.kind == "number":
        return float(int(tok.text, 16)) if tok.text[:2].lower() == "0x" else float(tok.text)
    if tok.kind == "ident" and tok.word in ("inf", "nan"):
        return float(tok.word)
    return None


def _is_unary(toks: tuple[Token, ...], i: int) -> bool:
    """A `+`/`-` at i is a sign when nothing that ends an operand precedes it."""
    return i == 0 or toks[i - 1].kind in ("op", "(", ",", "[") or toks[i - 1].word in KEYWORDS


def _signed_number(toks: tuple[Token, ...], j: int) -> float | None:
    sign = 1.0
    if j < len(toks) and toks[j].kind == "op" and toks[j].text in "+-":
        sign = -1.0 if toks[j].text == "-" else 1.0
        j += 1
    value = _number_value(toks[j]) if j < len(toks) else None
    return None if value is None else sign * value


def _names_in(parsed: _Parsed, start: int, end: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for selector in parsed.selectors_in(start, end):
        if selector.metric:
            seen.setdefault(selector.metric)
    return tuple(seen)


class _Parsed:
    """One expression's tokens with its bracket structure; every query above reads this, built once."""

    def __init__(self, expr: str) -> None:
        tokens, self.blanked = _lex(expr)
        self.tokens = tuple(tokens)
        count = len(self.tokens)
        self.close: list[int] = [count] * count
        """Index of the token closing the bracket opened at i (count when unclosed)."""
        self.depth: list[int] = [0] * count
        self.brace_depth: list[int] = [0] * count
        stack: list[int] = []
        braces = 0  # "{" openers on the stack
        toks = self.tokens
        for i, tok in enumerate(toks):
            kind = tok.kind
            self.depth[i] = len(stack)
            self.brace_depth[i] = braces
            if kind in _OPEN_CLOSE:
                stack.append(i)
                braces += kind == "{"
            elif kind in _CLOSERS:
                # close the nearest matching opener; openers left unclosed inside it stay at `count`
                for k in range(len(stack) - 1, -1, -1):
                    if _OPEN_CLOSE[toks[stack[k]].kind] == kind:
                        self.close[stack[k]] = i
                        braces -= sum(1 for s in stack[k:] if toks[s].kind == "{")
                        del stack[k:]
                        break
                self.depth[i] = len(stack)
        first, last = 0, count
        while first < last and self.tokens[first].kind == "(" and self.close[first] == last - 1:
            first, last = first + 1, last - 1
        self.body = (first, last)
        """The expression without parentheses around all of it."""
        self.selectors = tuple(self.selectors_in(0, count))
        names: dict[str, None] = {}
        for selector in self.selectors:
            if selector.metric:
                names.setdefault(selector.metric)
        self.metric_names = tuple(names)
        self.grouping_labels = tuple(self._grouping_labels())
        self.aggregations = tuple(self._aggregations())

    def _next(self, i: int) -> Token | None:
        return self.tokens[i] if i < len(self.tokens) else None

    def _label_list(self, open_index: int) -> tuple[tuple[str, ...], int]:
        """Identifiers of the `( ... )` at open_index, and the index after it."""
        end = self.close[open_index]
        labels = tuple(t.text for t in self.tokens[open_index + 1 : end] if t.kind in ("ident", "string"))
        return tuple(label.strip("\"'`") for label in labels), end + 1

    def selectors_in(self, start: int, end: int) -> Iterator[Selector]:
        toks = self.tokens
        i, end = start, min(end, len(toks))
        while i < end:
            tok = toks[i]
            nxt = self._next(i + 1)
            if tok.kind == "[":
                i = self.close[i] + 1
            elif tok.kind == "{":
                matchers = self._matchers(i)
                named = next((m.value for m in matchers if m.name == "__name__" and m.op == "="), None)
                yield Selector(named, matchers)
                i = self.close[i] + 1
            elif tok.kind == "ident":
                if tok.word in LABEL_LIST_KEYWORDS and nxt is not None and nxt.kind == "(":
                    i = self.close[i + 1] + 1
                elif tok.word in KEYWORDS or (nxt is not None and nxt.kind == "("):
                    i += 1  # an operator keyword, or a function / aggregation name
                elif nxt is not None and nxt.kind == "{":
                    yield Selector(tok.text, self._matchers(i + 1))
                    i = self.close[i + 1] + 1
                else:
                    yield Selector(tok.text, ())
                    i += 1
            else:
                i += 1

    def _matchers(self, open_index: int) -> tuple[Matcher, ...]:
        toks = self.tokens
        found: list[Matcher] = []
        i, end = open_index + 1, self.close[open_index]
        while i + 2 < end:
            name, op, value = toks[i], toks[i + 1], toks[i + 2]
            if name.kind == "ident" and op.kind == "op" and op.text in MATCH_OPS and value.kind == "string":
                found.append(Matcher(name.text, op.text, _unquote(value.text)))
                i += 3
            else:
                i += 1
        return tuple(found)

    def _grouping_labels(self) -> Iterator[str]:
        toks = self.tokens
        for i in range(len(toks) - 1):
            tok = toks[i]
            if tok.kind == "ident" and toks[i + 1].kind == "(" and tok.text.lower() in LABEL_LIST_KEYWORDS:
                yield from self._label_list(i + 1)[0]

    def _aggregation_at(self, i: int) -> tuple[Aggregation, int] | None:
        """The aggregation whose operator is token i, and the index after it; None when i is not one."""
        tok = self.tokens[i]
        if tok.word not in AGGREGATIONS:
            return None
        j = i + 1
        grouping: Literal["by", "without"] | None = None
        labels: tuple[str, ...] = ()
        nxt = self._next(j)
        if nxt is not None and nxt.word in ("by", "without") and (after := self._next(j + 1)) is not None:
            if after.kind != "(":
                return None
            grouping = "by" if nxt.word == "by" else "without"
            labels, j = self._label_list(j + 1)
        body = self._next(j)
        if body is None or body.kind != "(":
            return None
        j = self.close[j] + 1
        nxt = self._next(j)
        if grouping is None and nxt is not None and nxt.word in ("by", "without"):
            after = self._next(j + 1)
            if after is not None and after.kind == "(":
                grouping = "by" if nxt.word == "by" else "without"
                labels, j = self._label_list(j + 1)
        first, last = self.body
        top = self.depth[i] == first  # each parenthesis around the whole expression adds one level
        whole = i == first and min(j, len(self.tokens)) >= last
        return Aggregation(tok.word, grouping, labels, top, whole), j

    def _aggregations(self) -> Iterator[Aggregation]:
        for i in range(len(self.tokens)):
            if self.brace_depth[i]:
                continue
            found = self._aggregation_at(i)
            if found is not None:
                yield found[0]

    def operand_end(self, i: int) -> int:
        """Index after the operand of a binary operator starting at token i (modifiers, unary signs, `^`)."""
        toks = self.tokens
        count = len(toks)
        while i < count and toks[i].word in LABEL_LIST_KEYWORDS:
            i += 1
            if i < count and toks[i].kind == "(":
                i = self.close[i] + 1
        while i < count and toks[i].kind == "op" and toks[i].text in "+-":
            i += 1
        i = min(self._primary_end(i), count)
        if i < count and toks[i].kind == "op" and toks[i].text == "^":
            return self.operand_end(i + 1)
        return i

    def _primary_end(self, i: int) -> int:
        toks = self.tokens
        count = len(toks)
        if i >= count:
            return count
        tok = toks[i]
        aggregation = self._aggregation_at(i) if tok.kind == "ident" else None
        if aggregation is not None:
            i = aggregation[1]
        elif tok.kind in ("(", "{"):
            i = self.close[i] + 1
        elif tok.kind == "ident" and i + 1 < count and toks[i + 1].kind in ("(", "{"):
            i = self.close[i + 1] + 1  # a function call, or a selector with matchers
        else:
            i += 1
        while i < count:  # postfix: range / subquery, offset, @
            tok = toks[i]
            if tok.kind == "[":
                i = self.close[i] + 1
            elif tok.word == "offset":
                i += 1
                if i < count and toks[i].text == "-":
                    i += 1
                i += 1
            elif tok.kind == "op" and tok.text == "@":
                i += 1
                if i + 1 < count and toks[i].kind == "ident" and toks[i + 1].kind == "(":
                    i = self.close[i + 1] + 1
                else:
                    i += 1
            else:
                break
        return i


@lru_cache(maxsize=1 << 17)
def _parsed(expr: str) -> _Parsed:
    return _Parsed(expr)
