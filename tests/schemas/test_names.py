"""Object names as the API server checks them (apimachinery ValidateObjectMeta and each kind's name function)."""

from __future__ import annotations

import json

from gpu_policy.schemas.names import name_issues
from gpu_policy.schemas.validator import ManifestValidator
from tests.schemas.conftest import doc_of, failures


def _named(kind: str, name: str, api_version: str = "v1", namespace: str | None = None) -> list[str]:
    meta = {"name": name, **({"namespace": namespace} if namespace is not None else {})}
    doc = doc_of(json.dumps({"apiVersion": api_version, "kind": kind, "metadata": meta}))
    return [f"{'.'.join(str(p) for p in i.path)}: {i.message}" for i in name_issues(doc)]


def test_control_characters_and_workflow_commands_fail_and_are_shown_escaped() -> None:
    for name in ("bad\nname", "esc\x1b[31mred", "x::error::title=pwned", "Upper", "under_score", "-lead", "trail-"):
        found = _named("ConfigMap", name)
        assert len(found) == 1 and found[0].startswith("metadata.name: metadata.name "), name
        assert "\n" not in found[0] and "\x1b" not in found[0], name
    assert _named("ConfigMap", "bad\nname")[0].startswith('metadata.name: metadata.name "bad\\nname" of a ConfigMap')


def test_most_kinds_take_a_dns_subdomain() -> None:
    assert _named("ConfigMap", "model.config-1") == []
    assert _named("Deployment", "vllm.llama-3", "apps/v1") == []
    assert _named("NodePool", "gpu.pool", "karpenter.sh/v1") == []  # custom resources too
    assert _named("ConfigMap", "a" * 253) == [] and len(_named("ConfigMap", "a" * 254)) == 1


def test_services_namespaces_and_rbac_have_their_own_name_rules() -> None:
    assert "RFC 1035 label" in _named("Service", "8000-vllm")[0]  # must start with a letter
    assert _named("Service", "vllm-8000") == []
    assert len(_named("Service", "vllm.api")) == 1  # a label has no dots
    assert "RFC 1123 label" in _named("Namespace", "team.a")[0]
    assert _named("ClusterRole", "system:gpu-reader", "rbac.authorization.k8s.io/v1") == []  # path segment
    assert "may not contain '/'" in _named("ClusterRole", "a/b", "rbac.authorization.k8s.io/v1")[0]
    assert "RFC 1123 label" in _named("ConfigMap", "c", namespace="Team_A")[0]


def test_generate_name_prefix_may_end_with_a_dash() -> None:
    doc = doc_of("apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: warmup-}\n")
    assert name_issues(doc) == []
    bad = doc_of("apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: Warmup-}\n")
    assert [i.path for i in name_issues(bad)] == [("metadata", "generateName")]


def test_the_validator_reports_names_as_invalid(validator: ManifestValidator) -> None:
    doc = doc_of('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "a\\u001b[2J", namespace: ns}\ndata: {k: v}\n')
    issues = failures(validator.validate(doc))
    assert [(i.kind, i.path) for i in issues] == [("invalid", ("metadata", "name"))]
