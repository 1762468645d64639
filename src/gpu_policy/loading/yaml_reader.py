"""Read YAML the way the Kubernetes API machinery does, keeping the line of every field.

kubectl turns a YAML manifest into JSON with sigs.k8s.io/yaml `YAMLToJSON`, which decodes with its go-yaml v2
fork (kubernetes-sigs/yaml goyaml.v2/resolve.go, yaml.go) and then `json.Marshal`s the result. PyYAML's
resolver follows YAML 1.1 too but differs in places, so plain scalars are resolved here as go-yaml v2 does:

- booleans: `y Y yes Yes YES true True TRUE on On ON` and the `n/no/false/off` family (PyYAML has no y/n);
- null: empty, `~`, `null`, `Null`, `NULL`;
- integers: `strconv.ParseInt(s, 0, 64)` after removing `_`: `0755` is octal (493), `0x1F`, `0o17`, `0b101`;
  no base-60 (`8080:80` stays a string; PyYAML makes it 484880);
- floats: `^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (`1e3` is a float; PyYAML: a string),
  `.5`, `.inf`/`.nan`; a float that overflows (`1e400`) stays a string as in Go;
- unquoted timestamps stay strings (go-yaml v2 keeps them as text when decoding into interface{});
- `=` is a plain string (PyYAML tags it `!!value` and cannot construct it).

Then the JSON step: `json.Marshal` writes an integral float64 as an integer (`replicas: 1.0` and `1e3` reach
the API server as `1` and `1000`), so such floats become ints here; `.inf`/`.nan` cannot be marshalled and are
errors; non-string keys become text (`true`, `1`), a null key is an error ("unsupported map key"). Duplicate
keys are errors (YAMLToJSONStrict / server-side strict field validation), only the standard tags exist, alias
bombs and huge documents are refused. Merge keys (`<<`) merge; the mapping's explicit keys take precedence.
JSON streams (first character `{` or `[`) keep their floats (kubectl decodes them with encoding/json).

Integers are 64-bit as in Go: `strconv.ParseInt`, then `ParseUint`; a longer number becomes a float when
ParseFloat can hold it and stays a string when it cannot (go-yaml v2 resolve.go), so no value is ever a Python
integer longer than 20 digits. Values are counted while libyaml builds each document (the `resolve` hook is
called once per node written) and after alias expansion, against `Limits` (loading/limits.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.loading.limits import DEFAULT_LIMITS, Limits

try:  # libyaml's parser is several times faster; the pure-Python one behaves the same.
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_SMALL_DOCUMENT_NODES = 10_000
"""Below this many built nodes no alias check is needed, so ordinary documents are walked only once."""

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BINARY = "tag:yaml.org,2002:binary"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN = "tag:gpu-policy,2024:plain"
"""Marks an untagged plain scalar: resolved by `resolve_plain`, go-yaml's rules, not PyYAML's."""

# -- go-yaml v2 scalar resolution -------------------------------------------------------------------------
_SPECIAL: dict[str, Any] = {}
for _words, _value in (
    (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    (("", "~", "null", "Null", "NULL"), None),
    ((".nan", ".NaN", ".NAN"), float("nan")),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    (("-.inf", "-.Inf", "-.INF"), float("-inf")),
):
    for _word in _words:
        _SPECIAL[_word] = _value

_HINTED = frozenset("+-0123456789yYnNtTfFoO~.")
"""go-yaml's resolveTable: a scalar starting with any other character is a string without further checks."""
_KEY_SLOW_PATH = _HINTED | {"<"}
"""Plain keys starting with these may be bools, nulls, numbers or the merge key `<<`."""
_NUMERIC_START = frozenset("+-0123456789")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?\Z")  # what strconv.ParseFloat takes after a '.'
_DIGITS = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}


_MAX_DIGITS = {2: 64, 8: 22, 10: 20, 16: 16}
"""Digits (leading zeros aside) of the largest uint64 in each base: longer numbers cannot fit."""


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), then strconv.ParseUint(text, 0, 64) (no sign allowed), as go-yaml v2 does.

    None when neither accepts it: go-yaml then tries ParseFloat, and keeps the text when that fails too.
    """
    body = text
    sign = 1
    signed = body[:1] in ("+", "-")
    if signed:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    base = 10
    if len(body) > 1 and body[0] == "0":
        prefix = body[1]
        if prefix in "xX":
            base, body = 16, body[2:]
        elif prefix in "oO":
            base, body = 8, body[2:]
        elif prefix in "bB":
            base, body = 2, body[2:]
        else:
            base, body = 8, body[1:]
    if not body or not _DIGITS[base].issuperset(body) or len(body.lstrip("0")) > _MAX_DIGITS[base]:
        return None
    value = sign * int(body, base)
    if -(2**63) <= value <= 2**63 - 1 or (not signed and value <= 2**64 - 1):
        return value
    return None


def resolve_plain(text: str) -> Any:
    """The value go-yaml v2 gives an untagged plain scalar (before the JSON step)."""
    if not text:
        return None
    first = text[0]
    if first not in _HINTED:
        return text
    special = _SPECIAL.get(text, _SPECIAL)
    if special is not _SPECIAL:
        return special
    if first == ".":
        return float(text) if _DOT_FLOAT.match(text) else text
    if first in _NUMERIC_START:
        plain = text.replace("_", "")
        if not plain:
            return text
        as_int = _go_parse_int(plain)
        if as_int is not None:
            return as_int
        if _GO_FLOAT.match(plain):
            value = float(plain)
            return text if value in (float("inf"), float("-inf")) else value  # ParseFloat range error
    return text


def _json_number(value: float, keep_floats: bool) -> float | int:
    """json.Marshal writes an integral float64 below 1e21 without a fraction: the API server reads an int."""
    if not keep_floats and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def _shown(text: str, width: int = 40) -> str:
    """A scalar quoted for a message, cut short when it is long (a 5,000-digit number stays readable)."""
    if len(text) <= width:
        return repr(text)
    return f"{text[:width]!r}... ({len(text)} characters)"


class YamlError(Exception):
    """A document that cannot be decoded; `line` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class RawDocument:
    value: Any
    line: int
    end_line: int
    positions: dict[FieldPath, int]


class _TooManyNodes(Exception):
    """Raised from inside libyaml's composer: the document is abandoned before its tree is complete."""


class _Loader(_BaseLoader):
    """libyaml's parser and composer; plain scalars are left untagged for `resolve_plain`."""

    first_parent: Any = None
    last_parent: Any = None
    """The first and the latest mapping or sequence opened in the current document (their lines are read only
    when a limit stops the document: `first_parent_line`, `last_parent_line`)."""

    # The path-based resolvers PyYAML supports are never registered here; libyaml's composer calls this with the
    # node being filled before each of its values: where the document is when a limit stops it.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        if current_node is not None:
            self.last_parent = current_node
            if self.first_parent is None:
                self.first_parent = current_node
        return None

    @property
    def first_parent_line(self) -> int:
        """0-based; -1 when no mapping or sequence was opened."""
        return -1 if self.first_parent is None else int(self.first_parent.start_mark.line)

    @property
    def last_parent_line(self) -> int:
        return -1 if self.last_parent is None else int(self.last_parent.start_mark.line)

    def ascend_resolver(self) -> None:
        return None

    nodes = 0
    """Values composed so far in this stream: libyaml calls `resolve` once for every node it builds."""
    node_limit = DEFAULT_LIMITS.max_nodes_per_document

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise _TooManyNodes
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _MAP if kind is yaml.MappingNode else _SEQ


_SCALAR = yaml.ScalarNode


def _node_line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    """Node tree -> plain Python values, recording the line of every key and sequence item."""

    def __init__(self, root: yaml.Node, line_offset: int, keep_floats: bool, limits: Limits) -> None:
        self.positions: dict[FieldPath, int] = {}
        self.root = root
        self.base = line_offset + 1
        self.keep_floats = keep_floats
        self.limits = limits
        self.count = 0
        self.limit = min(_SMALL_DOCUMENT_NODES, limits.max_nodes_per_document)
        self.checked = False

    def _over_limit(self, node: yaml.Node) -> None:
        # The parser already refused documents with more values written than the limit: past it, the values
        # come from aliases (and merge keys) expanding the same anchored values again.
        if not self.checked:
            self.checked = True
            written = _count_written(self.root)
            allowed = max(_SMALL_DOCUMENT_NODES, written * self.limits.max_alias_expansion_ratio)
            self.limit = min(self.limits.max_nodes_per_document, allowed)
            if self.count <= self.limit:
                return
        raise YamlError(
            f"document expands to more than {self.limit} values through aliases (a YAML bomb?); refused",
            _node_line(node) + self.base - 1,
        )

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > self.limit:
            self._over_limit(node)
        cls = node.__class__
        if cls is yaml.ScalarNode:
            return self.scalar(node)  # type: ignore[arg-type]
        if cls is yaml.MappingNode:
            if node.tag != _MAP:
                raise self.unsafe_tag(node)
            return self._mapping(node, path)  # type: ignore[arg-type]
        if cls is yaml.SequenceNode:
            if node.tag != _SEQ:
                raise self.unsafe_tag(node)
            out: list[Any] = []
            positions = self.positions
            base = self.base
            build = self.build
            for i, item in enumerate(node.value):
                item_path = (*path, i)
                positions[item_path] = item.start_mark.line + base
                if item.__class__ is _SCALAR and self.count < self.limit:
                    # the common leaf inline (same result as `build`): a string, or a plain word that cannot be
                    # a bool, null or number
                    self.count += 1
                    tag = item.tag
                    text = item.value
                    if tag == _STR or (tag == _PLAIN and text and text[0] not in _HINTED):
                        out.append(text)
                    else:
                        out.append(self.scalar(item))
                    continue
                out.append(build(item, item_path))
            return out
        raise YamlError(f"unsupported YAML node {cls.__name__}", _node_line(node) + self.base - 1)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _PLAIN:
            value = resolve_plain(node.value)
        elif tag in (_BOOL, _INT, _FLOAT, _NULL):
            value = self._explicit(node)
        elif tag == _TIMESTAMP:
            return node.value  # go-yaml v2 keeps timestamps as text when decoding into interface{}
        elif tag == _BINARY:
            return self._binary(node)
        else:
            raise self.unsafe_tag(node)
        if value.__class__ is float:
            if value != value or value in (float("inf"), float("-inf")):
                raise YamlError(
                    f"{_shown(node.value)} is not a JSON number: Kubernetes converts YAML to JSON and rejects it "
                    "(json: unsupported value); quote it if a string is meant",
                    _node_line(node) + self.base - 1,
                )
            return _json_number(value, self.keep_floats)
        return value

    def _explicit(self, node: yaml.ScalarNode) -> Any:
        """`!!int "12"`: go-yaml resolves the text and insists the result has the tag's type."""
        value = resolve_plain(node.value)
        tag = node.tag
        if tag == _FLOAT and value.__class__ is int:
            return float(value)
        wanted = {_BOOL: bool, _INT: int, _FLOAT: float, _NULL: type(None)}[tag]
        if value.__class__ is not wanted:
            short = "!!" + tag.rpartition(":")[2]
            raise YamlError(f"cannot decode {_shown(node.value)} as a {short}", _node_line(node) + self.base - 1)
        return value

    def _binary(self, node: yaml.ScalarNode) -> str:
        # go-yaml decodes !!binary to the raw bytes, which json.Marshal then writes as a string.
        try:
            raw = base64.b64decode("".join(node.value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise YamlError(f"!!binary value is not base64: {exc}", _node_line(node) + self.base - 1) from exc
        return raw.decode("utf-8", errors="replace")

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[tuple[str, Any, int]] | None = None
        positions = self.positions
        base = self.base
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode:
                raise YamlError("mapping keys must be scalars (JSON object keys are strings)",
                                key_node.start_mark.line + base)
            tag = key_node.tag
            raw_key = key_node.value
            if tag == _STR or (tag == _PLAIN and raw_key and raw_key[0] not in _KEY_SLOW_PATH):
                key: Any = raw_key  # the common case: a plain word that cannot be a bool, null or number
            elif (tag == _PLAIN and raw_key == "<<") or tag == _MERGE:
                if merged is None:
                    merged = []
                for source in _merge_sources(value_node, base):
                    sub = self.build(source, path)
                    merged.extend((k, v, source.start_mark.line + base) for k, v in sub.items())
                continue
            else:
                key = _key_text(self.scalar(key_node), key_node, base)
            if key in out:
                raise YamlError(f'mapping key "{key}" already defined', key_node.start_mark.line + base)
            key_path = (*path, key)
            positions[key_path] = key_node.start_mark.line + base
            if value_node.__class__ is _SCALAR and self.count < self.limit:
                self.count += 1  # the common leaf inline, as in `build`
                tag = value_node.tag
                text = value_node.value
                if tag == _STR or (tag == _PLAIN and text and text[0] not in _HINTED):
                    out[key] = text
                else:
                    out[key] = self.scalar(value_node)
                continue
            out[key] = self.build(value_node, key_path)
        if merged:
            for key, value, line in merged:  # explicit keys win over merged ones (YAML merge-key spec)
                if key not in out:
                    out[key] = value
                    positions.setdefault((*path, key), line)
        return out

    def unsafe_tag(self, node: yaml.Node) -> YamlError:
        return YamlError(
            f"tag {node.tag!r} is not allowed: Kubernetes manifests use only the standard YAML tags",
            _node_line(node) + self.base - 1,
        )


def _merge_sources(node: yaml.Node, base: int) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [node]
    if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in node.value):
        return list(node.value)
    raise YamlError("'<<' merge key needs a mapping or a list of mappings", node.start_mark.line + base)


def _key_text(key: Any, node: yaml.ScalarNode, base: int) -> str:
    """JSON object keys are strings; sigs.k8s.io/yaml converts bool and number keys to text, refuses null."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        raise YamlError("a mapping key is null: JSON has no null keys (sigs.k8s.io/yaml: unsupported key)",
                        node.start_mark.line + base)
    if isinstance(key, float):
        return repr(key)  # Go prints FormatFloat(k, 'g', -1, 32); only exotic keys differ
    return str(key)


def _count_written(root: yaml.Node) -> int:
    """Nodes as written (each anchored node once), iteratively so deep documents cannot overflow the stack."""
    seen: set[int] = set()
    stack = [root]
    count = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        count += 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return count


_DOCUMENT_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped[:1] in ("{", "[")


def _syntax_error(exc: yaml.YAMLError, offset: int) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 if mark is not None else 1) + offset
        problem = exc.problem or str(exc)
        context = ""
        if exc.context:
            started = exc.context_mark
            at = ""
            if started is not None and started is not mark:
                at = f" at line {started.line + 1 + offset}"
            context = f" ({exc.context}{at})"
        return YamlError(f"YAML syntax error: {problem}{context}", line)
    return YamlError(f"YAML error: {exc}", offset + 1)


def read_documents(text: str, limits: Limits = DEFAULT_LIMITS) -> Iterator[RawDocument | YamlError]:
    """Yield every document of a YAML stream, and a YamlError for each one that cannot be decoded.

    After a syntax error, reading resumes at the next `---` line, so one broken document does not hide the
    documents after it (each is still checked; the broken one is reported). A document with more values than
    the limit is abandoned while it is parsed, reported, and reading resumes after it; past the file's limit
    the rest of the file is not read.
    """
    if len(text) > limits.max_file_bytes:
        yield YamlError(f"file is larger than {limits.max_file_bytes // (1024 * 1024)} MiB; refused", 1)
        return
    keep_floats = _looks_like_json(text)
    if keep_floats and "\t" in text:
        # JSON allows tab indentation, YAML does not; JSON strings cannot hold a raw tab: no value changes.
        text = text.replace("\t", " ")
    offset = 0
    used = [0, 0]  # values and documents read so far in this file
    while True:
        error_line = yield from _read_from(text, offset, keep_floats, limits, used)
        if error_line is None:
            return
        resume = _next_document_start(text, error_line)
        if resume is None:
            return
        text, offset = text[resume[0]:], offset + resume[1]


def _next_document_start(text: str, error_line: int) -> tuple[int, int] | None:
    """(character index, 0-based line) of the first `---` line at or after the (chunk-relative) error line."""
    line = 0
    last = 0
    for match in _DOCUMENT_START.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        if line + 1 >= error_line and match.start() > 0:
            return match.start(), line
    return None


def _too_many_nodes(loader: _Loader, limits: Limits, offset: int, used: list[int]) -> tuple[YamlError, int | None]:
    """The error for a document abandoned mid-parse, and the chunk-relative line to resume after (None: stop)."""
    first = loader.first_parent_line + 1
    if loader.nodes > limits.max_nodes_per_file - used[0]:
        message = (f"the file holds more than {limits.max_nodes_per_file} values (mappings, lists and "
                   "scalars) in all; this document and the rest of the file are not read")
        return YamlError(message, first + offset), None
    message = (f"document holds more than {limits.max_nodes_per_document} values (mappings, lists and "
               "scalars); refused while parsing it")
    return YamlError(message, first + offset), loader.last_parent_line + 2


def _read_from(
    text: str, offset: int, keep_floats: bool, limits: Limits, used: list[int]
) -> Generator[RawDocument | YamlError, None, int | None]:
    """Documents of `text` (lines shifted by `offset`); returns the chunk-relative line of a syntax error.

    `used` counts the values and documents parsed in earlier chunks of the same file (the file's budget).
    """
    loader = _Loader(text)
    try:
        while True:
            loader.nodes = 0
            loader.first_parent = loader.last_parent = None
            loader.node_limit = min(limits.max_nodes_per_document, limits.max_nodes_per_file - used[0])
            try:
                if not loader.check_node():
                    return None
                node = loader.get_node()
            except yaml.YAMLError as exc:
                error = _syntax_error(exc, offset)
                yield error
                return error.line - offset
            except _TooManyNodes:
                error, resume = _too_many_nodes(loader, limits, offset, used)
                used[0] += loader.nodes
                yield error
                return resume
            used[0] += loader.nodes
            if node is None:
                continue
            used[1] += 1
            if used[1] > limits.max_documents_per_file:
                yield YamlError(f"the file holds more than {limits.max_documents_per_file} documents; this "
                                "document and the rest of the file are not read", _node_line(node) + offset)
                return None
            builder = _Builder(node, offset, keep_floats, limits)
            try:
                value = builder.build(node, ())
            except YamlError as exc:
                yield exc
                continue
            except RecursionError:
                yield YamlError("document is nested too deeply", _node_line(node) + offset)
                continue
            yield RawDocument(value=value, line=_node_line(node) + offset,
                              end_line=int(node.end_mark.line) + 1 + offset, positions=builder.positions)
    finally:
        loader.dispose()


def to_documents(
    text: str, source: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[Document], list[YamlError]]:
    """Decode a stream into Documents (empty documents are dropped: they hold nothing to check)."""
    docs: list[Document] = []
    errors: list[YamlError] = []
    for index, item in enumerate(read_documents(text, limits)):
        if isinstance(item, YamlError):
            errors.append(item)
            continue
        if item.value is None:
            continue
        docs.append(
            Document(obj=item.value, source=source, line=item.line, index=index, positions=item.positions)
        )
    return docs, errors


def read_raw(text: str, limits: Limits = DEFAULT_LIMITS) -> tuple[list[RawDocument], list[YamlError]]:
    """Like `to_documents` but keeps each document's end line (to attribute helm `# Source:` comments)."""
    docs: list[RawDocument] = []
    errors: list[YamlError] = []
    for item in read_documents(text, limits):
        if isinstance(item, YamlError):
            errors.append(item)
        else:
            docs.append(item)
    return docs, errors
