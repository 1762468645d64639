"""`gpu-policy check --live` end to end against the testbed (real kube-apiserver, controllers, scheduler, kwok nodes)
with the reference manifests applied: what passes, then one broken thing at a time, each named by rule and resource.

The testbed runs neither KEDA nor Karpenter (yet): their ScaledObjects and NodePools carry no status, which the
runtime rules report as "not reconciled". Where a test needs a controller's verdict it writes the status through
the status subresource, simulating that controller; the docstring says so.

The first test runs the `gpu-policy` script in a child process; the others call `cli.main` in this process
(tests/in_process.py), which reads the same cluster with the same code, without the child's start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gpu_policy.live.rbac import cluster_role, dry_run_guard, dry_run_role
from gpu_policy.resources import reference_manifests_dir
from gpu_policy.testbed import cluster
from tests.in_process import check_json

pytestmark = pytest.mark.testbed
CONTEXT = "gpu-policy-testbed"
#: Without KEDA and Karpenter on the testbed, these report every ScaledObject/NodePool as not reconciled.
NO_CONTROLLER_RULES = {"live-scaledobject-ready", "live-scaledobject-hpa-active", "live-nodepool-ready"}


def gpu_policy_script(*args: str, timeout: float = 240) -> tuple[int, dict[str, Any], str]:
    """`gpu-policy check --format json ARGS` in a child process, as a user runs it: (exit code, report, stderr)."""
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "gpu_policy", "check", "--format", "json", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)  # fmt: skip
    report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, report, done.stderr


#: The same in this process (tests/in_process.py): the first test runs the script end to end; the others judge what
#: a check reports, without the child's 0.75 s of interpreter and import start-up each.
gpu_policy = check_json


def failing(report: dict[str, Any], ignore: set[str] = NO_CONTROLLER_RULES) -> list[tuple[str, str, str | None]]:
    return sorted((f["rule_id"], f["resource"], f.get("file")) for f in report["findings"]
                  if f["rule_id"] not in ignore and f["severity"] == "error")  # fmt: skip


def findings_of(report: dict[str, Any], rule_id: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule_id"] == rule_id]


@pytest.fixture(scope="module")
def api(kubeconfig: Path, reference_applied: list[dict[str, Any]]) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


def _reapply(kubeconfig: Path) -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(reference_manifests_dir())], capture_output=True,
                              text=True, timeout=60, check=True).stdout  # fmt: skip
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--server-side",
                    "--field-manager=gpu-policy-test", "--force-conflicts", "-f", "-"],
                   input=rendered, capture_output=True, text=True, timeout=120, check=True)  # fmt: skip


# -- the reference set, as applied --------------------------------------------------------------------------------
def test_the_applied_reference_set_passes_static_dry_run_and_drift(api: k8s.ApiClient, kubeconfig: Path) -> None:
    code, report, err = gpu_policy_script("--live", "--kubeconfig", str(kubeconfig), str(reference_manifests_dir()))
    assert failing(report) == [], err
    ran = {s["name"]: s["status"] for s in report["scenarios"]}
    assert ran["the API server accepts the manifests"] == "passed"
    assert ran["the manifests are deployed"] == "passed"
    assert ran["the cluster holds what the manifests say"] == "passed"
    assert ran["every GPU is watched"] == "passed"  # kwok runs the exporter DaemonSet's pods Ready on each GPU node
    # Nothing runs KEDA or Karpenter on the testbed: their objects are honestly reported as never reconciled.
    unreconciled = {(f["rule_id"], f["resource"]) for f in report["findings"] if f["rule_id"] in NO_CONTROLLER_RULES}
    assert unreconciled == {
        ("live-scaledobject-ready", "ScaledObject/inference/model-a-gpu-scaler"),
        ("live-scaledobject-ready", "ScaledObject/inference/model-b-gpu-scaler"),
        ("live-scaledobject-hpa-active", "ScaledObject/inference/model-a-gpu-scaler"),
        ("live-scaledobject-hpa-active", "ScaledObject/inference/model-b-gpu-scaler"),
        ("live-nodepool-ready", "NodePool/gpu-inference-pool"),
        ("live-nodepool-ready", "NodePool/gpu-spot-pool"),
    }
    assert all(f["file"] == f"cluster {CONTEXT}" for f in report["findings"] if f["rule_id"] in NO_CONTROLLER_RULES)
    assert code == 1
    assert "gpu-policy: dry-running" in err and f"from cluster {CONTEXT}" in err  # progress on stderr


def test_without_manifests_the_static_scenarios_judge_the_cluster(api: k8s.ApiClient, kubeconfig: Path) -> None:
    code, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), "--live-namespace", "inference",
                                   "--live-namespace", "gpu-monitoring")  # fmt: skip
    assert report, err
    assert report["sources"] == [f"cluster {CONTEXT}"]
    ran = {s["name"]: s for s in report["scenarios"]}
    assert ran["the API server accepts the manifests"]["status"] == "skipped"
    assert "needs manifests beside --live" in ran["the API server accepts the manifests"]["message"]
    # spec.replicas is defaulted on every live Deployment: that Git-side rule needs the manifests
    assert ran["Git does not fight the autoscaler"]["status"] == "skipped"
    assert "judges manifests, not a cluster's objects" in ran["Git does not fight the autoscaler"]["message"]
    assert ran["the autoscaler's target exists"]["status"] == "passed"
    assert ran["every GPU is watched"]["status"] == "passed"
    # the deployed reference set passes the static rules; only the controller-less runtime findings remain
    assert (code, failing(report)) == (1, [])
    assert {f["rule_id"] for f in report["findings"]} == NO_CONTROLLER_RULES
    # every finding names the live object, never a file
    assert all(f["file"] == f"cluster {CONTEXT}" for f in report["findings"])


# -- one broken thing at a time -----------------------------------------------------------------------------------
def test_a_live_edit_is_drift_at_the_manifests_line(api: k8s.ApiClient, kubeconfig: Path) -> None:
    custom = k8s.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object(
        "keda.sh", "v1alpha1", "inference", "scaledobjects", "model-a-gpu-scaler", {"spec": {"maxReplicaCount": 40}}
    )
    try:
        _, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), str(reference_manifests_dir()))
    finally:
        _reapply(kubeconfig)
    assert failing(report) == [
        ("live-object-matches-manifest", "ScaledObject/inference/model-a-gpu-scaler",
         str(reference_manifests_dir() / "inference" / "model-a.yaml")),
    ], err
    [finding] = findings_of(report, "live-object-matches-manifest")
    assert finding["path"] == "spec.maxReplicaCount"
    assert finding["line"] == 176  # `maxReplicaCount: 10` in manifests/inference/model-a.yaml
    assert finding["message"] == ("differs in cluster gpu-policy-testbed: spec.maxReplicaCount is 40 there, 10 in "
                                  "the manifest")
    assert finding["details"] == ["spec.maxReplicaCount: cluster 40, manifest 10"]


def test_a_deleted_object_is_missing(api: k8s.ApiClient, kubeconfig: Path) -> None:
    k8s.PolicyV1Api(api).delete_namespaced_pod_disruption_budget("model-b-serving", "inference")
    try:
        _, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), str(reference_manifests_dir()))
    finally:
        _reapply(kubeconfig)
    assert failing(report) == [
        ("live-object-exists", "PodDisruptionBudget/inference/model-b-serving",
         str(reference_manifests_dir() / "inference" / "model-b.yaml")),
    ], err


def _wait_rejected(kubeconfig: Path, manifest: Path, message: str) -> None:
    """Until a server-side dry run of `manifest` is denied with the policy's `message`: another error (a kubectl or
    API hiccup) is not the policy in force, and a check run after it could still be admitted."""
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--server-side",
                               "--dry-run=server", "-f", str(manifest)], capture_output=True, text=True, timeout=30)
        last = done.stderr
        if done.returncode != 0 and message in done.stderr:
            return
        time.sleep(1)
    raise AssertionError(f"the admission policy never took effect; kubectl said: {last[-2000:]}")


def test_an_admission_policy_rejection_is_a_dry_run_finding(
    api: k8s.ApiClient, kubeconfig: Path, tmp_path: Path
) -> None:
    """The cluster's own admission (here a ValidatingAdmissionPolicy capping maxReplicaCount at 8) speaks through
    the dry run: the static suite cannot know this cluster's policies."""
    admission = k8s.AdmissionregistrationV1Api(api)
    admission.create_validating_admission_policy({
        "metadata": {"name": "max-replicas-8"},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["keda.sh"], "apiVersions": ["*"],
                                                         "operations": ["CREATE", "UPDATE"],
                                                         "resources": ["scaledobjects"]}]},
                 "validations": [{"expression": "object.spec.maxReplicaCount <= 8",
                                  "message": "maxReplicaCount above 8 needs a capacity review"}]},
    })  # fmt: skip
    admission.create_validating_admission_policy_binding({
        "metadata": {"name": "max-replicas-8"},
        "spec": {"policyName": "max-replicas-8", "validationActions": ["Deny"]},
    })
    try:
        _wait_rejected(kubeconfig, reference_manifests_dir() / "inference" / "model-a.yaml",
                       "maxReplicaCount above 8 needs a capacity review")
        _, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), str(reference_manifests_dir()))
    finally:
        admission.delete_validating_admission_policy_binding("max-replicas-8")
        admission.delete_validating_admission_policy("max-replicas-8")
    rejected = failing(report)
    assert ("live-dry-run-accepted", "ScaledObject/inference/model-a-gpu-scaler",
            str(reference_manifests_dir() / "inference" / "model-a.yaml")) in rejected, err
    assert {rule for rule, _, _ in rejected} == {"live-dry-run-accepted"}
    [finding] = [f for f in findings_of(report, "live-dry-run-accepted")
                 if f["resource"] == "ScaledObject/inference/model-a-gpu-scaler"]
    assert "maxReplicaCount above 8 needs a capacity review" in finding["message"]
    assert finding["line"] == 160  # the document's first line (`apiVersion: keda.sh/v1alpha1`)


def test_a_gpu_node_the_exporter_does_not_reach_is_named(api: k8s.ApiClient, kubeconfig: Path) -> None:
    """A kwok GPU node with a taint the exporter DaemonSet does not tolerate: the scheduler places no exporter pod."""
    core = k8s.CoreV1Api(api)
    core.create_node({
        "metadata": {"name": "kwok-gpu-quarantined", "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia", "kubernetes.io/os": "linux"}},
        "spec": {"taints": [{"key": "example.com/quarantine", "value": "true", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"},
                   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"}},
    })  # fmt: skip
    try:
        time.sleep(3)  # let the DaemonSet controller and the scheduler see the node (they place nothing)
        _, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), "--only", "@live")
    finally:
        core.delete_node("kwok-gpu-quarantined")
    [finding] = findings_of(report, "live-gpu-node-runs-exporter")
    assert (finding["resource"], finding["file"]) == ("Node/kwok-gpu-quarantined", f"cluster {CONTEXT}"), err
    assert finding["message"] == "GPU node (1 nvidia.com/gpu) runs no DCGM exporter pod"


def test_a_nodepool_whose_node_class_is_missing_is_not_ready(api: k8s.ApiClient, kubeconfig: Path) -> None:
    """The status is written through the status subresource exactly as Karpenter's nodepool.readiness controller
    writes it for a missing node class (NodeClassReady False, NodeClassNotFound; Ready False): this simulates the
    controller, which the testbed does not run yet, to test the rule against a real API server's objects."""
    custom = k8s.CustomObjectsApi(api)
    pool = {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "orphan-pool"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "no-such-class"}, "requirements": []}}},
    }  # fmt: skip
    custom.create_cluster_custom_object("karpenter.sh", "v1", "nodepools", pool)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = [
        {"type": "ValidationSucceeded", "status": "True", "reason": "ValidationSucceeded", "message": "",
         "lastTransitionTime": now},
        {"type": "NodeClassReady", "status": "False", "reason": "NodeClassNotFound",
         "message": "NodeClass not found on cluster", "lastTransitionTime": now},
        {"type": "Ready", "status": "False", "reason": "UnhealthyDependents", "message": "NodeClassReady=False",
         "lastTransitionTime": now},
    ]  # fmt: skip
    custom.patch_cluster_custom_object_status("karpenter.sh", "v1", "nodepools", "orphan-pool",
                                              {"status": {"conditions": conditions}})  # fmt: skip
    try:
        _, report, err = gpu_policy("--live", "--kubeconfig", str(kubeconfig), "--only", "live-nodepool-ready")
    finally:
        custom.delete_cluster_custom_object("karpenter.sh", "v1", "nodepools", "orphan-pool")
    [finding] = [f for f in findings_of(report, "live-nodepool-ready") if f["resource"] == "NodePool/orphan-pool"]
    assert finding["message"] == (
        "NodePool is not Ready: NodeClassReady False (NodeClassNotFound: NodeClass not found on cluster)"
    ), err
    assert finding["file"] == f"cluster {CONTEXT}"


# -- read-only, least privilege ----------------------------------------------------------------------------------
def _service_account(api: k8s.ApiClient, name: str, roles: list[dict[str, Any]]) -> str:
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account("default", {"metadata": {"name": name}})
    for index, role in enumerate(roles):
        role_name = f"{name}-{index}"
        rbac.create_cluster_role({**role, "metadata": {"name": role_name}})
        rbac.create_cluster_role_binding({
            "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        })  # fmt: skip
    request = core.create_namespaced_service_account_token(name, "default", {"spec": {"expirationSeconds": 600}})
    return str(request.status.token)


def _as(testbed: cluster.State, token: str, folder: Path) -> Path:
    config: dict[str, Any] = yaml.safe_load(testbed.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path = folder / "runner.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_shipped_roles_are_enough_and_the_guard_allows_dry_runs_only(
    api: k8s.ApiClient, testbed: cluster.State, kubeconfig: Path, tmp_path: Path
) -> None:
    token = _service_account(api, "gpu-policy-runner", [cluster_role(), dry_run_role()])
    admission = k8s.AdmissionregistrationV1Api(api)
    policy, binding = dry_run_guard("system:serviceaccount:default:gpu-policy-runner")
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    runner = _as(testbed, token, tmp_path)
    manifest = reference_manifests_dir() / "priorityclasses.yaml"
    try:
        deadline = time.monotonic() + 30
        while True:  # the guard is in force once a real (non-dry-run) apply by the runner is denied
            denied = subprocess.run(["kubectl", "--kubeconfig", str(runner), "apply", "--server-side",
                                     "--force-conflicts", "--field-manager=intruder", "-f", str(manifest)],
                                    capture_output=True, text=True, timeout=30)  # fmt: skip
            if "may only dry-run" in denied.stderr or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert denied.returncode != 0 and "may only dry-run" in denied.stderr, denied.stderr
        _, as_admin, _ = gpu_policy("--live", "--kubeconfig", str(kubeconfig), str(reference_manifests_dir()))
        code, as_runner, err = gpu_policy("--live", "--kubeconfig", str(runner), str(reference_manifests_dir()))
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])
    assert code == 1, err  # the controller-less KEDA/Karpenter findings only, as for the admin
    strip = [(f["rule_id"], f["resource"], f["message"]) for f in as_runner["findings"]]
    assert strip == [(f["rule_id"], f["resource"], f["message"]) for f in as_admin["findings"]]
    assert failing(as_runner) == []


def test_a_missing_permission_is_one_line_and_exit_2(
    api: k8s.ApiClient, testbed: cluster.State, tmp_path: Path
) -> None:
    role = cluster_role()
    rules = [{**r, "resources": [x for x in r["resources"] if x != "pods"]} for r in role["rules"]]
    token = _service_account(api, "gpu-policy-no-pods", [{**role, "rules": rules}])
    code, _, err = gpu_policy("--live", "--kubeconfig", str(_as(testbed, token, tmp_path)))
    errors = [line for line in err.splitlines() if line.startswith("gpu-policy: error:")]
    assert (code, errors) == (2, [
        f"gpu-policy: error: cluster {CONTEXT}: forbidden: the runner may not `list` /api/v1/pods"
        " (grant it in the ClusterRole)"
    ]), err
    assert "Traceback" not in err


def test_the_reader_alone_cannot_dry_run_and_says_which_verb(
    api: k8s.ApiClient, testbed: cluster.State, tmp_path: Path
) -> None:
    token = _service_account(api, "gpu-policy-reader-only", [cluster_role()])
    code, _, err = gpu_policy("--live", "--kubeconfig", str(_as(testbed, token, tmp_path)),
                              str(reference_manifests_dir()))  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("gpu-policy: error:")]
    assert code == 2 and len(errors) == 1, err
    assert errors[0].startswith(f"gpu-policy: error: cluster {CONTEXT}: forbidden: the runner may not `patch` /")


def test_bad_credentials_are_one_line_and_exit_2(testbed: cluster.State, tmp_path: Path) -> None:
    code, _, err = gpu_policy("--live", "--kubeconfig", str(_as(testbed, "not-a-token", tmp_path)))
    assert code == 2, err
    assert [line for line in err.splitlines() if line.startswith("gpu-policy: error:")] == [
        f"gpu-policy: error: cluster {CONTEXT} ({_server_of(testbed)}): credentials rejected (401): expired or "
        "wrong token/cert"
    ]


def _server_of(testbed: cluster.State) -> str:
    config: dict[str, Any] = yaml.safe_load(testbed.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def test_the_pytest_plugin_runs_live_too(api: k8s.ApiClient, kubeconfig: Path, tmp_path: Path) -> None:
    """`pytest --live --kubeconfig ... --manifests ...` runs the same suite through the plugin."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--live", "--kubeconfig", str(kubeconfig),
         f"--manifests={reference_manifests_dir()}", "-k", "manifests_are_deployed or holds_what_the_manifests",
         "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
