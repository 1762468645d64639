"""Core kinds against kubernetes-validate's strict schemas, compiled once per version."""

from __future__ import annotations

import json

import jsonschema
import pytest
from referencing import Registry, Resource

from gpu_policy.errors import SchemaSourceError
from gpu_policy.schemas.core import core_schemas, resolve_version, schema_file_name
from gpu_policy.schemas.validator import ManifestValidator

from .conftest import doc_of

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 8080}]
          resources: {requests: {cpu: 100m, memory: 64Mi, nvidia.com/gpu: 1}, limits: {memory: 64Mi}}
"""


def _with(replace: str, by: str) -> str:
    assert replace in DEPLOYMENT
    return DEPLOYMENT.replace(replace, by)


def test_valid_deployment_has_no_issue(validator: ManifestValidator) -> None:
    assert validator.validate(doc_of(DEPLOYMENT)) == []


def test_string_where_integer_is_a_type_error_at_its_path(validator: ManifestValidator) -> None:
    doc = doc_of(_with("replicas: 2", 'replicas: "2"'))
    [issue] = validator.validate(doc)
    assert (issue.kind, issue.path) == ("invalid", ("spec", "replicas"))
    assert 'must be of type integer, got string "2"' in issue.message
    assert doc.line_of(issue.path) == 8


def test_unquoted_true_label_is_a_type_error_on_the_label(validator: ManifestValidator) -> None:
    doc = doc_of(_with("labels: {app: web}\nspec", "labels: {app: web, canary: true}\nspec"))
    [issue] = validator.validate(doc)
    assert issue.kind == "invalid" and issue.path == ("metadata", "labels", "canary")
    assert "must be of type string, got boolean true" in issue.message and "quote" in issue.message
    assert doc.line_of(issue.path) == 6


def test_unknown_field_is_reported_with_its_full_path_and_a_suggestion(validator: ManifestValidator) -> None:
    doc = doc_of(
        _with(
            "          image: nginx:1.27", "          image: nginx:1.27\n          imagePullPolicyy: Always"
        )
    )
    [issue] = validator.validate(doc)
    assert issue.kind == "unknown-field"
    assert issue.path == ("spec", "template", "spec", "containers", 0, "imagePullPolicyy")
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in issue.message
    assert 'did you mean "imagePullPolicy"' in issue.message


def test_all_errors_of_a_document_are_reported(validator: ManifestValidator) -> None:
    text = _with("replicas: 2", 'replicas: "2"\n  paused: maybe')
    text = text.replace("containerPort: 8080", "containerPort: 3000000000")
    text = text.replace("memory: 64Mi}}", "memory: 64Gx}}").replace("type: RollingUpdate", "type: 5")
    issues = validator.validate(doc_of(text))
    got = {(i.path[-1], i.kind) for i in issues}
    assert got == {
        ("replicas", "invalid"),
        ("paused", "invalid"),
        ("containerPort", "invalid"),
        ("memory", "invalid"),
        ("type", "invalid"),
    }
    by_field = {i.path[-1]: i.message for i in issues}
    assert "out of range for int32" in by_field["containerPort"]
    assert "quantities must match" in by_field["memory"]
    assert "must be of type string, got integer 5" in by_field["type"]


def test_int_or_string_accepts_both_and_refuses_a_boolean(validator: ManifestValidator) -> None:
    assert validator.validate(doc_of(_with("maxSurge: 1", 'maxSurge: "50%"'))) == []
    [issue] = validator.validate(doc_of(_with("maxSurge: 1", "maxSurge: true")))
    assert issue.path[-1] == "maxSurge" and "integer or string" in issue.message


def test_required_field_missing(validator: ManifestValidator) -> None:
    [issue] = validator.validate(doc_of(_with("- name: web\n          image", "- image")))
    assert issue.path == ("spec", "template", "spec", "containers", 0, "name")
    assert "Required value" in issue.message


def test_null_is_accepted_where_kubernetes_accepts_it(validator: ManifestValidator) -> None:
    assert validator.validate(doc_of(_with("replicas: 2", "replicas: null"))) == []


def test_group_that_only_looks_like_a_core_group_is_not_validated_as_core(
    validator: ManifestValidator,
) -> None:
    # kubernetes-validate's file naming maps apps.example.com/v1 to apps-v1: the GVK check refuses that.
    doc = doc_of(DEPLOYMENT.replace("apps/v1", "apps.example.com/v1"))
    [issue] = validator.validate(doc)
    assert issue.kind == "missing-schema" and "apps.example.com/v1" in issue.message


def test_removed_api_version_names_where_the_kind_lives(validator: ManifestValidator) -> None:
    [issue] = validator.validate(doc_of(DEPLOYMENT.replace("apps/v1", "extensions/v1beta1")))
    assert issue.kind == "missing-schema" and "served as apiVersion apps/v1" in issue.message


def test_misspelt_kind_gets_a_suggestion(validator: ManifestValidator) -> None:
    [issue] = validator.validate(doc_of(DEPLOYMENT.replace("kind: Deployment", "kind: Deploymnet")))
    assert issue.kind == "missing-schema" and 'did you mean kind "Deployment"' in issue.message
    assert issue.path == ("kind",)


def test_version_resolution_is_numeric() -> None:
    assert resolve_version("1.33") == (1, 33)
    assert resolve_version("v1.33.4") == (1, 33)
    with pytest.raises(SchemaSourceError, match=r"no schemas for Kubernetes 1\.99"):
        resolve_version("1.99")
    with pytest.raises(SchemaSourceError, match=r"no schemas for Kubernetes 1\.4 "):
        resolve_version("1.4")  # as text "1.4" > "1.33"; as a version it is older than every bundled one


def test_schema_file_name_follows_kubernetes_validate() -> None:
    assert schema_file_name("Deployment", "apps/v1") == "deployment-apps-v1.json"
    assert schema_file_name("ClusterRole", "rbac.authorization.k8s.io/v1") == "clusterrole-rbac-v1.json"
    assert schema_file_name("Pod", "v1") == "pod-v1.json"


def test_definitions_are_compiled_once_and_shared() -> None:
    schemas = core_schemas((1, 33))
    assert core_schemas((1, 33)) is schemas
    deployment = schemas.for_kind("apps/v1", "Deployment")
    stateful = schemas.for_kind("apps/v1", "StatefulSet")
    assert deployment is not None and stateful is not None
    assert deployment.properties["metadata"] is stateful.properties["metadata"] is schemas.object_meta()


@pytest.mark.parametrize(
    "mutation",
    [
        ("replicas: 2", 'replicas: "2"'),
        ("image: nginx:1.27", "image: nginx:1.27\n          bogus: 1"),
        ("labels: {app: web}\nspec", "labels: {app: web, on: yes}\nspec"),
        ("containerPort: 8080", "containerPort: abc"),
        ("maxSurge: 1", "maxSurge: [1]"),
        ("", ""),
    ],
)
def test_same_verdict_and_paths_as_kubernetes_validate(
    validator: ManifestValidator, mutation: tuple[str, str]
) -> None:
    """Differential check against jsonschema on the very same strict schema kubernetes-validate uses."""
    doc = doc_of(DEPLOYMENT.replace(*mutation) if mutation[0] else DEPLOYMENT)
    schemas = core_schemas((1, 33))
    schema = json.loads((schemas.directory / "deployment-apps-v1.json").read_text())
    definitions = json.loads((schemas.directory / "_definitions.json").read_text())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    reference = jsonschema.Draft202012Validator(schema, registry=registry)
    expected = sorted(tuple(e.absolute_path) for e in reference.iter_errors(doc.obj))
    ours = sorted(i.path if i.kind == "invalid" else i.path[:-1] for i in validator.validate(doc))
    assert ours == expected
