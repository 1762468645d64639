"""A compiled schema tree, and the walker that validates a value against it, reporting EVERY error with
its path.

One engine serves both sources of schemas (they are compiled into `Node`s by `core.py` and `crd_schema.py`):
- core kinds (kubernetes-validate's strict JSON Schemas): an object without `additionalProperties` accepts
  anything (JSON Schema semantics), `null` is allowed where the type list says so, and integer formats are
  range-checked because Go's typed decoding refuses an int32 overflow;
- custom resources (the CRD's structural schema, k8s.io/apiextensions-apiserver pkg/apiserver/schema): a field
  not in `properties` is pruned by the API server (reported here as an unknown field, as `kubectl apply
  --validate=strict` does) unless `x-kubernetes-preserve-unknown-fields`, a field that is `null` is dropped
  unless `nullable` or defaulted (schema/defaulting/prunenulls.go; a null list item is an error), `default`s are
  applied before validation (schema/defaulting/algorithm.go), and
  `x-kubernetes-list-type` set/map uniqueness is enforced (schema/listtype/validation.go).

The walker is written for speed: one recursive pass, a mutable path stack, and tuples only when an error is
made.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpu_policy.schemas.issues import INVALID, UNKNOWN_FIELD, SchemaIssue

if TYPE_CHECKING:
    from gpu_policy.schemas.cel_rules import CelRule

MISSING: Any = object()
"""Marks 'no default' (None is a legal default)."""

JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean")


class Node:
    """One schema node, compiled. Attributes left at their class defaults cost nothing in the walk."""

    __slots__ = (
        "additional",
        "all_of",
        "any_of",
        "cel_convert",
        "default",
        "embedded",
        "enum",
        "enum_keys",
        "format_check",
        "format_name",
        "has_defaults",
        "has_rules",
        "implicit_fields",
        "int_or_string",
        "int_range",
        "items",
        "list_map_keys",
        "list_type",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "maximum_exclusive",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "minimum_exclusive",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "plain_string",
        "preserve_unknown",
        "properties",
        "quantity",
        "required",
        "rules",
        "title",
        "types",
    )

    def __init__(self) -> None:
        self.types: frozenset[str] | None = None
        """Allowed JSON types (integer also accepted by number); None accepts any type."""
        self.nullable = False
        self.int_or_string = False
        self.properties: dict[str, Node] | None = None
        self.additional: Node | bool = False
        """A Node validates map values; True accepts any extra field; False makes extra fields unknown."""
        self.preserve_unknown = False
        self.implicit_fields: frozenset[str] = frozenset()
        """Fields accepted without being in `properties` (apiVersion/kind/metadata at a CR's root)."""
        self.embedded = False
        self.items: Node | None = None
        self.required: tuple[str, ...] = ()
        self.enum: tuple[Any, ...] | None = None
        self.enum_keys: frozenset[Any] = frozenset()
        self.format_name: str | None = None
        self.format_check: Callable[[str], bool] | None = None
        self.int_range: tuple[int, int] | None = None
        self.quantity = False
        self.pattern: re.Pattern[str] | None = None
        self.minimum: float | None = None
        self.maximum: float | None = None
        self.minimum_exclusive = False
        self.maximum_exclusive = False
        self.multiple_of: float | None = None
        self.min_length: int | None = None
        self.max_length: int | None = None
        self.min_items: int | None = None
        self.max_items: int | None = None
        self.min_properties: int | None = None
        self.max_properties: int | None = None
        self.list_type: str | None = None
        self.list_map_keys: tuple[str, ...] = ()
        self.any_of: tuple[Node, ...] = ()
        self.one_of: tuple[Node, ...] = ()
        self.all_of: tuple[Node, ...] = ()
        self.not_: Node | None = None
        self.default: Any = MISSING
        self.has_defaults = False
        """Some node in this subtree has a default (set by `finish_flags`)."""
        self.rules: tuple[CelRule, ...] = ()
        self.has_rules = False
        """Some node in this subtree has CEL rules (set by `finish_flags`)."""
        self.cel_convert = False
        """Values in this subtree must be converted before CEL sees them (escaped property names, date-time,
        duration and byte strings, numbers); set by the CRD compiler."""
        self.title = ""
        self.plain_string: bool | None = None
        """Whether every string is valid here (no constraint on strings, no enum, no combinator): set on the first
        validation, once the node is complete (`_plain_string`)."""

    def children(self) -> list[Node]:
        out: list[Node] = list((self.properties or {}).values())
        if isinstance(self.additional, Node):
            out.append(self.additional)
        if self.items is not None:
            out.append(self.items)
        return out


def finish_flags(root: Node) -> None:
    """Compute the subtree flags bottom-up (schemas from CRDs are trees; core schemas have neither flag)."""
    seen: set[int] = set()

    def visit(node: Node) -> tuple[bool, bool]:
        if id(node) in seen:
            return node.has_defaults, node.has_rules
        seen.add(id(node))
        defaults, rules = False, bool(node.rules)
        for child in node.children():
            child_defaults, child_rules = visit(child)
            defaults = defaults or child_defaults or child.default is not MISSING
            rules = rules or child_rules
        node.has_defaults, node.has_rules = defaults, rules
        return defaults, rules

    visit(root)


def enum_key(value: Any) -> Any:
    """Equality as JSON sees it: `true` is not `1`, `1` is `1.0`."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    return ("json", json.dumps(value, sort_keys=True))


def json_type(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return type(value).__name__


def show(value: Any, limit: int = 80) -> str:
    """A value as it would appear in JSON, shortened."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_names(node: Node) -> str:
    if node.int_or_string:
        return "integer or string"
    names = sorted(node.types or ())
    return " or ".join(names)


def _type_hint(node: Node, got: str) -> str:
    if node.types is not None and "string" in node.types and got in ("boolean", "integer", "number"):
        return " (YAML reads unquoted true/false/yes/no/on/off and numbers as non-strings: quote the value)"
    return ""


class Run:
    """The state of one validation: issues found, whether any of them blocks CEL, the current path."""

    __slots__ = ("blocking", "issues", "path", "strict_lists", "unknown_found", "value_only")

    def __init__(
        self, *, strict_lists: bool, value_only: bool = False, path: tuple[str | int, ...] = ()
    ) -> None:
        self.issues: list[SchemaIssue] = []
        self.blocking = False
        """An error of a type the API server treats as blocking CEL (strategy.go `hasBlockingErr`)."""
        self.unknown_found = False
        self.path: list[str | int] = list(path)
        self.strict_lists = strict_lists
        self.value_only = value_only

    def error(self, message: str, *, blocking: bool = False, extra: str | int | None = None) -> None:
        path = tuple(self.path) if extra is None else (*self.path, extra)
        self.issues.append(SchemaIssue(INVALID, path, message))
        if blocking:
            self.blocking = True


def _plain_string(node: Node) -> bool:
    """Whether `validate` finds nothing wrong with any string at `node` (the common leaf: a name, an image)."""
    plain = node.plain_string
    if plain is None:
        plain = node.plain_string = (
            (node.int_or_string or node.types is None or "string" in node.types)
            and node.min_length is None and node.max_length is None and node.pattern is None
            and node.format_check is None and not node.quantity and node.enum is None
            and not (node.any_of or node.one_of or node.all_of or node.not_ is not None)
        )
    return plain


def validate(value: Any, node: Node, run: Run) -> None:
    """Check `value` against `node`, appending every problem to `run`."""
    if value.__class__ is str and _plain_string(node):
        return
    if value is None:
        if node.nullable or (node.types is None and not node.int_or_string):
            return
        run.error(f"must be of type {_type_names(node)}, got null", blocking=True)
        return
    kind = json_type(value)
    if node.int_or_string:
        if kind not in ("integer", "string"):
            run.error(f"must be of type integer or string, got {kind} {show(value)}", blocking=True)
            return
    elif (
        node.types is not None
        and kind not in node.types
        and not (kind == "integer" and "number" in node.types)
    ):
        run.error(
            f"must be of type {_type_names(node)}, got {kind} {show(value)}{_type_hint(node, kind)}",
            blocking=True,
        )
        return

    if kind == "object":
        _validate_object(value, node, run)
    elif kind == "array":
        _validate_array(value, node, run)
    elif kind == "string":
        _validate_string(value, node, run)
    elif kind in ("integer", "number"):
        _validate_number(value, node, run)

    if node.enum is not None and enum_key(value) not in node.enum_keys:
        options = ", ".join(show(v) for v in node.enum)
        run.error(f"Unsupported value: {show(value)}: must be one of [{options}]", blocking=True)
    if node.any_of or node.one_of or node.all_of or node.not_ is not None:
        _validate_combinators(value, node, run)


def _validate_object(value: dict[str, Any], node: Node, run: Run) -> None:
    props = node.properties
    additional = node.additional
    for key in node.required:
        if key not in value:
            run.error(f'Required value: "{key}" must be set', blocking=True, extra=key)
    if node.min_properties is not None and len(value) < node.min_properties:
        run.error(f"Invalid value: must have at least {node.min_properties} properties, has {len(value)}")
    if node.max_properties is not None and len(value) > node.max_properties:
        run.error(
            f"Too many: must have at most {node.max_properties} properties, has {len(value)}", blocking=True
        )
    path = run.path
    for key, item in value.items():
        sub = props.get(key) if props is not None else None
        if sub is None:
            if isinstance(additional, Node):
                sub = additional
            elif additional or node.preserve_unknown or key in node.implicit_fields:
                continue
            else:
                if not run.value_only:
                    _unknown_field(key, node, run)
                continue
        if item.__class__ is str and _plain_string(sub):
            continue  # what `validate` would conclude, without the call
        path.append(key)
        validate(item, sub, run)
        path.pop()


def _unknown_field(key: str, node: Node, run: Run) -> None:
    run.unknown_found = True
    dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in (*run.path, key)).replace(".[", "[")
    known = sorted((node.properties or {}).keys())
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        hint = f' (did you mean "{close[0]}"?)'
    elif known:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        hint = f" (known fields here: {shown})"
    else:
        hint = " (this object accepts no fields)"
    run.issues.append(SchemaIssue(UNKNOWN_FIELD, (*run.path, key), f'unknown field "{dotted}"{hint}'))


def _validate_array(value: list[Any], node: Node, run: Run) -> None:
    if node.min_items is not None and len(value) < node.min_items:
        run.error(f"Invalid value: must have at least {node.min_items} items, has {len(value)}")
    if node.max_items is not None and len(value) > node.max_items:
        run.error(f"Too many: {len(value)}: must have at most {node.max_items} items", blocking=True)
    items = node.items
    path = run.path
    if items is not None:
        for index, item in enumerate(value):
            path.append(index)
            validate(item, items, run)
            path.pop()
    if node.list_type is not None and run.strict_lists and not run.value_only:
        _validate_list_type(value, node, run)


def _validate_list_type(value: list[Any], node: Node, run: Run) -> None:
    """x-kubernetes-list-type: set items are unique; map items are unique by their list-map-keys."""
    seen: set[Any] = set()
    if node.list_type == "set":
        for index, item in enumerate(value):
            key = enum_key(item)
            if key in seen:
                run.error(f"Duplicate value: {show(item)} (x-kubernetes-list-type: set)", extra=index)
            seen.add(key)
    elif node.list_type == "map" and node.list_map_keys:
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(enum_key(item.get(k)) for k in node.list_map_keys)
            if key in seen:
                shown = ", ".join(f"{k}={show(item.get(k))}" for k in node.list_map_keys)
                run.error(
                    f"Duplicate value: an earlier item has the same {shown} "
                    f"(x-kubernetes-list-type: map, keys {list(node.list_map_keys)})",
                    extra=index,
                )
            seen.add(key)


def _validate_string(value: str, node: Node, run: Run) -> None:
    if node.min_length is not None and len(value) < node.min_length:
        run.error(f"Invalid value: {show(value)}: must be at least {node.min_length} characters long")
    if node.max_length is not None and len(value) > node.max_length:
        run.error(
            f"Too long: must have at most {node.max_length} characters, has {len(value)}", blocking=True
        )
    if node.pattern is not None and node.pattern.search(value) is None:
        run.error(f"Invalid value: {show(value)}: must match the regular expression '{node.pattern.pattern}'")
    if node.format_check is not None and not node.format_check(value):
        run.error(f"Invalid value: {show(value)}: must be a valid {node.format_name}")
    if node.quantity:
        from gpu_policy.schemas.formats import QUANTITY_HELP, is_quantity

        if not is_quantity(value):
            run.error(
                f"Invalid value: {show(value)}: quantities must match the regular expression {QUANTITY_HELP}"
            )


def _validate_number(value: float, node: Node, run: Run) -> None:
    if (
        node.int_range is not None
        and isinstance(value, int)
        and not node.int_range[0] <= value <= node.int_range[1]
    ):
        low, high = node.int_range
        run.error(
            f"Invalid value: {value}: out of range for {node.format_name} ({low}..{high})", blocking=True
        )
    if node.minimum is not None:
        if node.minimum_exclusive and value <= node.minimum:
            run.error(f"Invalid value: {show(value)}: must be greater than {show(node.minimum)}")
        elif value < node.minimum:
            run.error(f"Invalid value: {show(value)}: must be greater than or equal to {show(node.minimum)}")
    if node.maximum is not None:
        if node.maximum_exclusive and value >= node.maximum:
            run.error(f"Invalid value: {show(value)}: must be less than {show(node.maximum)}")
        elif value > node.maximum:
            run.error(f"Invalid value: {show(value)}: must be less than or equal to {show(node.maximum)}")
    if node.multiple_of and (value / node.multiple_of) % 1 != 0:
        run.error(f"Invalid value: {show(value)}: must be a multiple of {show(node.multiple_of)}")


def _passes(value: Any, node: Node, run: Run) -> bool:
    probe = Run(strict_lists=run.strict_lists, value_only=True)
    validate(value, node, probe)
    return not probe.issues


def _validate_combinators(value: Any, node: Node, run: Run) -> None:
    if node.any_of and not any(_passes(value, sub, run) for sub in node.any_of):
        run.error(f"Invalid value: {show(value)}: must match at least one of the schemas in anyOf")
    if node.one_of:
        count = sum(1 for sub in node.one_of if _passes(value, sub, run))
        if count != 1:
            run.error(
                f"Invalid value: {show(value)}: must match exactly one of the schemas in oneOf, "
                f"matches {count}"
            )
    for sub in node.all_of:
        probe = Run(strict_lists=run.strict_lists, value_only=True, path=tuple(run.path))
        validate(value, sub, probe)
        run.issues.extend(probe.issues)
        run.blocking = run.blocking or probe.blocking
    if node.not_ is not None and _passes(value, node.not_, run):
        run.error(f"Invalid value: {show(value)}: must not match the schema in 'not'")


# -- defaulting and pruning (custom resources) ---------------------------------------------------------------
def prune_nulls(value: Any, node: Node) -> Any:
    """The value without the nulls the API server drops from a custom resource before defaulting (copy-on-write).

    Follows k8s.io/apiextensions-apiserver pkg/apiserver/schema/defaulting/prunenulls.go
    `PruneNonNullableNullsWithoutDefaults`: a field whose value is null and whose schema is neither nullable nor
    defaulted is removed (an optional `fallback: null` is accepted as if absent; a required one is then missing);
    a null with a default is left to `apply_defaults`; null list items stay, and fail validation.
    """
    if isinstance(value, dict):
        out = value
        props = node.properties or {}
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(node.additional, Node):
                sub = node.additional
            if sub is None:
                continue
            if item is None:
                if not sub.nullable and sub.default is MISSING:
                    if out is value:
                        out = dict(value)
                    del out[key]
                continue
            new = prune_nulls(item, sub)
            if new is not item:
                if out is value:
                    out = dict(value)
                out[key] = new
        return out
    if isinstance(value, list) and node.items is not None:
        new_items = [prune_nulls(item, node.items) for item in value]
        if any(a is not b for a, b in zip(new_items, value, strict=True)):
            return new_items
    return value


def apply_defaults(value: Any, node: Node) -> Any:
    """The value with schema defaults filled in, as the API server does before validating a custom resource.

    Copy-on-write: the input is never modified and is returned as is when nothing needed a default. Follows
    k8s.io/apiextensions-apiserver pkg/apiserver/schema/defaulting/algorithm.go `Default`: a property missing,
    or null while not nullable, takes a deep copy of its default; then every present field is defaulted
    recursively.
    """
    if not node.has_defaults:
        return value
    if isinstance(value, dict):
        out = value
        props = node.properties or {}
        for key, prop in props.items():
            if prop.default is not MISSING:
                current = out.get(key, MISSING)
                if current is MISSING or (current is None and not prop.nullable):
                    if out is value:
                        out = dict(value)
                    out[key] = copy.deepcopy(prop.default)
        for key in list(out.keys()):
            sub = props.get(key)
            if sub is None and isinstance(node.additional, Node):
                sub = node.additional
            if sub is None or not sub.has_defaults:
                continue
            item = out[key]
            new = apply_defaults(item, sub)
            if new is not item:
                if out is value:
                    out = dict(value)
                out[key] = new
        return out
    if isinstance(value, list) and node.items is not None and node.items.has_defaults:
        new_items = [apply_defaults(item, node.items) for item in value]
        if any(a is not b for a, b in zip(new_items, value, strict=True)):
            return new_items
    return value


def prune(value: Any, node: Node) -> Any:
    """The value without the fields the API server would prune (copy-on-write)."""
    if isinstance(value, dict):
        if node.preserve_unknown and node.properties is None and not isinstance(node.additional, Node):
            return value
        props = node.properties or {}
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(node.additional, Node):
                sub = node.additional
            if sub is None:
                if node.additional is True or node.preserve_unknown or key in node.implicit_fields:
                    out[key] = item
                else:
                    changed = True
                continue
            new = prune(item, sub)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list) and node.items is not None:
        new_items = [prune(item, node.items) for item in value]
        if any(a is not b for a, b in zip(new_items, value, strict=True)):
            return new_items
    return value
