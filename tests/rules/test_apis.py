"""Removed and deprecated API versions: the data, the verdict per cluster version, and that only the api rules
judge an object at a removed API (engine end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.engine import RunOptions, run_engine
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.apis import api_status, lifecycle_data, removed_documents, version_tuple
from tests.rules._helpers import run_rule

SHARED_CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "crds"


def _doc(api_version: str, kind: str, name: str = "x") -> object:
    text = f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}}}\n"
    return to_documents(text, "x.yaml")[0][0]


def _policy(**cluster: str) -> PolicySet:
    return PolicySet.layered([("test", {"cluster": dict(cluster)}, {})])


def test_versions_compare_as_releases() -> None:
    assert version_tuple("1.33") > version_tuple("1.26") > version_tuple("1.9")
    assert version_tuple("v1.14.1") > version_tuple("1.1.0") == version_tuple("1.1")
    assert version_tuple("0.33.0") > version_tuple("0.32.9")
    assert version_tuple("2.0.0-rc.1") == version_tuple("2")


def test_every_entry_is_complete_and_removal_follows_deprecation() -> None:
    data = lifecycle_data()
    assert len(data.apis) > 40
    for (api_version, kind), life in data.apis.items():
        assert life.component in data.components, api_version
        assert version_tuple(life.deprecated) <= version_tuple(life.removed), (api_version, kind)
        assert life.docs and all(d.startswith("https://") for d in life.docs), (api_version, kind)
    # the well-known ones, as the upstream guides state them
    assert data.apis[("autoscaling/v2beta2", "HorizontalPodAutoscaler")].removed == "1.26"
    assert data.apis[("autoscaling/v2beta1", "HorizontalPodAutoscaler")].removed == "1.25"
    assert data.apis[("policy/v1beta1", "PodDisruptionBudget")].removed == "1.25"
    assert data.apis[("batch/v1beta1", "CronJob")].removed == "1.25"
    assert data.apis[("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema")].removed == "1.32"
    assert data.apis[("karpenter.sh/v1alpha5", "Provisioner")].removed == "0.33.0"
    assert data.apis[("karpenter.sh/v1beta1", "NodePool")].removed == "1.1.0"
    assert data.apis[("keda.k8s.io/v1alpha1", "ScaledObject")].removed == "2.0.0"
    assert data.apis[("policy/v1beta1", "PodSecurityPolicy")].replacement is None


def test_status_depends_on_the_version_the_cluster_runs() -> None:
    hpa = _doc("autoscaling/v2beta2", "HorizontalPodAutoscaler")
    assert api_status(hpa, _policy(kubernetesVersion="1.22")) is None  # not yet deprecated
    deprecated = api_status(hpa, _policy(kubernetesVersion="1.24"))
    assert deprecated is not None and not deprecated.removed and deprecated.judged_elsewhere
    removed = api_status(hpa, _policy(kubernetesVersion="1.26"))
    assert removed is not None and removed.removed and not removed.judged_elsewhere
    nodepool = _doc("karpenter.sh/v1beta1", "NodePool")
    on_1_0 = api_status(nodepool, _policy(karpenterVersion="1.0.8"))
    assert on_1_0 is not None and not on_1_0.removed and not on_1_0.judged_elsewhere  # v1 rules do not read v1beta1


def test_current_apis_and_other_kinds_of_an_old_group_version_are_untouched() -> None:
    policy = PolicySet.defaults()
    for api_version, kind in (("autoscaling/v2", "HorizontalPodAutoscaler"), ("karpenter.sh/v1", "NodePool"),
                              ("keda.sh/v1alpha1", "ScaledObject"), ("karpenter.sh/v1alpha1", "NodeOverlay"),
                              ("networking.k8s.io/v1beta1", "ServiceCIDR"),  # served beta since 1.31
                              ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")):
        assert api_status(_doc(api_version, kind), policy) is None, (api_version, kind)


def test_removed_documents_are_named_by_id() -> None:
    docs = [_doc("karpenter.sh/v1alpha5", "Provisioner"), _doc("karpenter.sh/v1", "NodePool")]
    assert removed_documents(docs, PolicySet.defaults()) == {id(docs[0])}


def test_messages_name_the_removal_the_cluster_version_and_the_migration() -> None:
    found = run_rule("api-not-removed", "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: c, namespace: b}\n")
    assert found == [(
        "CronJob/b/c",
        "CronJob is apiVersion batch/v1beta1, removed in Kubernetes 1.25 (cluster runs Kubernetes 1.33, per "
        f"kubernetesVersion in {Path(__file__).resolve().parents[2] / 'policies' / 'cluster.yaml'}); migrate to "
        "batch/v1 CronJob (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#cronjob-v125)",
    )]
    psp = run_rule("api-not-removed", "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata: {name: p}\n")
    assert "PodSecurityPolicy has no replacement API; remove it" in psp[0][1]
    old_cluster = _policy(kubernetesVersion="1.24")
    text = "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h, namespace: n}\n"
    assert run_rule("api-not-removed", text, old_cluster) == []
    warned = run_rule("api-not-deprecated", text, old_cluster)
    assert len(warned) == 1 and "deprecated since Kubernetes 1.23 and removed in 1.26" in warned[0][1]


@pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="needs the pinned CRDs beside the repository")
def test_an_object_at_a_removed_api_is_judged_by_that_rule_only(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text("""
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: gpu}
spec:
  requirements: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [g5]}]
  providerRef: {name: gpu}
---
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: vllm, namespace: inference}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 1
  maxReplicas: 4
""")
    result = run_engine(RunOptions(paths=[str(tmp_path)], crd_paths=[SHARED_CRDS], use_crd_cache=False,
                                   profile="reference", complete=True))
    assert sorted((f.rule_id, f.resource) for f in result.findings) == [
        ("api-not-removed", "HorizontalPodAutoscaler/inference/vllm"),
        ("api-not-removed", "Provisioner/gpu"),
    ]
    assert result.graph.documents == []  # the graph other rules read holds neither
    assert result.not_checked == []
