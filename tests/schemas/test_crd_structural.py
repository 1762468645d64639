"""Custom resources against a CRD's structural schema, with the API server's semantics (synthetic CRD)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.schemas.validator import ManifestValidator

from .conftest import doc_of

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [mode]
              properties:
                mode: {type: string, enum: [Fast, Slow]}
                name: {type: string, pattern: '^[a-z]+$', minLength: 2, maxLength: 5}
                count: {type: integer, minimum: 1, maximum: 10, format: int32}
                ratio: {type: number, exclusiveMaximum: true, maximum: 1}
                port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
                when: {type: string, format: date-time}
                note: {type: string, nullable: true}
                policy: {type: string, default: Keep}
                free: {type: object, x-kubernetes-preserve-unknown-fields: true}
                empty: {type: object}
                labels:
                  {type: object, additionalProperties: {type: string}, minProperties: 1, maxProperties: 2}
                tags:
                  type: array
                  maxItems: 3
                  minItems: 1
                  items: {type: string}
                  x-kubernetes-list-type: set
                rules:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [key]
                  items:
                    type: object
                    required: [key]
                    properties:
                      key: {type: string}
                      value: {type: string}
                nested:
                  type: object
                  default: {}
                  required: [level]
                  properties:
                    level: {type: integer, default: 3}
            status:
              type: object
              properties:
                ready: {type: boolean}
    - name: v0
      served: false
      storage: false
      schema:
        openAPIV3Schema: {type: object}
"""

GADGET = """\
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g, namespace: ns}
spec:
  mode: Fast
"""


@pytest.fixture(scope="module")
def gadgets(tmp_path_factory: pytest.TempPathFactory) -> ManifestValidator:
    folder: Path = tmp_path_factory.mktemp("crds")
    (folder / "nested").mkdir()
    (folder / "nested" / "gadget.yaml").write_text(CRD)
    return ManifestValidator("1.33", [folder], use_cache=False)


def issues_for(validator: ManifestValidator, spec_extra: str) -> list[tuple[str, tuple, str]]:
    text = GADGET + "".join(f"  {line}\n" for line in spec_extra.splitlines())
    return [(i.kind, i.path, i.message) for i in validator.validate(doc_of(text))]


def test_minimal_object_is_valid_after_defaulting(gadgets: ManifestValidator) -> None:
    # nested (default {}) then nested.level (default 3) satisfy `required: [level]`: the API server
    # applies defaults before it validates.
    assert issues_for(gadgets, "") == []


def test_required_and_enum(gadgets: ManifestValidator) -> None:
    text = GADGET.replace("  mode: Fast\n", "  name: abc\n")
    [issue] = gadgets.validate(doc_of(text))
    assert (issue.kind, issue.path) == ("invalid", ("spec", "mode")) and "Required value" in issue.message
    [(kind, path, message)] = issues_for_mode(gadgets, "Medium")
    assert (kind, path) == ("invalid", ("spec", "mode"))
    assert 'Unsupported value: "Medium": must be one of ["Fast", "Slow"]' in message


def test_a_required_field_set_to_null_is_dropped_then_missing(gadgets: ManifestValidator) -> None:
    # The API server prunes a non-nullable, non-defaulted null before validating, so it is reported as missing.
    [(kind, path, message)] = issues_for_mode(gadgets, "null")
    assert (kind, path) == ("invalid", ("spec", "mode")) and 'Required value: "mode" must be set' in message


def issues_for_mode(validator: ManifestValidator, mode: str) -> list[tuple[str, tuple, str]]:
    text = GADGET.replace("mode: Fast", f"mode: {mode}")
    return [(i.kind, i.path, i.message) for i in validator.validate(doc_of(text))]


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ("name: ABC", "name", "must match the regular expression '^[a-z]+$'"),
        ("name: a", "name", "must be at least 2 characters long"),
        ("name: abcdefg", "name", "Too long: must have at most 5 characters"),
        ("count: 0", "count", "must be greater than or equal to 1"),
        ("count: 11", "count", "must be less than or equal to 10"),
        ("count: 1.5", "count", "must be of type integer, got number 1.5"),
        ("ratio: 1", "ratio", "must be less than 1"),
        ("port: true", "port", "must be of type integer or string"),
        ("when: yesterday", "when", "must be a valid date-time"),
        ("policy: null", None, None),
        ("note: null", None, None),
        ("count: null", None, None),  # optional, not nullable, no default: dropped (defaulting/prunenulls.go)
        ("tags: [a, null]", 1, "must be of type string, got null"),  # null list items are not dropped
        ("labels: {}", "labels", "must have at least 1 properties"),
        ("labels: {a: x1, b: x2, c: x3}", "labels", "Too many: must have at most 2 properties"),
        ("labels: {a: 1}", "a", "must be of type string, got integer 1"),
        ("tags: []", "tags", "must have at least 1 items"),
        ("tags: [a, b, c, d]", "tags", "Too many: 4: must have at most 3 items"),
        ("tags: [a, b, a]", 2, 'Duplicate value: "a" (x-kubernetes-list-type: set)'),
        ("rules: [{key: a, value: x1}, {key: a, value: x2}]", 1, 'same key="a"'),
        ("port: 80", None, None),
        ("port: http", None, None),
        ("when: '2025-01-01T00:00:00Z'", None, None),
        ("free: {anything: {goes: [1]}}", None, None),
    ],
)
def test_value_validations(
    gadgets: ManifestValidator, extra: str, field: str | int | None, expected: str | None
) -> None:
    found = issues_for(gadgets, extra)
    if expected is None:
        assert found == []
        return
    assert len(found) == 1, found
    kind, path, message = found[0]
    assert kind == "invalid" and path[-1] == field and expected in message, found


def test_int32_format_is_not_range_checked_for_custom_resources(gadgets: ManifestValidator) -> None:
    # kube-openapi applies formats to strings only; the bound here is the schema's maximum, not int32.
    [(_, path, message)] = issues_for(gadgets, "count: 3000000000")
    assert path == ("spec", "count") and "less than or equal to 10" in message


def test_unknown_fields_are_errors_unless_preserved(gadgets: ManifestValidator) -> None:
    found = issues_for(gadgets, "colour: red\nempty: {x: 1}\nrules: [{key: a, vaule: b}]")
    assert sorted((k, p) for k, p, _ in found) == [
        ("unknown-field", ("spec", "colour")),
        ("unknown-field", ("spec", "empty", "x")),
        ("unknown-field", ("spec", "rules", 0, "vaule")),
    ]
    messages = {p[-1]: m for _, p, m in found}
    assert 'did you mean "value"' in messages["vaule"]
    assert "accepts no fields" in messages["x"]


def test_metadata_is_object_meta(gadgets: ManifestValidator) -> None:
    text = GADGET.replace(
        "metadata: {name: g, namespace: ns}",
        "metadata: {name: g, namespace: ns, labels: {canary: true}, owner: me}",
    )
    found = sorted((i.kind, i.path) for i in gadgets.validate(doc_of(text)))
    assert found == [("invalid", ("metadata", "labels", "canary")), ("unknown-field", ("metadata", "owner"))]


def test_status_is_ignored_when_the_status_subresource_resets_it(gadgets: ManifestValidator) -> None:
    text = GADGET + "status: {ready: maybe, bogus: 1}\n"
    assert gadgets.validate(doc_of(text)) == []


def test_unserved_and_unknown_versions_are_missing_schemas(gadgets: ManifestValidator) -> None:
    for version in ("v0", "v2"):
        [issue] = gadgets.validate(doc_of(GADGET.replace("example.com/v1", f"example.com/{version}")))
        assert issue.kind == "missing-schema"
        assert f"does not serve version '{version}' (served: v1)" in issue.message


def test_scope_of(gadgets: ManifestValidator, validator: ManifestValidator) -> None:
    assert gadgets.scope_of("example.com", "Gadget") is False
    assert gadgets.scope_of("example.com", "Gizmo") is None
    assert validator.scope_of("karpenter.sh", "NodePool") is True
    assert validator.scope_of("keda.sh", "ScaledObject") is False
    assert validator.scope_of("", "Deployment") is None
