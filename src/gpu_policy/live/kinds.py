"""The kinds live mode reads: every kind a check of the suite judges (the reference manifests' kinds and those the
checks look up), by API group. A group the cluster does not serve is reported as not checked, never as broken."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgedKind:
    group: str  # "" for the core group
    kind: str


JUDGED_KINDS: tuple[JudgedKind, ...] = (
    JudgedKind("", "Namespace"),
    JudgedKind("", "Service"),
    JudgedKind("", "ConfigMap"),
    JudgedKind("", "ServiceAccount"),
    JudgedKind("", "LimitRange"),
    JudgedKind("apps", "Deployment"),
    JudgedKind("apps", "StatefulSet"),
    JudgedKind("apps", "DaemonSet"),
    JudgedKind("policy", "PodDisruptionBudget"),
    JudgedKind("scheduling.k8s.io", "PriorityClass"),
    JudgedKind("rbac.authorization.k8s.io", "ClusterRole"),
    JudgedKind("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    JudgedKind("autoscaling", "HorizontalPodAutoscaler"),
    JudgedKind("keda.sh", "ScaledObject"),
    JudgedKind("keda.sh", "ScaledJob"),
    JudgedKind("keda.sh", "TriggerAuthentication"),
    JudgedKind("keda.sh", "ClusterTriggerAuthentication"),
    JudgedKind("karpenter.sh", "NodePool"),
    JudgedKind("karpenter.k8s.aws", "EC2NodeClass"),
    JudgedKind("monitoring.coreos.com", "PrometheusRule"),
    JudgedKind("monitoring.coreos.com", "ServiceMonitor"),
    JudgedKind("monitoring.coreos.com", "PodMonitor"),
    JudgedKind("monitoring.coreos.com", "Prometheus"),
)


RUNTIME_KINDS: tuple[JudgedKind, ...] = (
    JudgedKind("", "Node"),
    JudgedKind("", "Pod"),
    JudgedKind("karpenter.sh", "NodeClaim"),
)
"""Kinds read for the runtime rules only (`ctx.live`): what controllers made of the judged objects. They never enter
the resource graph the static rules judge."""
