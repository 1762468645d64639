"""Core kinds: kubernetes-validate's bundled strict JSON Schemas, compiled once per Kubernetes version.

kubernetes-validate's own `validate()` re-reads `_definitions.json` (1.4 MB) and builds a new jsonschema
validator on every call. Here the definitions file is read once per version and each `$ref`ed definition is
compiled once into a `structural.Node` shared by every kind that uses it, so validating a document is one walk
over its fields.

File naming follows kubernetes_validate/utils.py `validate()`: `<kind lowercased>-<api version>.json` where
the api version drops the group's domain (`rbac.authorization.k8s.io/v1` -> `rbac-v1`). That mapping is lossy
(a CRD group `apps.example.com/v1` maps to `apps-v1` too), so a schema is used only when its
`x-kubernetes-group-version-kind` names exactly the document's group, version and kind.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gpu_policy.errors import SchemaSourceError
from gpu_policy.schemas.formats import INT32, INT64, RFC3339_RE, is_base64
from gpu_policy.schemas.structural import Node, enum_key

SCHEMA_ROOT_PACKAGE = "kubernetes_validate"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_DEFS_PREFIX = "/api/_definitions.json#/$defs/"
_LOCAL_PREFIX = "#/$defs/"
_IGNORED_KEYWORDS = frozenset(
    {
        "description",
        "$schema",
        "$id",
        "x-kubernetes-group-version-kind",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-patch-strategy",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-map-type",
        "x-kubernetes-unions",
        "$defs",
    }
)
"""Keywords that do not constrain a value at create time (list-type uniqueness of core types is checked by
each type's Go validation, not generically: e.g. duplicate env names are accepted with a warning)."""


def schema_base_dir() -> Path:
    return Path(str(resources.files(SCHEMA_ROOT_PACKAGE).joinpath("kubernetes-json-schema")))


def _version_tuple(text: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", text)
    if not match:
        raise SchemaSourceError(f'kubernetesVersion {text!r} is not a version like "1.33"')
    return int(match.group(1)), int(match.group(2))


def bundled_versions() -> list[tuple[int, int]]:
    found = set()
    for entry in schema_base_dir().iterdir():
        match = re.match(r"^v(\d+)\.(\d+)\.\d+-local-strict$", entry.name)
        if match:
            found.add((int(match.group(1)), int(match.group(2))))
    return sorted(found)


def resolve_version(wanted: str) -> tuple[int, int]:
    """The newest bundled schema version not newer than `wanted` (compared numerically, not as text)."""
    target = _version_tuple(wanted)
    versions = bundled_versions()
    usable = [v for v in versions if v <= target]
    if not usable or target > versions[-1]:
        shown = ", ".join(f"{a}.{b}" for a, b in versions)
        raise SchemaSourceError(
            f"kubernetes-validate has no schemas for Kubernetes {target[0]}.{target[1]} (it has {shown}); "
            "upgrade kubernetes-validate or change kubernetesVersion in policies/cluster.yaml"
        )
    return usable[-1]


def schema_file_name(kind: str, api_version: str) -> str:
    """kubernetes_validate/utils.py: `rbac.authorization.k8s.io/v1` -> `rbac-v1`; `v1` stays `v1`."""
    mapped = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{mapped}.json"


class CoreSchemas:
    """Every core kind of one Kubernetes version, compiled on first use."""

    def __init__(self, version: tuple[int, int]) -> None:
        self.version = version
        self.directory = schema_base_dir() / f"v{version[0]}.{version[1]}.0-local-strict"
        if not self.directory.is_dir():  # pragma: no cover - resolve_version only returns bundled versions
            raise SchemaSourceError(f"schema folder {self.directory} is missing")
        with (self.directory / "_definitions.json").open(encoding="utf-8") as handle:
            self._definitions: dict[str, Any] = json.load(handle)["$defs"]
        self._compiled_defs: dict[str, Node] = {}
        self._kinds: dict[tuple[str, str], Node | None] = {}
        self._names: frozenset[str] | None = None

    @property
    def label(self) -> str:
        return f"Kubernetes {self.version[0]}.{self.version[1]} (kubernetes-validate strict schemas)"

    def for_kind(self, api_version: str, kind: str) -> Node | None:
        key = (api_version, kind)
        if key not in self._kinds:
            self._kinds[key] = self._load_kind(api_version, kind)
        return self._kinds[key]

    def _file_names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(p.name for p in self.directory.iterdir() if p.is_file())
        return self._names

    def object_meta(self) -> Node:
        return self._definition(OBJECT_META)

    def _load_kind(self, api_version: str, kind: str) -> Node | None:
        if not kind or not api_version or "/" in kind or "\\" in kind or ".." in kind:
            return None
        # The name comes from the input: looked up in the folder's listing, never handed to the file system as is
        # (a 260-character kind made stat() fail with ENAMETOOLONG).
        name = schema_file_name(kind, api_version)
        if name not in self._file_names():
            return None
        path = self.directory / name
        with path.open(encoding="utf-8") as handle:
            schema = json.load(handle)
        group, _, version = api_version.rpartition("/")
        gvks = schema.get("x-kubernetes-group-version-kind") or []
        if not any(
            g.get("group", "") == group and g.get("version") == version and g.get("kind") == kind
            for g in gvks
        ):
            return None  # not a top-level resource, or a group whose name only looks like a core group
        return self._compile(schema)

    def _definition(self, name: str) -> Node:
        node = self._compiled_defs.get(name)
        if node is None:
            if name not in self._definitions:
                raise SchemaSourceError(f"core schema definition {name} is missing from {self.directory}")
            node = Node()  # registered before filling: definitions can be recursive (JSONSchemaProps)
            self._compiled_defs[name] = node
            self._fill(node, self._definitions[name], name)
        return node

    def _compile(self, schema: dict[str, Any], name: str = "") -> Node:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._definition(_ref_name(ref))
        node = Node()
        self._fill(node, schema, name)
        return node

    def _fill(self, node: Node, schema: dict[str, Any], name: str) -> None:
        unknown = (
            set(schema)
            - _IGNORED_KEYWORDS
            - {
                "type",
                "properties",
                "additionalProperties",
                "items",
                "required",
                "enum",
                "format",
                "oneOf",
                "$ref",
            }
        )
        if unknown:
            raise SchemaSourceError(
                f"core schema {name or '<kind>'} uses unsupported keywords {sorted(unknown)}"
            )
        node.title = name
        if name == _QUANTITY:
            node.types, node.nullable, node.quantity = frozenset({"string", "number"}), True, True
            return
        if name == _INT_OR_STRING:
            node.int_or_string, node.nullable = True, True
            return
        if "oneOf" in schema:
            raise SchemaSourceError(f"core schema {name} uses oneOf in an unexpected place")
        types = schema.get("type")
        if isinstance(types, str):
            types = [types]
        if types is not None:
            node.nullable = "null" in types
            node.types = frozenset(t for t in types if t != "null")
        props = schema.get("properties")
        if isinstance(props, dict):
            node.properties = {key: self._compile(sub, f"{name}.{key}") for key, sub in props.items()}
        additional = schema.get("additionalProperties", True)
        if isinstance(additional, dict):
            node.additional = self._compile(additional, f"{name}.*")
        else:
            node.additional = bool(additional)
        items = schema.get("items")
        if isinstance(items, dict):
            node.items = self._compile(items, f"{name}[]")
        node.required = tuple(schema.get("required") or ())
        enum = schema.get("enum")
        if isinstance(enum, list):
            node.enum = tuple(enum)
            node.enum_keys = frozenset(enum_key(v) for v in enum)
            # `null` is in the type list of nearly every field; an explicit null is not an unsupported value.
            if node.nullable:
                node.enum_keys = node.enum_keys | {enum_key(None)}
        fmt = schema.get("format")
        if fmt in ("int32", "int64"):
            node.format_name = fmt
            node.int_range = INT32 if fmt == "int32" else INT64
        elif fmt == "date-time":
            node.format_name, node.format_check = (
                "RFC 3339 date-time",
                lambda s: RFC3339_RE.match(s) is not None,
            )
        elif fmt == "byte":
            node.format_name, node.format_check = "base64 string", is_base64


def _ref_name(ref: str) -> str:
    for prefix in (_DEFS_PREFIX, _LOCAL_PREFIX):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    raise SchemaSourceError(f"unsupported $ref {ref!r} in a core schema")


@lru_cache(maxsize=8)
def core_schemas(version: tuple[int, int]) -> CoreSchemas:
    """One compiled set per version for the whole process: the definitions are read once."""
    return CoreSchemas(version)
