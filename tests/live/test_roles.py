"""The shipped roles: the reader only reads (every kind live mode lists), the dry-run role only what a dry-run apply
is authorised as. (That they suffice on a real API server is test_check_live.py's business.)"""

from __future__ import annotations

from gpu_policy.live.kinds import JUDGED_KINDS, RUNTIME_KINDS
from gpu_policy.live.rbac import cluster_role, dry_run_guard, dry_run_role


def _plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def _grants(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}  # fmt: skip


def test_the_reader_reads_every_listed_kind_and_writes_nothing() -> None:
    grants = _grants(cluster_role())
    assert {verb for _, _, verb in grants} == {"get", "list", "watch"}
    needed = {(k.group, _plural(k.kind)) for k in (*JUDGED_KINDS, *RUNTIME_KINDS)}
    needed.add(("apiextensions.k8s.io", "customresourcedefinitions"))
    assert {(g, r) for g, r, _ in grants} == needed
    assert not any(resource == "secrets" for _, resource, _ in grants)


def test_the_dry_run_role_grants_only_what_an_apply_is_authorised_as() -> None:
    grants = _grants(dry_run_role())
    assert {verb for _, _, verb in grants} == {"patch", "create", "escalate", "bind"}
    assert {(g, r) for g, r, v in grants if v in ("escalate", "bind")} == {
        ("rbac.authorization.k8s.io", "clusterroles")
    }
    applied = {(k.group, _plural(k.kind)) for k in JUDGED_KINDS}
    assert {(g, r) for g, r, v in grants if v == "patch"} == applied
    assert {(g, r) for g, r, v in grants if v == "create"} == applied


def test_the_guard_denies_the_named_runner_every_write_that_is_not_a_dry_run() -> None:
    policy, binding = dry_run_guard("system:serviceaccount:ci:runner")
    assert policy["spec"]["validations"][0]["expression"] == "request.dryRun == true"
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        'request.userInfo.username == "system:serviceaccount:ci:runner"'
    )
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
