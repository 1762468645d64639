"""schema-known: which schema-less objects fail and which are listed as not checked (rules/schema.py)."""

from __future__ import annotations

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.schema import schema_known, schema_notes, schema_valid
from gpu_policy.schemas.validator import ManifestValidator
from tests.schemas.conftest import SHARED_CRDS, doc_of


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    """This module's own validator: the CRD schemas it compiles stay out of the session validator, whose CEL test
    counts the rules of the schemas compiled so far."""
    return ManifestValidator("1.33", [SHARED_CRDS], use_cache=False)

AUTO_MODE = "apiVersion: eks.amazonaws.com/v1\nkind: NodeClass\nmetadata: {name: gpu}\nspec: {role: R}\n"
UNKNOWN_PRODUCT = "apiVersion: widgets.example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: ns}\n"
KARPENTER_TYPO = "apiVersion: karpenter.sh/v1\nkind: NodePools\nmetadata: {name: gpu}\n"
CORE_TYPO = "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: d, namespace: ns}\n"
SERVED_NOT_BUNDLED = (
    "apiVersion: monitoring.coreos.com/v1beta1\nkind: AlertmanagerConfig\nmetadata: {name: a, namespace: ns}\n"
)
PROVISIONER = "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: gpu}\n"


def _run(validator: ManifestValidator, text: str, *, complete: bool = False, ignore: bool = False
         ) -> tuple[list[str], list[str]]:
    doc = doc_of(text)
    ctx = CheckContext(graph=ResourceGraph([doc]), policy=PolicySet.defaults(), complete=complete,
                       options={"schema_validator": validator, "ignore_missing_schemas": ignore})
    return [v.message for v in schema_known(ctx)], [issue.message for _, issue in schema_notes(ctx)]


def test_auto_mode_nodeclass_is_not_checked_in_a_partial_set(validator: ManifestValidator) -> None:
    failed, notes = _run(validator, AUTO_MODE)
    assert failed == []
    assert notes == ["no schema for NodeClass in eks.amazonaws.com/v1 (EKS Auto Mode; not bundled): not checked"]


def test_subgroups_of_a_known_product_are_named(validator: ManifestValidator) -> None:
    text = "apiVersion: s3.services.k8s.aws/v1alpha1\nkind: Bucket\nmetadata: {name: models, namespace: ns}\n"
    assert _run(validator, text)[1] == [
        "no schema for Bucket in s3.services.k8s.aws/v1alpha1 (AWS Controllers for Kubernetes; not bundled): "
        "not checked"
    ]


def test_another_products_kind_is_not_checked_in_a_partial_set_and_fails_a_complete_one(
    validator: ManifestValidator,
) -> None:
    failed, notes = _run(validator, UNKNOWN_PRODUCT)
    assert failed == [] and len(notes) == 1 and "no CRD for widgets.example.com" in notes[0]
    failed, notes = _run(validator, UNKNOWN_PRODUCT, complete=True)
    assert len(failed) == 1 and failed[0].startswith("no schema for Widget in widgets.example.com/v1") and notes == []
    failed, notes = _run(validator, AUTO_MODE, complete=True)
    assert len(failed) == 1 and notes == []


def test_an_unknown_kind_in_a_group_the_suite_knows_fails_even_in_a_partial_set(
    validator: ManifestValidator,
) -> None:
    failed, _ = _run(validator, KARPENTER_TYPO)
    assert len(failed) == 1 and 'did you mean kind "NodePool"?' in failed[0]
    failed, _ = _run(validator, CORE_TYPO)
    assert len(failed) == 1 and 'did you mean kind "Deployment"?' in failed[0]


def test_a_served_version_whose_crd_is_not_bundled_is_not_checked(validator: ManifestValidator) -> None:
    failed, notes = _run(validator, SERVED_NOT_BUNDLED, complete=True)
    assert failed == [] and notes == [
        "no schema for AlertmanagerConfig in monitoring.coreos.com/v1beta1 (Prometheus Operator serves it; its CRD "
        "is not bundled): not checked"
    ]


def test_ignore_missing_schemas_still_lists_everything_as_not_checked(validator: ManifestValidator) -> None:
    for text in (KARPENTER_TYPO, UNKNOWN_PRODUCT):
        failed, notes = _run(validator, text, complete=True, ignore=True)
        assert failed == [] and len(notes) == 1


def test_an_object_at_a_removed_api_is_left_to_api_not_removed(validator: ManifestValidator) -> None:
    failed, notes = _run(validator, PROVISIONER, complete=True)
    assert failed == [] and notes == []


def test_schema_findings_on_a_placeholder_value_are_left_to_the_template_rule(validator: ManifestValidator) -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: ns}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: c, image: "i:1"}]}
"""

    def ctx_of(value: str) -> CheckContext:
        return CheckContext(graph=ResourceGraph([doc_of(text.replace("REPLICAS", value))]),
                            policy=PolicySet.defaults(), options={"schema_validator": validator})

    assert [v.path for v in schema_valid(ctx_of('"${REPLICAS}"'))] == []
    assert [v.path for v in schema_valid(ctx_of('"three"'))] == [("spec", "replicas")]
