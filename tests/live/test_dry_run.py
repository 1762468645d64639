"""Server-side dry run: the API server's own validation speaks for each manifest, and nothing is persisted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gpu_policy.live.dryrun import dry_run
from gpu_policy.loading.loader import load_manifests
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed import cluster

pytestmark = pytest.mark.testbed


def test_the_reference_manifests_pass_the_api_servers_dry_run(
    kubeconfig: Path, reference_applied: list[dict[str, Any]]
) -> None:
    """Applied once (namespaces exist: a dry-run Namespace creates none), every reference object dry-runs clean."""
    load = load_manifests([str(reference_manifests_dir())])
    outcomes = dry_run(load.documents, kubeconfig)
    assert len(outcomes) == len(load.documents) > 20
    assert [(o.document.ref, o.message) for o in outcomes if not o.accepted] == []


def test_a_namespaced_object_of_a_missing_namespace_is_rejected_as_not_found(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n")
    [outcome] = dry_run(load_manifests([str(manifest)]).documents, kubeconfig)
    assert (outcome.accepted, outcome.status) == (False, 404)
    assert 'namespaces "nowhere" not found' in outcome.message


def test_a_nodepool_the_crd_schema_rejects_is_reported_with_the_field(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "nodepool.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "broken"},
        "spec": {"disruption": {"consolidationPolicy": "Sometimes", "consolidateAfter": "30s"},
                 "template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu-nodeclass"}, "requirements": []}}},
    }))  # fmt: skip
    [outcome] = dry_run(load_manifests([str(manifest)]).documents, kubeconfig)
    assert not outcome.accepted and outcome.status == 422
    assert "spec.disruption.consolidationPolicy" in outcome.message and "Sometimes" in outcome.message


def test_an_accepted_dry_run_persists_nothing(kubeconfig: Path, tmp_path: Path, testbed: cluster.State) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry-only, namespace: default}\n")
    [outcome] = dry_run(load_manifests([str(manifest)]).documents, kubeconfig)
    assert outcome.accepted, outcome.message
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        names = {cm.metadata.name for cm in k8s.CoreV1Api(api).list_namespaced_config_map("default").items}
    finally:
        api.close()
    assert "dry-only" not in names
