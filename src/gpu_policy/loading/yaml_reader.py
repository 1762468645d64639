"""Read YAML the way the Kubernetes API machinery does, keeping the line of every field.

Kubernetes decodes manifests with sigs.k8s.io/yaml (go-yaml, YAML 1.1 resolution, then JSON): `yes`/`on`/`true`
are booleans, unquoted timestamps stay strings (the YAML->JSON step turns them back into text), duplicate keys are
errors ("mapping key already defined"), and only the standard tags exist. PyYAML's composer gives us the node tree
with positions; we build the values ourselves so those rules, and the limits against alias bombs, hold.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from gpu_policy.loading.document import Document, FieldPath

try:  # libyaml's parser is several times faster; the pure-Python one behaves the same.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 32 * 1024 * 1024
"""The API server refuses request bodies over 3 MiB; a manifest file far larger than that is a mistake."""
MAX_NODES_PER_DOCUMENT = 1_000_000
"""Counted after alias expansion: a 'billion laughs' document hits this long before it exhausts memory."""
MAX_ALIAS_EXPANSION_RATIO = 100
"""go-yaml refuses 'excessive aliasing' the same way: expanded nodes may not dwarf the nodes written."""

_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    _STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary",
}
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


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
    positions: dict[FieldPath, int]


_constructor = yaml.SafeLoader("")  # only used for its scalar constructors


class _Builder:
    def __init__(self, written_nodes: int) -> None:
        self.positions: dict[FieldPath, int] = {}
        self.count = 0
        self.limit = min(MAX_NODES_PER_DOCUMENT, max(10_000, written_nodes * MAX_ALIAS_EXPANSION_RATIO))

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise YamlError(
                f"document expands to more than {self.limit} nodes through aliases (a YAML bomb?); refused",
                node.start_mark.line + 1,
            )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise _unsafe_tag(node)
            out: list[Any] = []
            for i, item in enumerate(node.value):
                self.positions[(*path, i)] = item.start_mark.line + 1
                out.append(self.build(item, (*path, i)))
            return out
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise _unsafe_tag(node)
            return self._mapping(node, path)
        raise YamlError(f"unsupported YAML node {type(node).__name__}", node.start_mark.line + 1)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            raise _unsafe_tag(node)
        if tag == "tag:yaml.org,2002:timestamp":
            return node.value  # sigs.k8s.io/yaml keeps timestamps as strings
        if tag == "tag:yaml.org,2002:binary":
            return base64.b64encode(_constructor.construct_yaml_binary(node)).decode()
        if tag == _STR:
            return node.value
        return _constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        explicit: set[Any] = set()
        merged: list[tuple[Any, Any, int]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in _merge_sources(value_node):
                    sub = self.build(source, path)
                    merged.extend((k, v, source.start_mark.line + 1) for k, v in sub.items())
                continue
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None and not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be scalars", key_node.start_mark.line + 1)
            if not isinstance(key, str):
                key = _key_text(key, key_node)
            if key in explicit:
                raise YamlError(f'mapping key "{key}" already defined', key_node.start_mark.line + 1)
            explicit.add(key)
            self.positions[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*path, key))
        for key, value, line in merged:  # explicit keys win over merged ones, as in go-yaml
            if key not in out:
                out[key] = value
                self.positions.setdefault((*path, key), line)
        return out


def _merge_sources(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [node]
    if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in node.value):
        return list(node.value)
    raise YamlError("'<<' merge key needs a mapping or a list of mappings", node.start_mark.line + 1)


def _key_text(key: Any, node: yaml.ScalarNode) -> str:
    """JSON object keys are strings; sigs.k8s.io/yaml converts booleans and numbers used as keys to text."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return node.value if not isinstance(key, int | float) else str(key)


def _unsafe_tag(node: yaml.Node) -> YamlError:
    return YamlError(
        f"tag {node.tag!r} is not allowed: Kubernetes manifests use only the standard YAML tags",
        node.start_mark.line + 1,
    )


def _count_written(node: yaml.Node, seen: set[int]) -> int:
    if id(node) in seen:
        return 0
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(_count_written(k, seen) + _count_written(v, seen) for k, v in node.value)
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(_count_written(v, seen) for v in node.value)
    return 1


def read_documents(text: str) -> Iterator[RawDocument | YamlError]:
    """Yield every document of a YAML stream; a parse error is yielded once and ends the stream."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        yield YamlError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; refused", 1)
        return
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(_count_written(node, set()))
            try:
                value = builder.build(node, ())
            except RecursionError:
                yield YamlError("document is nested too deeply", node.start_mark.line + 1)
                return
            yield RawDocument(value=value, line=node.start_mark.line + 1, positions=builder.positions)
    except YamlError as exc:
        yield exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        yield YamlError(f"YAML syntax error: {problem}{context}", line)
    except yaml.YAMLError as exc:
        yield YamlError(f"YAML error: {exc}", 1)
    finally:
        loader.dispose()


def to_documents(text: str, source: str) -> tuple[list[Document], list[YamlError]]:
    """Decode a stream into Documents (empty documents are dropped: they hold nothing to check)."""
    docs: list[Document] = []
    errors: list[YamlError] = []
    for index, item in enumerate(read_documents(text)):
        if isinstance(item, YamlError):
            errors.append(item)
            continue
        if item.value is None:
            continue
        docs.append(Document(obj=item.value, source=source, line=item.line, index=index, positions=item.positions))
    return docs, errors
