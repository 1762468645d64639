"""Pod security: privilege is an exception, declared with a reason.

Mirrors the Pod Security Standards' baseline/restricted controls (kubernetes.io/docs/concepts/security/
pod-security-standards): privileged containers, added capabilities, host namespaces, running as root. Which controls
are enforced is an organisation's choice (Kubernetes itself admits all of these unless a namespace opts into a Pod
Security Admission level): each rule runs only when the policy in force switches it on in `security.yaml`
(the reference profile switches all on; the neutral defaults none). Some platform daemons need them (the DCGM
exporter adds SYS_ADMIN for DCP profiling metrics); they carry
`gpu-policy.io/exempt: "<rule-id>: <reason>"` on the workload or its pod template, applied by the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpu_policy.findings import Severity
from gpu_policy.graph.workloads import PodTemplate
from gpu_policy.loading.document import FieldPath
from gpu_policy.metrics.dcgm import image_tag
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

PSS = "kubernetes.io/docs/concepts/security/pod-security-standards"
EXEMPT_FIX = ' If the workload truly needs it, annotate it `gpu-policy.io/exempt: "{rule}: <why>"`.'


def _templates(ctx: CheckContext) -> list[PodTemplate]:
    return ctx.graph.pod_templates()


def _enforced(ctx: CheckContext, switch: str) -> bool:
    """Whether the policy in force turns the control on (`security.yaml`); an absent switch is off."""
    return ctx.policy.security.get(switch) is True


def _by_policy(ctx: CheckContext, switch: str) -> str:
    return f" ({switch}: true in {ctx.policy.source_of('security')})"


def _security_context(container: dict[str, Any]) -> dict[str, Any]:
    value = container.get("securityContext")
    return value if isinstance(value, dict) else {}


@rule(
    "security-no-privileged",
    title="containers do not run privileged unless exempted with a reason",
    area="security",
    rule_class=RuleClass.POLICY,
    rationale=f"""A privileged container has every capability and all host devices: a compromise is a node
    compromise. Pod Security Standards baseline forbids it ({PSS}, "Privileged Containers").
    Judged only when the policy in force sets `forbidPrivileged: true`
    (security.yaml).""",
    fix="Remove `securityContext.privileged: true`; grant only the capability needed."
    + EXEMPT_FIX.format(rule="security-no-privileged"),
    sources=(PSS,),
)
def no_privileged(ctx: CheckContext) -> Iterator[Violation]:
    if not _enforced(ctx, "forbidPrivileged"):
        return
    enforced_by = _by_policy(ctx, "forbidPrivileged")
    for template in _templates(ctx):
        for path, container in template.containers(include_init=True):
            if _security_context(container).get("privileged") is True:
                yield Violation(
                    doc=template.owner,
                    path=(*path, "securityContext", "privileged"),
                    message=f"container {container.get('name')} runs privileged{enforced_by}",
                )


@rule(
    "security-no-added-capabilities",
    title="containers add no Linux capabilities unless exempted with a reason",
    area="security",
    rule_class=RuleClass.POLICY,
    rationale=f"""Added capabilities such as SYS_ADMIN widen what a compromised container can do on the node.
    Pod Security Standards baseline allows only a short list of added capabilities and restricted only
    NET_BIND_SERVICE ({PSS}, "Capabilities"); every addition must be justified.
    Judged only when the policy in force sets `forbidAddedCapabilities: true`
    (security.yaml).""",
    fix="Remove `securityContext.capabilities.add`."
    + EXEMPT_FIX.format(rule="security-no-added-capabilities"),
    sources=(PSS,),
)
def no_added_capabilities(ctx: CheckContext) -> Iterator[Violation]:
    if not _enforced(ctx, "forbidAddedCapabilities"):
        return
    enforced_by = _by_policy(ctx, "forbidAddedCapabilities")
    for template in _templates(ctx):
        for path, container in template.containers(include_init=True):
            added = (_security_context(container).get("capabilities") or {}).get("add") or []
            if added:
                yield Violation(
                    doc=template.owner,
                    path=(*path, "securityContext", "capabilities", "add"),
                    message=f"container {container.get('name')} adds capabilities "
                    f"{', '.join(str(c) for c in added)}{enforced_by}",
                )


@rule(
    "security-no-host-namespaces",
    title="pods do not share the host's PID, IPC or network namespace unless exempted with a reason",
    area="security",
    rule_class=RuleClass.POLICY,
    rationale=f"""hostPID lets a pod see and signal every process of the node, hostIPC read its shared memory,
    hostNetwork bind its interfaces and bypass NetworkPolicies. Pod Security Standards baseline forbids all
    three     ({PSS}, "Host Namespaces").
    Judged only when the policy in force sets `forbidHostNamespaces: true`
    (security.yaml).""",
    fix="Remove hostPID / hostIPC / hostNetwork." + EXEMPT_FIX.format(rule="security-no-host-namespaces"),
    sources=(PSS,),
)
def no_host_namespaces(ctx: CheckContext) -> Iterator[Violation]:
    if not _enforced(ctx, "forbidHostNamespaces"):
        return
    enforced_by = _by_policy(ctx, "forbidHostNamespaces")
    for template in _templates(ctx):
        shared = [f for f in ("hostPID", "hostIPC", "hostNetwork") if template.spec.get(f) is True]
        if shared:
            yield Violation(
                doc=template.owner,
                path=(*template.spec_path, shared[0]),
                message=f"pod template sets {', '.join(f + ': true' for f in shared)}{enforced_by}",
            )


def _is_root_uid(value: Any) -> bool:
    return type(value) is int and value == 0


@rule(
    "security-no-root-user",
    title="containers do not explicitly run as root unless exempted with a reason",
    area="security",
    rule_class=RuleClass.POLICY,
    rationale=f"""`runAsUser: 0` runs the container as root; `runAsNonRoot: false` switches off the kubelet's check
    that refuses to start a container whose user is root, so whatever user the image or runAsUser picks, root
    included, runs. Root in a container is root on the node's files it can reach (hostPath mounts). Pod Security
    Standards restricted requires runAsNonRoot: true and forbids runAsUser: 0 ({PSS}, "Running as Non-root",
    "Running as Non-root user"), so both settings are flagged; the message says "runs as root" only when the
    effective runAsUser is 0, and "does not enforce non-root" for runAsNonRoot: false with another or no
    runAsUser. Only explicit settings are judged, on the pod and on each container (a container's setting
    overrides the pod's).
    Judged only when the policy in force sets `forbidRootUser: true`
    (security.yaml).""",
    fix="Run as a non-root UID (runAsNonRoot: true, runAsUser: <uid>)."
    + EXEMPT_FIX.format(rule="security-no-root-user"),
    sources=(PSS, "kubernetes.io/docs/tasks/configure-pod-container/security-context"),
)
def no_root_user(ctx: CheckContext) -> Iterator[Violation]:
    if not _enforced(ctx, "forbidRootUser"):
        return
    enforced_by = _by_policy(ctx, "forbidRootUser")
    for template in _templates(ctx):
        pod_context = template.spec.get("securityContext")
        pod_context = pod_context if isinstance(pod_context, dict) else {}
        pod_path: FieldPath = (*template.spec_path, "securityContext")
        # securityContext path -> (settings found there, containers running as root, containers only not
        # enforcing non-root, first offending field); a pod-level setting is reported once for all containers
        found: dict[FieldPath, tuple[list[str], list[str], list[str], FieldPath]] = {}
        for path, container in template.containers(include_init=True):
            own = _security_context(container)
            name = str(container.get("name"))
            user = own["runAsUser"] if "runAsUser" in own else pod_context.get("runAsUser")
            runs_as_root = _is_root_uid(user)
            for field, bad in (("runAsUser", 0), ("runAsNonRoot", False)):
                source, context_path = (
                    (own, (*path, "securityContext")) if field in own else (pod_context, pod_path)
                )
                value = source.get(field)
                if value is None or value != bad or type(value) is not type(bad):
                    continue
                settings, root, unenforced, _ = found.setdefault(context_path, ([], [], [], (*context_path, field)))
                setting = f"{field}: {str(bad).lower()}"
                if setting not in settings:
                    settings.append(setting)
                if runs_as_root:
                    if name not in root:
                        root.append(name)
                        if name in unenforced:
                            unenforced.remove(name)
                elif name not in unenforced and name not in root:
                    unenforced.append(name)
        for context_path, (settings, root, unenforced, first) in found.items():
            level = "pod" if context_path == pod_path else "container"
            parts = []
            if root:
                parts.append(f"{', '.join(root)} run{'s' if len(root) == 1 else ''} as root (runAsUser 0)")
            if unenforced:
                parts.append(
                    f"{', '.join(unenforced)} do{'es' if len(unenforced) == 1 else ''} not enforce non-root "
                    "(runAsNonRoot: false)"
                )
            yield Violation(
                doc=template.owner,
                path=first,
                message=f"{level} securityContext sets {', '.join(settings)}: {'; '.join(parts)}{enforced_by}",
            )


@rule(
    "security-image-pinned",
    title="container images are pinned to a version tag or digest, never latest",
    area="security",
    rule_class=RuleClass.POLICY,
    rationale="""An image without a tag means `:latest`; `:latest` moves. The same manifest then runs
    different
    code on different nodes, and a rollback does not roll back. kubelet also defaults imagePullPolicy to
    Always
    for :latest (kubernetes.io/docs/concepts/containers/images).
    Judged only when the policy in force sets `requirePinnedImages: true`
    (security.yaml).""",
    fix="Pin a version tag (e.g. dcgm-exporter:4.5.3-4.8.2-ubuntu22.04) or a digest (@sha256:...).",
    sources=("kubernetes.io/docs/concepts/containers/images (image names, updating images)",),
    severity=Severity.WARNING,
)
def image_pinned(ctx: CheckContext) -> Iterator[Violation]:
    if not _enforced(ctx, "requirePinnedImages"):
        return
    enforced_by = _by_policy(ctx, "requirePinnedImages")
    for template in _templates(ctx):
        for path, container in template.containers(include_init=True):
            image = str(container.get("image") or "")
            if not image or "@" in image:
                continue
            tag = image_tag(image)
            if tag is None or tag == "latest":
                yield Violation(
                    doc=template.owner,
                    path=(*path, "image"),
                    message=f"container {container.get('name')} image {image} "
                    + ("has no tag (means latest)" if tag is None else "uses :latest") + enforced_by,
                )
