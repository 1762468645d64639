"""One served version of a CRD, compiled: its structural schema as a `Node` tree, and the validation of a
custom resource against it the way the API server does it on create.

The order follows k8s.io/apiextensions-apiserver pkg/registry/customresource/strategy.go and the handler:
1. defaults are applied (schema/defaulting/algorithm.go);
2. unknown fields are found (the API server prunes them; with `kubectl apply --validate=strict` they are
   errors);
3. the OpenAPI schema is checked (types, enums, formats on strings, patterns, bounds, required, ...),
   metadata as ObjectMeta, and `x-kubernetes-list-type` set/map uniqueness;
4. CEL rules run on the pruned, defaulted object, but only when step 3 found no "blocking" error (type,
   required, enum, maxLength, maxItems/maxProperties: `hasBlockingErr`); otherwise a note says they were not
   evaluated.
`status` is dropped first when the version has the status subresource: the API server resets it on create.
"""

from __future__ import annotations

import re
from typing import Any

from gpu_policy.errors import SchemaSourceError
from gpu_policy.schemas.cel_rules import (
    FAIL,
    NOT_EVALUATED,
    PASS,
    TRANSITION,
    CelRule,
    escape_property,
    needs_escaping,
    parse_go_duration,
    parse_timestamp,
)
from gpu_policy.schemas.formats import CRD_STRING_FORMATS, go_regex
from gpu_policy.schemas.issues import CEL, CEL_NOT_EVALUATED, TRANSITION_RULE_SKIPPED, SchemaIssue
from gpu_policy.schemas.structural import (
    MISSING,
    Node,
    Run,
    apply_defaults,
    enum_key,
    finish_flags,
    prune,
    prune_nulls,
    validate,
)

_CEL_FORMATS = frozenset({"date-time", "datetime", "date", "duration", "byte"})
BLOCKED_NOTE = (
    "CEL validation rules were not evaluated because the object has schema errors of the kinds that make the "
    "API server skip them (type, required, enum, maxLength, maxItems/maxProperties); fix those errors first"
)


def compile_crd_schema(schema: Any, where: str) -> Node:
    """Compile an `openAPIV3Schema` (or a part of it); `where` names it in error messages."""
    if not isinstance(schema, dict):
        raise SchemaSourceError(f"{where}: schema must be a mapping, got {type(schema).__name__}")
    node = Node()
    node.title = where
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(kind, str):
            raise SchemaSourceError(f"{where}: type must be a string, got {kind!r}")
        node.types = frozenset({kind})
    node.nullable = bool(schema.get("nullable", False))
    node.int_or_string = bool(schema.get("x-kubernetes-int-or-string", False))
    node.preserve_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields", False))
    node.embedded = bool(schema.get("x-kubernetes-embedded-resource", False))
    if node.embedded:
        node.implicit_fields = frozenset({"apiVersion", "kind", "metadata"})
    props = schema.get("properties")
    if isinstance(props, dict):
        node.properties = {key: compile_crd_schema(sub, f"{where}.{key}") for key, sub in props.items()}
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        node.additional = compile_crd_schema(additional, f"{where}.*")
    elif additional is True:
        node.additional = True
    items = schema.get("items")
    if isinstance(items, dict):
        node.items = compile_crd_schema(items, f"{where}[]")
    node.required = tuple(schema.get("required") or ())
    enum = schema.get("enum")
    if isinstance(enum, list):
        node.enum = tuple(enum)
        node.enum_keys = frozenset(enum_key(v) for v in enum)
    fmt = schema.get("format")
    if (
        isinstance(fmt, str)
        and fmt in CRD_STRING_FORMATS
        and (kind in (None, "string") or node.int_or_string)
    ):
        node.format_name, node.format_check = fmt, CRD_STRING_FORMATS[fmt]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            node.pattern = go_regex(pattern)
        except re.error as exc:
            raise SchemaSourceError(
                f"{where}: pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    for attr, keyword in (("minimum", "minimum"), ("maximum", "maximum"), ("multiple_of", "multipleOf")):
        value = schema.get(keyword)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(node, attr, value)
    node.minimum_exclusive = bool(schema.get("exclusiveMinimum", False))
    node.maximum_exclusive = bool(schema.get("exclusiveMaximum", False))
    for attr, keyword in (
        ("min_length", "minLength"),
        ("max_length", "maxLength"),
        ("min_items", "minItems"),
        ("max_items", "maxItems"),
        ("min_properties", "minProperties"),
        ("max_properties", "maxProperties"),
    ):
        value = schema.get(keyword)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(node, attr, value)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type in ("set", "map"):
        node.list_type = list_type
        node.list_map_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    for attr, keyword in (("any_of", "anyOf"), ("one_of", "oneOf"), ("all_of", "allOf")):
        subs = schema.get(keyword)
        if isinstance(subs, list):
            setattr(
                node,
                attr,
                tuple(compile_crd_schema(s, f"{where}.{keyword}[{i}]") for i, s in enumerate(subs)),
            )
    if isinstance(schema.get("not"), dict):
        node.not_ = compile_crd_schema(schema["not"], f"{where}.not")
    if "default" in schema:
        node.default = schema["default"]
    rules = schema.get("x-kubernetes-validations")
    if isinstance(rules, list):
        node.rules = tuple(CelRule(r) for r in rules if isinstance(r, dict) and r.get("rule"))
    node.cel_convert = (
        (node.format_name in _CEL_FORMATS)
        or kind == "number"
        or any(needs_escaping(k) for k in (node.properties or {}))
        or any(child.cel_convert for child in node.children())
    )
    return node


def to_cel(value: Any, node: Node) -> Any:
    """The value as Kubernetes' CEL sees it (k8s.io/apiserver pkg/cel/common/values.go): property names
    escaped, date-time/date as timestamps, duration as durations, byte as bytes, numbers as doubles."""
    if value is None or not node.cel_convert:
        return value
    if isinstance(value, dict):
        props = node.properties or {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key)
            if sub is not None:
                name = escape_property(key)
                if name is not None:
                    out[name] = to_cel(item, sub)
            elif isinstance(node.additional, Node):
                out[key] = to_cel(item, node.additional)
            else:
                out[key] = item
        return out
    if isinstance(value, list):
        return [to_cel(item, node.items) for item in value] if node.items is not None else value
    try:
        if isinstance(value, str) and node.format_name in ("date-time", "datetime", "date"):
            return parse_timestamp(value if node.format_name != "date" else f"{value}T00:00:00Z")
        if isinstance(value, str) and node.format_name == "duration":
            return parse_go_duration(value)
        if isinstance(value, str) and node.format_name == "byte":
            import base64

            return base64.b64decode(value)
    except ValueError:
        return value  # already reported as a format error; CEL sees the text
    if isinstance(value, int) and not isinstance(value, bool) and node.types == frozenset({"number"}):
        return float(value)
    return value


class CustomResourceSchema:
    """A compiled served version of a CRD."""

    def __init__(self, version_spec: dict[str, Any], object_meta: Node, where: str) -> None:
        schema = (version_spec.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            raise SchemaSourceError(f"{where}: version has no schema.openAPIV3Schema")
        self.where = where
        self.root = compile_crd_schema(schema, where)
        self.root.implicit_fields = frozenset({"apiVersion", "kind", "metadata"})
        props = dict(self.root.properties or {})
        crd_meta = props.get("metadata")
        # metadata is always ObjectMeta; a CRD may only add value validations on name/generateName.
        if crd_meta is not None and crd_meta.properties:
            meta = Node()
            meta.title = "metadata"
            meta.all_of = (object_meta, crd_meta)
            props["metadata"] = meta
        else:
            props["metadata"] = object_meta
        props.setdefault("apiVersion", _string_node())
        props.setdefault("kind", _string_node())
        self.root.properties = props
        self.drops_status = bool((version_spec.get("subresources") or {}).get("status") is not None)
        finish_flags(self.root)
        self.rules = [rule for rule in _all_rules(self.root)]

    def validate(self, obj: Any) -> list[SchemaIssue]:
        if self.drops_status and isinstance(obj, dict) and "status" in obj:
            obj = {k: v for k, v in obj.items() if k != "status"}
        value = apply_defaults(prune_nulls(obj, self.root), self.root)
        run = Run(strict_lists=True)
        validate(value, self.root, run)
        issues = run.issues
        if self.root.has_rules and isinstance(value, dict):
            if run.blocking:
                issues.append(SchemaIssue(CEL_NOT_EVALUATED, (), BLOCKED_NOTE))
            else:
                target = prune(value, self.root) if run.unknown_found else value
                _cel_walk(target, self.root, [], issues)
        return issues


def _string_node() -> Node:
    node = Node()
    node.types = frozenset({"string"})
    return node


def _all_rules(node: Node) -> list[CelRule]:
    out = list(node.rules)
    for child in node.children():
        out.extend(_all_rules(child))
    for sub in (*node.any_of, *node.one_of, *node.all_of):
        out.extend(_all_rules(sub))
    return out


_SELF_FIELD = re.compile(r"\bself\.([A-Za-z_][A-Za-z0-9_]*)")
_SELF_WHOLE = re.compile(r"\bself\b(?!\s*\.\s*[A-Za-z_])")


def rule_reads(expression: str) -> tuple[str, ...] | None:
    """The fields of `self` a CEL rule reads (`has(self.a) && self.b.exists(...)` -> ("a", "b")), or None when it
    reads `self` as a whole (`self == ...`, `size(self)`, `self.size()` on a list) and any part of it may matter."""
    if _SELF_WHOLE.search(expression) or re.search(r"\bself\s*\.\s*(size|all|exists|exists_one|map|filter)\s*\(",
                                                    expression):
        return None
    found = tuple(dict.fromkeys(_SELF_FIELD.findall(expression)))
    return found or None


def _cel_walk(value: Any, node: Node, path: list[str | int], issues: list[SchemaIssue]) -> None:
    """Evaluate every rule at every node present in the object (nulls are skipped, as in the API server)."""
    if value is None:
        return
    if node.rules:
        self_value = to_cel(value, node)
        for rule in node.rules:
            outcome = rule.evaluate(self_value)
            if outcome.status == PASS:
                continue
            if outcome.status == FAIL:
                reads = None if outcome.field_path else rule_reads(rule.rule)
                issues.append(SchemaIssue(CEL, (*path, *outcome.field_path), outcome.message, reads))
            elif outcome.status == TRANSITION:
                issues.append(SchemaIssue(TRANSITION_RULE_SKIPPED, tuple(path), outcome.message))
            elif outcome.status == NOT_EVALUATED:
                issues.append(SchemaIssue(CEL_NOT_EVALUATED, tuple(path), outcome.message))
    if isinstance(value, dict):
        props = node.properties or {}
        additional = node.additional if isinstance(node.additional, Node) else None
        for key, item in value.items():
            sub = props.get(key, additional)
            if sub is not None and sub.has_rules:
                path.append(key)
                _cel_walk(item, sub, path, issues)
                path.pop()
    elif isinstance(value, list) and node.items is not None and node.items.has_rules:
        for index, item in enumerate(value):
            path.append(index)
            _cel_walk(item, node.items, path, issues)
            path.pop()


__all__ = ["MISSING", "CustomResourceSchema", "compile_crd_schema", "to_cel"]
