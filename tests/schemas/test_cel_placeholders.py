"""crd-cel-rules-hold on templated files: a placeholder hides a CEL failure only when the rule reads it."""

from __future__ import annotations

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.schema import crd_cel_rules_hold
from gpu_policy.schemas.crd_schema import rule_reads
from gpu_policy.schemas.validator import ManifestValidator
from tests.schemas.conftest import SHARED_CRDS, doc_of

# amiFamily AL2 with an AL2023 alias: Karpenter's EC2NodeClass CEL rule refuses it ("if set, amiFamily must be
# 'AL2023' or 'Custom' when using an AL2023 alias"); the role is a Terraform/envsubst placeholder the rule never reads
NODECLASS = """
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: gpu}
spec:
  role: KarpenterNodeRole-${CLUSTER_NAME}
  amiFamily: AMI_FAMILY
  amiSelectorTerms: [{alias: al2023@latest}]
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: "${CLUSTER_NAME}"}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: "${CLUSTER_NAME}"}}]
"""


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    return ManifestValidator("1.33", [SHARED_CRDS], use_cache=False)


def _cel(validator: ManifestValidator, text: str) -> list[tuple[str, str]]:
    ctx = CheckContext(graph=ResourceGraph([doc_of(text)]), policy=PolicySet.defaults(),
                       options={"schema_validator": validator})
    return [(v.doc.ref if v.doc else "", v.message) for v in crd_cel_rules_hold(ctx)]


def test_a_placeholder_elsewhere_in_the_object_does_not_hide_the_rule(validator: ManifestValidator) -> None:
    found = _cel(validator, NODECLASS.replace("AMI_FAMILY", "AL2"))
    assert len(found) == 1
    ref, message = found[0]
    assert ref == "EC2NodeClass/gpu" and "amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias" in message


def test_a_placeholder_in_a_field_the_rule_reads_hides_it(validator: ManifestValidator) -> None:
    assert _cel(validator, NODECLASS.replace("AMI_FAMILY", '"${AMI_FAMILY}"')) == []


def test_the_same_object_rendered_right_passes(validator: ManifestValidator) -> None:
    assert _cel(validator, NODECLASS.replace("AMI_FAMILY", "AL2023")) == []


@pytest.mark.parametrize(("expression", "reads"), [
    ("!has(self.amiFamily) || self.amiSelectorTerms.exists(x, has(x.alias))", ("amiFamily", "amiSelectorTerms")),
    ("self == oldSelf", None),
    ("self.size() <= 3", None),
    ("size(self) > 0", None),
    ("self.all(k, k != 'x')", None),
    ("has(self.consolidateAfter) && self.consolidateAfter != 'Never'", ("consolidateAfter",)),
])
def test_which_fields_a_rule_reads(expression: str, reads: tuple[str, ...] | None) -> None:
    assert rule_reads(expression) == reads
