"""CRD validation rules (`x-kubernetes-validations`): compiled once, evaluated at their schema node.

Evaluation uses the `cel` module (PyPI common-expression-language, a binding of cel-rust). cel-rust implements
the CEL core (macros `has`/`all`/`exists`/`exists_one`/`map`/`filter`, `size`, `matches`, `startsWith`,
`endsWith`, `contains`, conversions); the Kubernetes CEL libraries
(https://kubernetes.io/docs/reference/using-api/cel/, k8s.io/apiserver pkg/cel/library) are supplied here as
Python functions, so `x.find(re)` etc. work.

Outcomes follow the API server (k8s.io/apiextensions-apiserver pkg/apiserver/schema/cel/validation.go):
- a rule that evaluates to false -> its `message` (or `messageExpression`, or "failed rule: <rule>"), at the
  node's path plus `fieldPath`, with the `reason`;
- a rule whose evaluation errors (no such key, int("x"), ...) -> the API server rejects the object with that
  error, so it is reported as a failure too;
- a rule using a function this implementation does not provide, or syntax cel-rust cannot parse -> NOT
  EVALUATED (its own issue kind), never passed;
- a transition rule (uses `oldSelf`) -> skipped with a note: on create there is no old object, and the API
  server does not evaluate transition rules then either.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gpu_policy.schemas.formats import GO_DURATION_RE, go_regex, is_quantity


@contextlib.contextmanager
def _without_the_cel_command_line() -> Iterator[None]:
    """`import cel` without `cel.cli`: the package's __init__ imports its command-line module (typer, rich,
    prompt_toolkit), which the library never uses and which cost 0.17 s of CPU, an eighth of a 1k-object check.
    An empty module stands in for `cel.cli` during the import and is taken out after, so a later
    `import cel.cli` still loads the real one; the evaluator (the compiled `cel.cel`) and `cel.stdlib` are the
    package's own."""
    if "cel" in sys.modules:
        yield
        return
    placeholder = types.ModuleType("cel.cli")
    sys.modules["cel.cli"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("cel.cli") is placeholder:
            del sys.modules["cel.cli"]
        package = sys.modules.get("cel")
        if package is not None and getattr(package, "cli", None) is placeholder:
            delattr(package, "cli")


def _import_cel() -> tuple[types.ModuleType, types.ModuleType]:
    """`cel` and `cel.stdlib`, without the command line when the package allows it; a release whose __init__ takes
    names from `cel.cli` gets the plain import, at its full cost."""
    import importlib

    try:
        with _without_the_cel_command_line():
            return importlib.import_module("cel"), importlib.import_module("cel.stdlib")
    except ImportError:
        for name in [n for n in sys.modules if n == "cel" or n.startswith("cel.")]:
            del sys.modules[name]
        return importlib.import_module("cel"), importlib.import_module("cel.stdlib")


cel, stdlib = _import_cel()

# -- Kubernetes CEL library functions ------------------------------------------------------------------------
_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regex(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = go_regex(pattern)
        _REGEX_CACHE[pattern] = compiled
    return compiled


def k8s_find(text: str, pattern: str) -> str:
    """regex library: the first match of `pattern` in `text`, or "" when there is none."""
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def k8s_find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    """regex library: all matches (at most `limit` when it is not negative)."""
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def k8s_index_of(receiver: Any, item: Any, offset: int = 0) -> int:
    """strings library `indexOf(substr[, offset])` and lists library `indexOf(elem)` share a name."""
    if isinstance(receiver, list):
        for index, value in enumerate(receiver):
            if _cel_equal(value, item):
                return index
        return -1
    return stdlib.index_of(receiver, item, offset)


def k8s_last_index_of(receiver: Any, item: Any, offset: int | None = None) -> int:
    if isinstance(receiver, list):
        for index in range(len(receiver) - 1, -1, -1):
            if _cel_equal(receiver[index], item):
                return index
        return -1
    if offset is None:
        return stdlib.last_index_of(receiver, item)
    return stdlib.last_index_of(receiver, item, offset)


def _cel_equal(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def k8s_is_sorted(items: list[Any]) -> bool:
    """lists library: elements are in ascending order."""
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def k8s_is_url(text: str) -> bool:
    """url library isURL: an absolute URI or an absolute path (Go url.ParseRequestURI succeeds)."""
    if not text or any(c.isspace() for c in text):
        return False
    if text.startswith("/"):
        return True
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) is not None


def k8s_is_ip(text: str) -> bool:
    """ip library isIP: an IPv4 or IPv6 address (no zone, no leading zeros in IPv4)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def k8s_is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def k8s_is_quantity(text: str) -> bool:
    """quantity library isQuantity: the string parses as a resource.Quantity."""
    return is_quantity(text)


def _format_one(verb: str, value: Any) -> str:
    if verb == "s":
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "null"
        return str(value)
    if verb == "d":
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"%d needs an integer, got {type(value).__name__}")
        return str(value)
    if verb == "f":
        return f"{float(value):.6f}"
    raise ValueError(f"unsupported format verb %{verb}")


def k8s_format(template: str, args: list[Any]) -> str:
    """strings library `format` for the verbs %s, %d, %f and %% (other verbs -> error, never a guess)."""
    out: list[str] = []
    index = 0
    pos = 0
    while pos < len(template):
        char = template[pos]
        if char == "%" and pos + 1 < len(template):
            verb = template[pos + 1]
            pos += 2
            if verb == "%":
                out.append("%")
                continue
            if index >= len(args):
                raise IndexError("format: not enough arguments")
            out.append(_format_one(verb, args[index]))
            index += 1
            continue
        out.append(char)
        pos += 1
    return "".join(out)


def _list_or_args(args: tuple[Any, ...]) -> list[Any]:
    if len(args) == 1 and isinstance(args[0], list):
        return args[0]
    return list(args)


def k8s_sum(*args: Any) -> Any:
    items = _list_or_args(args)
    return sum(items) if items else 0


def k8s_min(*args: Any) -> Any:
    items = _list_or_args(args)
    if not items:
        raise ValueError("min called on an empty list")
    return min(items)


def k8s_max(*args: Any) -> Any:
    items = _list_or_args(args)
    if not items:
        raise ValueError("max called on an empty list")
    return max(items)


KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    # regex library
    "find": k8s_find,
    "findAll": k8s_find_all,
    # strings extension (cel-go ext.Strings, as Kubernetes enables it)
    "charAt": stdlib.char_at,
    "indexOf": k8s_index_of,
    "lastIndexOf": k8s_last_index_of,
    "lowerAscii": stdlib.lower_ascii,
    "upperAscii": stdlib.upper_ascii,
    "replace": stdlib.replace,
    "split": stdlib.split,
    "substring": stdlib.substring,
    "trim": stdlib.trim,
    "join": stdlib.join,
    "reverse": stdlib.reverse,
    "strings.quote": stdlib.quote,
    "format": k8s_format,
    # lists library
    "isSorted": k8s_is_sorted,
    "sum": k8s_sum,
    "min": k8s_min,
    "max": k8s_max,
    # sets extension
    "sets.contains": stdlib.sets_contains,
    "sets.equivalent": stdlib.sets_equivalent,
    "sets.intersects": stdlib.sets_intersects,
    # url / ip / quantity libraries: the predicates (the object-returning constructors are not provided)
    "isURL": k8s_is_url,
    "isIP": k8s_is_ip,
    "isCIDR": k8s_is_cidr,
    "isQuantity": k8s_is_quantity,
    # math extension
    **{name: func for name, func in stdlib.EXTENSIONS["math"].items()},
    # encoders extension
    "base64.encode": stdlib.base64_encode,
    "base64.decode": stdlib.base64_decode,
}
"""Python implementations of the Kubernetes CEL library functions cel-rust lacks."""

NATIVE_FUNCTIONS = frozenset(
    {
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "size",
        "matches",
        "startsWith",
        "endsWith",
        "contains",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "timestamp",
        "duration",
        "dyn",
        "type",
    }
)
"""What cel-rust provides natively (macros, core functions and conversions) that the pinned CRDs rely on."""

_UNDEFINED = re.compile(r"Undefined variable or function: '([^']+)'")
_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)


def escape_property(name: str) -> str | None:
    """How an object property is named inside CEL (None: not accessible).

    k8s.io/apiserver pkg/cel/escaping.go."""
    if name in _RESERVED:
        return f"__{name}__"
    if not re.match(r"^[A-Za-z_.\-/][A-Za-z0-9_.\-/]*$", name):
        return None
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


def needs_escaping(name: str) -> bool:
    return escape_property(name) != name


# -- rules ---------------------------------------------------------------------------------------------------
PASS, FAIL, ERROR, NOT_EVALUATED, TRANSITION = "pass", "fail", "error", "not-evaluated", "transition"


@dataclass(frozen=True)
class RuleOutcome:
    status: str
    """PASS, FAIL (false, or an evaluation error the API server reports), NOT_EVALUATED or TRANSITION."""
    field_path: tuple[str | int, ...]
    message: str


@dataclass
class _Compiled:
    program: Any | None
    error: str
    variables: frozenset[str]
    functions: dict[str, Callable[..., Any]]
    """Only the library functions the expression calls: each one passed costs a conversion per evaluation."""


_PROGRAMS: dict[str, _Compiled] = {}


def compile_expression(expression: str) -> _Compiled:
    """Compile once per distinct expression text for the whole process."""
    found = _PROGRAMS.get(expression)
    if found is None:
        try:
            program = cel.compile(expression)
            called = set(program.functions())
            # cel-rust lists a namespaced call (`sets.contains`) by its last segment only.
            functions = {
                name: func
                for name, func in KUBERNETES_FUNCTIONS.items()
                if name in called or ("." in name and name.rsplit(".", 1)[1] in called and name in expression)
            }
            found = _Compiled(program, "", frozenset(program.variables()), functions)
        except (ValueError, RuntimeError, TypeError) as exc:
            uses_old = re.search(r"\boldSelf\b", expression) is not None
            found = _Compiled(None, str(exc).splitlines()[0], frozenset({"oldSelf"} if uses_old else ()), {})
        _PROGRAMS[expression] = found
    return found


def parse_field_path(text: str) -> tuple[str | int, ...]:
    """`.spec.foo['bar.baz'][0]` -> ("spec", "foo", "bar.baz", 0); the fieldPath of a validation rule."""
    parts: list[str | int] = []
    pos = 0
    token = re.compile(r"\.([A-Za-z0-9_\-/]+)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")
    while pos < len(text):
        match = token.match(text, pos)
        if match is None:
            raise ValueError(f"invalid fieldPath {text!r} at position {pos}")
        if match.group(1) is not None:
            parts.append(match.group(1))
        elif match.group(2) is not None:
            parts.append(match.group(2).replace("\\'", "'"))
        else:
            parts.append(int(match.group(3)))
        pos = match.end()
    return tuple(parts)


_REASON_PREFIX = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


class CelRule:
    """One `x-kubernetes-validations` entry of a CRD schema node."""

    __slots__ = (
        "field_path",
        "memo",
        "message",
        "message_expression",
        "optional_old_self",
        "reason",
        "rule",
        "stats",
    )

    def __init__(self, spec: dict[str, Any]) -> None:
        self.rule: str = str(spec.get("rule", ""))
        self.message: str = str(spec.get("message") or "")
        self.message_expression: str = str(spec.get("messageExpression") or "")
        self.reason: str = str(spec.get("reason") or "FieldValueInvalid")
        self.optional_old_self = bool(spec.get("optionalOldSelf", False))
        try:
            self.field_path = parse_field_path(str(spec.get("fieldPath") or ""))
        except ValueError:
            self.field_path = ()
        self.stats: list[float] = [0, 0.0]
        """[evaluations, seconds]: the measured evaluation cost of this rule."""
        self.memo: dict[Any, RuleOutcome] = {}
        """Outcomes by value for flat values: a rule sees only `self`, so the same key in a thousand NodePools
        is evaluated once."""
        compile_expression(self.rule)
        if self.message_expression:
            compile_expression(self.message_expression)

    @property
    def is_transition(self) -> bool:
        return "oldSelf" in compile_expression(self.rule).variables

    def describe(self) -> str:
        return self.message or f"failed rule: {self.rule}"

    def evaluate(self, value: Any) -> RuleOutcome:
        key = _memo_key(value)
        if key is not None:
            found = self.memo.get(key)
            if found is None:
                found = self._evaluate(value)
                if len(self.memo) < _MEMO_LIMIT:
                    self.memo[key] = found
            return found
        return self._evaluate(value)

    def _evaluate(self, value: Any) -> RuleOutcome:
        compiled = compile_expression(self.rule)
        if "oldSelf" in compiled.variables:
            return RuleOutcome(
                TRANSITION,
                (),
                f"transition rule (uses oldSelf) not evaluated on create: "
                f"{self.describe()} (rule: {self.rule})",
            )
        if compiled.program is None:
            return RuleOutcome(
                NOT_EVALUATED,
                (),
                f"rule not evaluated: cel-rust cannot compile it "
                f"({compiled.error}): {self.describe()} (rule: {self.rule})",
            )
        activation: dict[str, Any] = {**compiled.functions, "self": value}
        started = time.perf_counter()
        try:
            result = compiled.program.execute(activation)
        except RuntimeError as exc:
            text = str(exc)
            missing = _UNDEFINED.search(text)
            if missing and missing.group(1) not in ("self",):
                return RuleOutcome(
                    NOT_EVALUATED,
                    (),
                    f"rule not evaluated: function or variable "
                    f"'{missing.group(1)}' is not implemented here: "
                    f"{self.describe()} (rule: {self.rule})",
                )
            return self._failed(value, f"rule evaluation error: {_first_line(text)}")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return self._failed(value, f"rule evaluation error: {_describe_exception(exc)}")
        finally:
            self.stats[0] += 1
            self.stats[1] += time.perf_counter() - started
        if result is True:
            return RuleOutcome(PASS, (), "")
        if result is False:
            return self._failed(value, "")
        return RuleOutcome(
            NOT_EVALUATED,
            (),
            f"rule not evaluated: it returned {type(result).__name__}, not a "
            f"bool: {self.describe()} (rule: {self.rule})",
        )

    def _failed(self, value: Any, error: str) -> RuleOutcome:
        prefix = _REASON_PREFIX.get(self.reason, self.reason)
        text = self._message_for(value)
        if error:
            text = f"{text}; {error}"
        return RuleOutcome(FAIL, self.field_path, f"{prefix}: {text} (rule: {self.rule})")

    def _message_for(self, value: Any) -> str:
        if self.message_expression:
            compiled = compile_expression(self.message_expression)
            if compiled.program is not None:
                activation = {**compiled.functions, "self": value}
                try:
                    produced = compiled.program.execute(activation)
                except (RuntimeError, KeyError, IndexError, TypeError, ValueError):
                    produced = None
                # The API server falls back to `message` when messageExpression errors or yields "".
                if isinstance(produced, str) and produced.strip():
                    return produced
        return self.describe()


_MEMO_LIMIT = 4096
_SCALARS = (str, int, float, bool)


def _memo_key(value: Any) -> Any:
    """A hashable key that tells values apart exactly as CEL would (type included), for flat values only."""
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if isinstance(value, dict) and len(value) <= 64 and all(isinstance(v, _SCALARS) for v in value.values()):
        return ("map", tuple((k, type(v), v) for k, v in value.items()))
    if isinstance(value, list) and len(value) <= 64 and all(isinstance(v, _SCALARS) for v in value):
        return ("list", tuple((type(v), v) for v in value))
    return None


def _first_line(text: str) -> str:
    """The cause only: cel-rust appends advice ("Check function arguments ...") meant for rule authors."""
    line = text.splitlines()[0] if text else text
    for advice in (" Check ", " CEL does not coerce", " Convert explicitly"):
        cut = line.find(advice)
        if cut > 0:
            line = line[:cut]
    return line.rstrip()


def _describe_exception(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0] if exc.args else ''}"
    return _first_line(str(exc)) or type(exc).__name__


# -- value conversion for CEL --------------------------------------------------------------------------------
def parse_go_duration(text: str) -> timedelta:
    if not GO_DURATION_RE.match(text):
        raise ValueError(f"invalid duration {text!r}")
    sign = -1 if text.startswith("-") else 1
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text):
        total += float(number) * units[unit]
    return timedelta(seconds=sign * total)


def parse_timestamp(text: str) -> datetime:
    cleaned = text.replace("z", "Z").replace("Z", "+00:00")
    return datetime.fromisoformat(cleaned)
