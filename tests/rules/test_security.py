"""Edge cases of the security rules (exemptions are applied by the engine, see fixtures/security-*)."""

from __future__ import annotations

import re

from gpu_policy.policy.loader import PolicySet
from tests.rules._helpers import run_rule

_SWITCH = re.compile(r" \((forbid|require)[A-Za-z]+: true in [^)]*\)$")

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: n}}
spec:
{pod}
  containers:
    - name: c
      image: {image}
{container}
"""


def run(
    rule_id: str, pod: str = "", container: str = "", image: str = "busybox:1.36"
) -> list[tuple[str, str]]:
    return _plain(run_rule(rule_id, POD.format(pod=pod, container=container, image=image)))


def _plain(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Messages without the closing "(forbidX: true in <file>)" that names the policy switch in force."""
    return [(resource, _SWITCH.sub("", message)) for resource, message in found]


def test_container_setting_overrides_pod_root() -> None:
    pod = "  securityContext: {runAsUser: 0}"
    assert run("security-no-root-user", pod=pod)
    assert not run("security-no-root-user", pod=pod, container="      securityContext: {runAsUser: 1000}")
    assert not run("security-no-root-user", container="      securityContext: {runAsNonRoot: true}")


def test_image_pinning() -> None:
    assert run("security-image-pinned", image="busybox")[0][1].endswith("has no tag (means latest)")
    assert run("security-image-pinned", image="localhost:5000/busybox")  # a registry port is not a tag
    assert not run("security-image-pinned", image="localhost:5000/busybox:1.36")
    assert not run("security-image-pinned", image="busybox@sha256:" + "a" * 64)


def test_init_containers_are_checked() -> None:
    text = POD.format(
        pod="  initContainers:\n    - {name: i, image: busybox:1.36, securityContext: {privileged: true}}",
        container="",
        image="busybox:1.36",
    )
    assert _plain(run_rule("security-no-privileged", text))[0][1] == "container i runs privileged"


def test_run_as_non_root_false_is_flagged_as_not_enforcing_unless_the_uid_is_root() -> None:
    not_root = run("security-no-root-user", container="      securityContext: {runAsNonRoot: false, runAsUser: 1000}")
    assert [m for _, m in not_root] == [
        "container securityContext sets runAsNonRoot: false: c does not enforce non-root (runAsNonRoot: false)"
    ]
    assert "runs as root" not in not_root[0][1]
    root = run("security-no-root-user", container="      securityContext: {runAsNonRoot: false, runAsUser: 0}")
    assert root[0][1].endswith("c runs as root (runAsUser 0)") and "does not enforce" not in root[0][1]
    # the pod's runAsUser 0 makes a container's runAsNonRoot: false a root container
    mixed = run(
        "security-no-root-user",
        pod="  securityContext: {runAsUser: 0}",
        container="      securityContext: {runAsNonRoot: false}",
    )
    assert {m for _, m in mixed} == {
        "container securityContext sets runAsNonRoot: false: c runs as root (runAsUser 0)",
        "pod securityContext sets runAsUser: 0: c runs as root (runAsUser 0)",
    }


PRIVILEGED_ROOT_LATEST = POD.format(
    pod="  hostPID: true\n  securityContext: {runAsUser: 0}",
    container="      securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}",
    image="busybox:latest",
)
SECURITY_RULES = ("security-no-privileged", "security-no-added-capabilities", "security-no-host-namespaces",
                  "security-no-root-user", "security-image-pinned")


def test_security_rules_judge_nothing_unless_the_policy_switches_them_on() -> None:
    defaults = PolicySet.defaults()
    assert defaults.security == {}
    for rule_id in SECURITY_RULES:
        assert run_rule(rule_id, PRIVILEGED_ROOT_LATEST, defaults) == [], rule_id
        found = run_rule(rule_id, PRIVILEGED_ROOT_LATEST)  # the reference profile switches all five on
        assert found and all(r.startswith("Pod/") and r.endswith("/p") for r, _ in found), rule_id
        assert all(re.search(r"\((forbid|require)\w+: true in .*policies/security\.yaml\)$", m) for _, m in found)


def test_one_switch_turns_on_one_rule() -> None:
    only_privileged = PolicySet.layered([("team", {"security": {"forbidPrivileged": True}}, {})])
    assert _plain(run_rule("security-no-privileged", PRIVILEGED_ROOT_LATEST, only_privileged)) == [
        ("Pod/default/p", "container c runs privileged")
    ]
    for rule_id in SECURITY_RULES[1:]:
        assert run_rule(rule_id, PRIVILEGED_ROOT_LATEST, only_privileged) == [], rule_id
