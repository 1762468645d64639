"""KEDA ScaledObjects and HPAs: what KEDA's admission webhook would refuse, and what the organisation's
scaling policy (policies/scaling.yaml, workload-classes.yaml, sla.yaml) requires of the GPU model servers'
autoscalers.

KEDA's webhook fails open (`failurePolicy=ignore`, kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go),
and it only sees objects already in the cluster, so the manifest gate re-implements its checks against the
manifest set.
Messages repeat KEDA's wording so an operator can search for them.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from gpu_policy.findings import Severity
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.graph.selectors import matches_map
from gpu_policy.graph.workloads import pod_template_of
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.promql.text import (
    AGGREGATIONS,
    Token,
    aggregations,
    metric_names,
    outer_aggregation,
    selectors,
    tokenize,
)
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule
from gpu_policy.simulation.hpa import ScalingPolicy, ScalingRules, pods_removed_within

GPU_RESOURCE = "nvidia.com/gpu"
SO_KIND = "ScaledObject"
HPA_KIND = "HorizontalPodAutoscaler"
BEHAVIOR_PATH: FieldPath = ("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior")
HPA_BEHAVIOR_PATH: FieldPath = ("spec", "behavior")
# kube-controller-manager --horizontal-pod-autoscaler-downscale-stabilization default (5m); EKS does not
# expose control-plane flags, so this is the window an HPA without
# behavior.scaleDown.stabilizationWindowSeconds gets (kubernetes pkg/apis/autoscaling/v2/defaults.go leaves it
# nil "because it can be set from the command line").
CONTROLLER_DOWNSCALE_WINDOW = 300
KEDA_DEFAULT_MAX = 100  # scaledobject_types.go defaultHPAMaxReplicas
GPU_UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"


# ----------------------------------------------------------------------------------------------------
# The autoscaler index: every ScaledObject and HPA, its target and its effective bounds, built once per run.
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Autoscaler:
    doc: Document
    api_version: str
    """The target's apiVersion ("" when an HPA leaves it out)."""
    kind: str
    name: str
    target: Document | None

    @property
    def is_scaled_object(self) -> bool:
        return self.doc.kind == SO_KIND

    @property
    def target_ref(self) -> str:
        return f"{self.kind}/{self.doc.namespace}/{self.name}"

    @property
    def gvk(self) -> str:
        """KEDA's GroupVersionKindResource.GVKString(): `apps/v1.Deployment`."""
        group, _, version = self.api_version.rpartition("/")
        return f"{group}/{version}.{self.kind}"

    @property
    def min_raw(self) -> int:
        """minReplicaCount as written (KEDA default 0) / HPA minReplicas (default 1)."""
        key = "minReplicaCount" if self.is_scaled_object else "minReplicas"
        return _int(self.doc.spec.get(key), 0 if self.is_scaled_object else 1)

    @property
    def hpa_min(self) -> int:
        """The HPA's minReplicas: KEDA's GetHPAMinReplicas turns 0 or unset into 1."""
        value = self.min_raw
        return value if value > 0 else 1

    @property
    def max_replicas(self) -> int:
        key = "maxReplicaCount" if self.is_scaled_object else "maxReplicas"
        return _int(self.doc.spec.get(key), KEDA_DEFAULT_MAX if self.is_scaled_object else 0)

    @property
    def behavior_path(self) -> FieldPath:
        return BEHAVIOR_PATH if self.is_scaled_object else HPA_BEHAVIOR_PATH

    @property
    def behavior(self) -> dict[str, Any] | None:
        value = self.doc.get(self.behavior_path)
        return value if isinstance(value, dict) else None


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _target_of(doc: Document) -> tuple[str, str, str]:
    ref = doc.spec.get("scaleTargetRef")
    ref = ref if isinstance(ref, dict) else {}
    if doc.kind == SO_KIND:
        # scaledobject_types.go ScaleTarget: apiVersion and kind optional, default apps/v1 Deployment.
        return (
            str(ref.get("apiVersion") or "apps/v1"),
            str(ref.get("kind") or "Deployment"),
            str(ref.get("name") or ""),
        )
    return (str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""))


def _build_autoscalers(ctx: CheckContext) -> list[Autoscaler]:
    out = []
    for doc in ctx.graph.of_kind(SO_KIND, HPA_KIND):
        if doc.kind == SO_KIND and not doc.api_version.startswith("keda.sh/"):
            continue
        if doc.kind == HPA_KIND and not doc.api_version.startswith("autoscaling/"):
            continue
        api_version, kind, name = _target_of(doc)
        target = ctx.graph.get(kind, name, doc.namespace) if kind and name else None
        if target is not None and api_version and target.api_version != api_version:
            target = None
        out.append(Autoscaler(doc, api_version, kind, name, target))
    return out


def autoscalers(ctx: CheckContext) -> list[Autoscaler]:
    return ctx.memo("keda.autoscalers", lambda: _build_autoscalers(ctx))


def requests_gpu(doc: Document) -> bool:
    template = pod_template_of(doc)
    return template is not None and any(
        _container_requests(container, GPU_RESOURCE) for _, container in template.containers(include_init=True)
    )


def gpus_per_pod(doc: Document) -> int:
    """The nvidia.com/gpu a pod of the workload gets: the sum of its app containers' limits (extended
    resources must have limit == request; a request alone is read when the limit is missing). Init containers
    run before the model server and do not add GPUs the DCGM exporter reports alongside it."""
    template = pod_template_of(doc)
    if template is None:
        return 0
    total = 0
    for _, container in template.containers():
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            value = (resources.get(section) or {}).get(GPU_RESOURCE)
            if value is not None:
                quantity = parse_quantity(value)
                total += int(quantity) if quantity is not None else 0
                break
    return total


def gpu_autoscalers(ctx: CheckContext) -> list[Autoscaler]:
    """Autoscalers whose target is in the set and runs GPU pods: the ones the scaling policy governs."""
    return ctx.memo(
        "keda.gpu_autoscalers",
        lambda: [a for a in autoscalers(ctx) if a.target is not None and requests_gpu(a.target)],
    )


def _triggers(doc: Document) -> list[tuple[int, dict[str, Any]]]:
    triggers = doc.spec.get("triggers")
    return (
        [(i, t) for i, t in enumerate(triggers or []) if isinstance(t, dict)]
        if isinstance(triggers, list)
        else []
    )


def _metadata(trigger: Mapping[str, Any]) -> dict[str, Any]:
    value = trigger.get("metadata")
    return value if isinstance(value, dict) else {}


def _metric_type(trigger: Mapping[str, Any]) -> str:
    """pkg/scalers/scaler.go GetMetricTargetType: empty means AverageValue."""
    return str(trigger.get("metricType") or "AverageValue")


def _scaled_objects(ctx: CheckContext) -> list[Autoscaler]:
    return [a for a in autoscalers(ctx) if a.is_scaled_object]


def _is_gpu_query(query: str) -> bool:
    """The query reads a DCGM exporter metric (DCGM_FI_* fields, DCGM_EXP_* exporter metrics)."""
    return any(name.startswith("DCGM_") for name in metric_names(query))


# ----------------------------------------------------------------------------------------------------
# Target and ownership
# ----------------------------------------------------------------------------------------------------
@rule(
    "autoscaler-target-exists",
    title="the autoscaler's target exists",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A ScaledObject or HPA whose scaleTargetRef names no object in its namespace scales nothing:
    KEDA reports `ScaleTargetNotFound` and the workload runs at whatever replica count it was applied with.
    KEDA defaults scaleTargetRef to apiVersion apps/v1, kind Deployment, and the target must live in the
    ScaledObject's namespace (keda-docs content/docs/2.20/reference/scaledobject-spec.md, kedacore/keda
    apis/keda/v1alpha1/scaledobject_types.go ScaleTarget). A target absent from the set (it may come from a chart
    or another file) is "not checked" unless the set is declared complete; one the set declares at another
    apiVersion is a finding.""",
    fix="Point scaleTargetRef at the workload's exact apiVersion, kind and name, in the same namespace.",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaledobject_types.go",
        "kedacore/keda-docs content/docs/2.20/reference/scaledobject-spec.md",
    ),
)
def autoscaler_target_exists(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in autoscalers(ctx):
        if scaler.target is not None:
            continue
        if not scaler.name or not scaler.kind:
            yield Violation(scaler.doc, "scaleTargetRef has no kind or name", path=("spec", "scaleTargetRef"))
            continue
        other = ctx.graph.get(scaler.kind, scaler.name, scaler.doc.namespace)
        if other is not None:
            message = (
                f"scaleTargetRef asks for {scaler.kind} {scaler.name!r} in {scaler.api_version}, but the "
                f"manifest set declares it as {other.api_version}"
            )
        else:
            yield from ctx.missing(
                scaler.doc, ("spec", "scaleTargetRef", "name"),
                f"{scaler.doc.kind} {scaler.doc.namespace}/{scaler.doc.name} targets {scaler.api_version or '<any>'} "
                f"{scaler.target_ref}, which is not in the manifest set (the target must be in the autoscaler's "
                f"namespace {scaler.doc.namespace!r})",
            )
            continue
        yield Violation(scaler.doc, message, path=("spec", "scaleTargetRef", "name"))


def _owned_by(hpa: Document, so: Document) -> bool:
    for owner in hpa.metadata.get("ownerReferences") or []:
        if isinstance(owner, dict) and owner.get("kind") == SO_KIND and owner.get("name") == so.name:
            return True
    return False


def _hpa_name(so: Document) -> str:
    """scaledobject_webhook.go getHpaName."""
    name = so.get(("spec", "advanced", "horizontalPodAutoscalerConfig", "name"))
    return str(name) if name else f"keda-hpa-{so.name}"


def _target_key(scaler: Autoscaler) -> tuple[str, str, str, str]:
    # KEDA compares GVK strings; an HPA without apiVersion cannot be resolved by ParseGVKR, treat it as the
    # kind's usual group so that a missing apiVersion does not hide a second autoscaler.
    api = scaler.api_version or (
        "apps/v1" if scaler.kind in {"Deployment", "StatefulSet", "ReplicaSet"} else ""
    )
    return (scaler.doc.namespace, api, scaler.kind, scaler.name)


def _conflict(ctx: CheckContext, other: Document, violation: Violation) -> Iterator[Violation]:
    """Two autoscalers of one workload conflict when they are applied together. From one file, or in a set declared
    complete, that is a finding; from two files of a partial set (alternative examples, tutorial steps) it is listed
    as not checked, since nothing says both are applied."""
    doc = violation.doc
    assert doc is not None
    if ctx.complete or doc.source == other.source:
        yield violation
        return
    yield from ctx.missing(
        doc, violation.path,
        f"{doc.ref} and {other.ref} ({other.source}) scale the same workload; they conflict only if both files are "
        f"applied: {violation.message}",
    )


@rule(
    "one-autoscaler-per-workload",
    title="one autoscaler per workload",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""Two autoscalers on one workload overwrite each other's replica count every sync. KEDA's
    admission webhook refuses a ScaledObject whose target is already managed by another HPA (`the workload
    '%s' of type '%s' is already managed by the hpa '%s'`) or another ScaledObject, and one whose generated
    HPA name is taken (kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go verifyHpas,
    verifyScaledObjects); the exceptions are an HPA owned by the ScaledObject, an HPA annotated
    `validations.keda.sh/hpa-ownership: "false"`, and an ownership transfer
    (`scaledobject.keda.sh/transfer-hpa-ownership: "true"` with the HPA named in
    advanced.horizontalPodAutoscalerConfig.name). The webhook fails open, so the gate must catch it. Two plain
    HPAs on one workload make the HPA controller stop with condition AmbiguousSelector (kubernetes
    pkg/controller/podautoscaler/horizontal.go). Two autoscalers from different files of a set not declared
    complete (alternative examples, tutorial steps) are listed as not checked: they conflict only if both are
    applied.""",
    fix="""Keep one autoscaler per workload: delete the extra HPA (KEDA creates and owns `keda-hpa-<name>`),
    or transfer it to the ScaledObject with the transfer-hpa-ownership annotation and advanced
    .horizontalPodAutoscalerConfig.name.""",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go",
        "kubernetes/kubernetes pkg/controller/podautoscaler/horizontal.go",
    ),
)
def one_autoscaler_per_workload(ctx: CheckContext) -> Iterator[Violation]:
    by_target: dict[tuple[str, str, str, str], list[Autoscaler]] = defaultdict(list)
    for scaler in autoscalers(ctx):
        if scaler.name:
            by_target[_target_key(scaler)].append(scaler)
    hpa_names: dict[tuple[str, str], Document] = {}
    for scaler in _scaled_objects(ctx):
        so = scaler.doc
        siblings = by_target.get(_target_key(scaler), [])
        # verifyHpas
        for other in siblings:
            hpa = other.doc
            if other.is_scaled_object or hpa.annotations.get("validations.keda.sh/hpa-ownership") == "false":
                continue
            if _owned_by(hpa, so):
                continue
            if str(so.annotations.get("scaledobject.keda.sh/transfer-hpa-ownership")) == "true":
                if _hpa_name(so) == hpa.name and so.get(
                    ("spec", "advanced", "horizontalPodAutoscalerConfig", "name")
                ):
                    continue
                yield from _conflict(ctx, hpa, Violation(
                    so,
                    f"the existing hpa '{hpa.name}' for workload '{scaler.name}' of type "
                    f"'{scaler.gvk}' must be specified by name in advanced settings to enable "
                    f"ownership transfer",
                    path=("spec", "scaleTargetRef"),
                    exemptible_by=(hpa,),
                ))
                continue
            yield from _conflict(ctx, hpa, Violation(
                so,
                f"the workload '{scaler.name}' of type '{scaler.gvk}' is already managed by the hpa "
                f"'{hpa.name}' ({hpa.source}:{hpa.line})",
                path=("spec", "scaleTargetRef"),
                exemptible_by=(hpa,),
            ))
        # verifyScaledObjects: the one declared later is the one the webhook refuses.
        for other in siblings:
            if other.doc is so:
                break
            if other.is_scaled_object:
                yield from _conflict(ctx, other.doc, Violation(
                    so,
                    f"the workload '{scaler.name}' of type '{scaler.gvk}' is already managed by "
                    f"the ScaledObject '{other.doc.name}'",
                    path=("spec", "scaleTargetRef"),
                ))
        key = (so.namespace, _hpa_name(so))
        first = hpa_names.setdefault(key, so)
        if first is not so:
            yield from _conflict(ctx, first, Violation(
                so,
                f"the HPA '{key[1]}' is already managed by the ScaledObject '{first.name}'",
                path=("spec", "advanced", "horizontalPodAutoscalerConfig", "name"),
            ))
    # Plain HPAs among themselves (not owned by any ScaledObject).
    for siblings in by_target.values():
        plain = [
            s
            for s in siblings
            if not s.is_scaled_object
            and not any(
                isinstance(o, dict) and o.get("kind") == SO_KIND
                for o in s.doc.metadata.get("ownerReferences") or []
            )
        ]
        if len(plain) > 1:
            names = " ".join(s.doc.name for s in plain)
            for extra in plain[1:]:
                yield from _conflict(ctx, plain[0].doc, Violation(
                    extra.doc,
                    f"pods of {extra.target_ref} are controlled by multiple HPAs: [{names}] "
                    f"(the HPA controller sets AmbiguousSelector and stops scaling)",
                    path=("spec", "scaleTargetRef"),
                ))


# ----------------------------------------------------------------------------------------------------
# Webhook checks on the ScaledObject itself
# ----------------------------------------------------------------------------------------------------
@rule(
    "autoscaler-replica-bounds",
    title="autoscaler replica bounds are valid",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""KEDA refuses `MinReplicaCount=%d must be less than MaxReplicaCount=%d` and
    `IdleReplicaCount=%d must be less than MinReplicaCount=%d` (kedacore/keda
    apis/keda/v1alpha1/scaledobject_types.go CheckReplicaCountBoundsAreValid, called by the webhook's
    verifyReplicaCount; the minimum it compares is GetHPAMinReplicas, i.e. 1 when minReplicaCount is 0, and 0
    when it is unset). The API server refuses an HPA whose maxReplicas is below minReplicas or whose
    minReplicas is below 1 (kubernetes pkg/apis/autoscaling/validation/validation.go
    validateHorizontalPodAutoscalerSpec).""",
    fix="Make minReplicaCount <= maxReplicaCount and idleReplicaCount < minReplicaCount (idle 0 is the only value "
    "KEDA supports).",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaledobject_types.go",
        "kubernetes/kubernetes pkg/apis/autoscaling/validation/validation.go",
    ),
)
def autoscaler_replica_bounds(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in autoscalers(ctx):
        spec = scaler.doc.spec
        if scaler.is_scaled_object:
            minimum = scaler.hpa_min if "minReplicaCount" in spec else 0
            maximum = scaler.max_replicas
            # The CRD's CEL rule already refuses a written minReplicaCount above maxReplicaCount (schema rules
            # report it); KEDA additionally compares GetHPAMinReplicas, which turns 0 into 1.
            if minimum > maximum and scaler.min_raw <= maximum:
                yield Violation(
                    scaler.doc,
                    f"MinReplicaCount={minimum} must be less than MaxReplicaCount={maximum}",
                    path=("spec", "minReplicaCount"),
                )
                continue
            idle = spec.get("idleReplicaCount")
            if isinstance(idle, int) and not isinstance(idle, bool) and idle >= minimum:
                yield Violation(
                    scaler.doc,
                    f"IdleReplicaCount={idle} must be less than MinReplicaCount={minimum}",
                    path=("spec", "idleReplicaCount"),
                )
        else:
            minimum, maximum = scaler.min_raw, scaler.max_replicas
            if minimum < 1:
                yield Violation(
                    scaler.doc,
                    f"spec.minReplicas: Invalid value: {minimum}: must be greater than or equal to 1",
                    path=("spec", "minReplicas"),
                )
            if maximum < minimum:
                yield Violation(
                    scaler.doc,
                    f"spec.maxReplicas: Invalid value: {maximum}: must be greater than or "
                    f"equal to `minReplicas` ({minimum})",
                    path=("spec", "maxReplicas"),
                )


def _container_requests(container: Mapping[str, Any], resource: str) -> bool:
    """scaledobject_webhook.go isWorkloadResourceSet: a positive request or limit."""
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return False
    for section in ("requests", "limits"):
        values = resources.get(section)
        if isinstance(values, dict):
            amount = parse_quantity(values.get(resource))
            if amount is not None and amount > 0:
                return True
    return False


def _limit_range_defaults(ctx: CheckContext) -> dict[str, set[str]]:
    """namespace -> resources a LimitRange gives containers by default
    (scaledobject_webhook.go isContainerResourceSetInLimitRangeObject)."""
    out: dict[str, set[str]] = defaultdict(set)
    for doc in ctx.graph.of_kind("LimitRange"):
        for item in doc.spec.get("limits") or []:
            if not isinstance(item, dict) or item.get("type") != "Container":
                continue
            for section in ("default", "defaultRequest"):
                values = item.get(section)
                if isinstance(values, dict):
                    for name, amount in values.items():
                        quantity = parse_quantity(amount)
                        if quantity is not None and quantity > 0:
                            out[doc.namespace].add(str(name))
    return out


@rule(
    "keda-cpu-memory-triggers-have-requests",
    title="cpu and memory triggers have container requests",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A cpu or memory trigger becomes an HPA Utilization target, which is a percentage of the
    containers' request; KEDA's webhook refuses `the scaledobject has a %v trigger but the container %s
    doesn't have the %v request defined` (unless a LimitRange in the namespace gives a default), and
    `scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero doesn't work in this case)`
    (kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go verifyCPUMemoryScalers; only Deployment and
    StatefulSet targets are checked).""",
    fix="Give every container (or the trigger's `containerName`) a cpu/memory request, and a minReplicaCount >= 1 "
    "when only cpu/memory triggers are used.",
    sources=("kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go",),
)
def cpu_memory_triggers_have_requests(ctx: CheckContext) -> Iterator[Violation]:
    defaults = ctx.memo("keda.limit_range_defaults", lambda: _limit_range_defaults(ctx))
    for scaler in _scaled_objects(ctx):
        triggers = _triggers(scaler.doc)
        resource_triggers = [(i, t) for i, t in triggers if t.get("type") in ("cpu", "memory")]
        if (
            not resource_triggers
            or scaler.target is None
            or scaler.gvk not in ("apps/v1.Deployment", "apps/v1.StatefulSet")
        ):
            continue
        template = pod_template_of(scaler.target)
        containers = template.containers() if template is not None else []
        reported = False
        for index, trigger in resource_triggers:
            resource = str(trigger["type"])
            wanted = str(_metadata(trigger).get("containerName") or "")
            for _, container in containers:
                if wanted and container.get("name") != wanted:
                    continue
                if not _container_requests(container, resource) and resource not in defaults.get(
                    scaler.doc.namespace, set()
                ):
                    yield Violation(
                        scaler.doc,
                        f"the scaledobject has a {resource} trigger but the container "
                        f"{container.get('name')} doesn't have the {resource} request defined",
                        path=("spec", "triggers", index, "type"),
                        exemptible_by=(scaler.target,),
                    )
                    reported = True
                    break
            if reported:
                break
        if reported:
            continue
        if len(resource_triggers) == len(triggers) and scaler.min_raw == 0:
            yield Violation(
                scaler.doc,
                "scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero "
                "doesn't work in this case)",
                path=("spec", "minReplicaCount"),
            )


@rule(
    "keda-triggers-are-valid",
    title="ScaledObject triggers pass KEDA's checks",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""KEDA's webhook refuses `triggerName %q is defined multiple times in the ScaledObject, but it
    must be unique` and `property "useCachedMetrics" is not supported for %q scaler` (cpu, memory, cron)
    (kedacore/keda apis/keda/v1alpha1/scaletriggers_types.go ValidateTriggers); a metricType of Utilization on
    an external scaler fails when the scaler is built (`'Utilization' metric type is unsupported for external
    metrics, allowed values are 'Value' or 'AverageValue'`, kedacore/keda pkg/scalers/scaler.go
    GetMetricTargetType).""",
    fix="Give each trigger a unique name, drop useCachedMetrics from cpu/memory/cron triggers, and use metricType "
    "AverageValue or Value for external scalers.",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaletriggers_types.go",
        "kedacore/keda pkg/scalers/scaler.go",
    ),
)
def triggers_are_valid(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        seen: set[str] = set()
        for index, trigger in _triggers(scaler.doc):
            kind = str(trigger.get("type") or "")
            if trigger.get("useCachedMetrics") is True and kind in ("cpu", "memory", "cron"):
                yield Violation(
                    scaler.doc,
                    f'property "useCachedMetrics" is not supported for "{kind}" scaler',
                    path=("spec", "triggers", index, "useCachedMetrics"),
                )
            name = trigger.get("name")
            if name:
                if name in seen:
                    yield Violation(
                        scaler.doc,
                        f'triggerName "{name}" is defined multiple times in the '
                        f"ScaledObject, but it must be unique",
                        path=("spec", "triggers", index, "name"),
                    )
                seen.add(str(name))
            if kind not in ("cpu", "memory") and trigger.get("metricType") == "Utilization":
                yield Violation(
                    scaler.doc,
                    f"trigger {index} ({kind}): 'Utilization' metric type is unsupported for "
                    f"external metrics, allowed values are 'Value' or 'AverageValue'",
                    path=("spec", "triggers", index, "metricType"),
                )


@rule(
    "keda-fallback-is-valid",
    title="fallback is accepted by KEDA and lies within the replica bounds",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""KEDA refuses a fallback with negative values (`FailureThreshold=%d & Replicas=%d must both be
    greater than or equal to 0`) and a fallback on a ScaledObject whose triggers are all cpu/memory: fallback
    replaces a failing external metric, and in 2.20 works for Value and AverageValue triggers but never for
    the cpu/memory resource metrics (kedacore/keda apis/keda/v1alpha1/scaledobject_types.go
    CheckFallbackValid; keda-docs content/docs/2.20/reference/scaledobject-spec.md#fallback). `behavior:
    scalingModifiers` needs advanced.scalingModifiers.formula. The HPA clamps its result to [minReplicas,
    maxReplicas], so a fallback.replicas outside the bounds is silently not what happens when the metric is
    lost.""",
    fix="Set fallback.failureThreshold and fallback.replicas >= 0, with replicas between minReplicaCount and "
    "maxReplicaCount, on a ScaledObject with at least one external (non cpu/memory) trigger.",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaledobject_types.go",
        "kedacore/keda-docs content/docs/2.20/reference/scaledobject-spec.md",
    ),
)
def fallback_is_valid(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        fallback = scaler.doc.spec.get("fallback")
        if not isinstance(fallback, dict):
            continue
        threshold = _int(fallback.get("failureThreshold"), 0)
        replicas = _int(fallback.get("replicas"), 0)
        if threshold < 0 or replicas < 0:
            yield Violation(
                scaler.doc,
                f"FailureThreshold={threshold} & Replicas={replicas} must both be greater than or equal to 0",
                path=("spec", "fallback"),
            )
            continue
        triggers = _triggers(scaler.doc)
        if not any(t.get("type") not in ("cpu", "memory") for _, t in triggers):
            yield Violation(
                scaler.doc,
                "fallback is configured but every trigger is cpu or memory: fallback is not "
                "supported by the CPU & memory scalers",
                path=("spec", "fallback"),
            )
            continue
        if fallback.get("behavior") == "scalingModifiers" and not scaler.doc.get(
            ("spec", "advanced", "scalingModifiers", "formula")
        ):
            yield Violation(
                scaler.doc,
                "fallback behavior scalingModifiers needs advanced.scalingModifiers.formula",
                path=("spec", "fallback", "behavior"),
            )
            continue
        minimum, maximum = scaler.hpa_min, scaler.max_replicas
        if fallback.get("behavior", "static") == "static" and not minimum <= replicas <= maximum:
            yield Violation(
                scaler.doc,
                f"fallback.replicas is {replicas}, outside [{minimum}, {maximum}]: the HPA "
                f"clamps it, so a lost metric gives {min(max(replicas, minimum), maximum)} "
                f"replicas, not {replicas}",
                path=("spec", "fallback", "replicas"),
            )


# ----------------------------------------------------------------------------------------------------
# Scaling behaviour (policies/scaling.yaml)
# ----------------------------------------------------------------------------------------------------
def _rules_of(behavior: dict[str, Any] | None, direction: str) -> dict[str, Any] | None:
    if behavior is None:
        return None
    value = behavior.get(direction)
    return value if isinstance(value, dict) else None


def scale_down_window(scaler: Autoscaler) -> tuple[int, str]:
    """Effective scale-down stabilization window and where it comes from."""
    rules = _rules_of(scaler.behavior, "scaleDown")
    if rules is not None and isinstance(rules.get("stabilizationWindowSeconds"), int):
        return int(rules["stabilizationWindowSeconds"]), "behavior.scaleDown.stabilizationWindowSeconds"
    return (
        CONTROLLER_DOWNSCALE_WINDOW,
        "the controller default (behavior.scaleDown.stabilizationWindowSeconds unset)",
    )


@rule(
    "scale-down-stabilization-window",
    title="scale-down stabilizes at least as long as the scaling policy's minimum window",
    area="keda",
    rule_class=RuleClass.POLICY,
    rationale="""GPU model servers take minutes to load weights; scaling them down on a short dip and back up
    costs a cold start. Within the scale-down stabilization window the HPA uses the HIGHEST recommendation
    (kubernetes pkg/controller/podautoscaler/horizontal.go stabilizeRecommendationWithBehaviors). KEDA copies
    advanced.horizontalPodAutoscalerConfig.behavior into the HPA it owns and sets none when it is absent
    (kedacore/keda controllers/keda/hpa.go); an HPA without behavior.scaleDown.stabilizationWindowSeconds uses
    the controller flag --horizontal-pod-autoscaler-downscale-stabilization, 5m by default and not changeable
    on EKS (kubernetes pkg/apis/autoscaling/v2/defaults.go). The minimum window is the scaling policy's
    scaleDown.minStabilizationWindowSeconds (the reference profile: 300 s); without it nothing is judged.""",
    fix="Set advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds to at least the "
    "scaling policy's minimum.",
    sources=(
        "kubernetes/kubernetes pkg/apis/autoscaling/v2/defaults.go",
        "kubernetes/kubernetes pkg/controller/podautoscaler/horizontal.go",
        "kedacore/keda controllers/keda/hpa.go",
    ),
)
def scale_down_stabilization_window(ctx: CheckContext) -> Iterator[Violation]:
    configured = (ctx.policy.scaling.get("scaleDown") or {}).get("minStabilizationWindowSeconds")
    if configured is None:
        return
    minimum = int(configured)
    for scaler in gpu_autoscalers(ctx):
        window, source = scale_down_window(scaler)
        if window < minimum:
            yield Violation(
                scaler.doc,
                f"scale-down stabilization window is {window}s (from {source}); the scaling policy "
                f"({ctx.policy.source_of('scaling')}) wants at least {minimum}s",
                path=(*scaler.behavior_path, "scaleDown", "stabilizationWindowSeconds"),
            )


def _policies(rules: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    value = rules.get("policies")
    return [(i, p) for i, p in enumerate(value) if isinstance(p, dict)] if isinstance(value, list) else []


def _scale_down_rules(policies: list[tuple[int, dict[str, Any]]], select: str) -> ScalingRules:
    return ScalingRules(
        None,
        select,  # type: ignore[arg-type]
        tuple(
            ScalingPolicy(
                "Percent" if p.get("type") == "Percent" else "Pods",
                _int(p.get("value"), 0),
                max(_int(p.get("periodSeconds"), 1), 1),
            )
            for _, p in policies
        ),
    )


def allowed_removal(replicas: int, max_percent: float) -> int:
    """Pods a `max_percent` per-period policy removes from `replicas`, with the HPA's arithmetic:
    int32(float64(replicas) * (1 - percent/100)) is the floor it may go down to."""
    return replicas - int(replicas * (1 - max_percent / 100))


@rule(
    "scale-down-rate-limited",
    title="scale-down removes pods no faster than the scaling policy's rate limit",
    area="keda",
    rule_class=RuleClass.POLICY,
    rationale="""Removing many GPU replicas at once drops capacity faster than traffic falls and forfeits warm
    model caches. The HPA limits scale-down with behavior.scaleDown.policies: with selectPolicy Max (the
    default) the policy allowing the LARGEST change wins, with Min the smallest, Disabled forbids scale-down
    (kubernetes pkg/controller/podautoscaler/horizontal.go calculateScaleDownLimitWithBehaviors). A behavior
    block without scaleDown policies gets Percent 100 per 15 s, and an HPA without any behavior has no
    scale-down rate limit at all (kubernetes pkg/apis/autoscaling/v2/defaults.go). Limits are the scaling
    policy's scaleDown maxPercentPerPeriod per periodSeconds (the reference profile: 25% per 60 s); without them
    nothing is judged. The
    policies are judged the way the controller applies them: for every replica count between the minimum
    and the maximum, the pods removed within the period by 15 s syncs, each policy counting the removals of
    its own period, a Pods policy removing `value`, a Percent policy going down to
    int32(float64(periodStart) * (1 - value/100)) (horizontal.go calculateScaleDownLimitWithBehaviors); that
    must not exceed what a Percent policy of the organisation's limit removes from the same count (so
    Percent 25 removes 1 of 2 pods, and Pods 1 per 60 s is as gentle at 2 replicas).""",
    fix="""Set behavior.scaleDown.policies to `[{type: Percent, value: <maxPercentPerPeriod>, periodSeconds:
    <periodSeconds>}]` of the scaling policy (or stricter), with selectPolicy Max only when every policy is within
    the limit.""",
    sources=(
        "kubernetes/kubernetes pkg/apis/autoscaling/v2/defaults.go",
        "kubernetes/kubernetes pkg/controller/podautoscaler/horizontal.go",
    ),
)
def scale_down_rate_limited(ctx: CheckContext) -> Iterator[Violation]:
    policy = ctx.policy.scaling.get("scaleDown") or {}
    if policy.get("maxPercentPerPeriod") is None or policy.get("periodSeconds") is None:
        return
    max_percent = float(policy["maxPercentPerPeriod"])
    window = int(policy["periodSeconds"])
    source = ctx.policy.source_of("scaling")
    for scaler in gpu_autoscalers(ctx):
        behavior = scaler.behavior
        path = (*scaler.behavior_path, "scaleDown")
        if behavior is None:
            yield Violation(
                scaler.doc,
                "no behavior block: the HPA's legacy scale-down has no rate limit and may "
                f"remove every pod above the minimum at once; the scaling policy ({source}) allows "
                f"{policy['maxPercentPerPeriod']}% per {window}s",
                path=scaler.behavior_path if scaler.doc.get(scaler.behavior_path[:-1]) else ("spec",),
            )
            continue
        rules = _rules_of(behavior, "scaleDown") or {}
        select = str(rules.get("selectPolicy") or "Max")
        if select == "Disabled":
            continue
        policies = _policies(rules)
        if not policies:
            yield Violation(
                scaler.doc,
                f"behavior.scaleDown has no policies: the default Percent 100 per 15s lets "
                f"the HPA remove every pod above the minimum; the scaling policy ({source}) allows "
                f"{policy['maxPercentPerPeriod']}% per {window}s",
                path=path,
            )
            continue
        # For every replica count the HPA may scale down from, the pods the policies let it remove within
        # the policy window (15 s syncs, each policy's own period, Pods/Percent rounding: simulation/hpa.py
        # scale_down_limit, a port of horizontal.go calculateScaleDownLimitWithBehaviors), against what
        # the organisation's Percent policy removes from the same count.
        rules_model = _scale_down_rules(policies, select)
        minimum = scaler.hpa_min
        worst: tuple[int, int, int] | None = None  # (excess, replicas, removed)
        for replicas in range(minimum + 1, scaler.max_replicas + 1):
            removed = pods_removed_within(replicas, minimum, rules_model, window)
            allowed = allowed_removal(replicas, max_percent)
            if removed > allowed and (worst is None or removed - allowed > worst[0]):
                worst = (removed - allowed, replicas, removed)
        if worst is None:
            continue
        _, replicas, removed = worst
        solo = [
            (pods_removed_within(replicas, minimum, _scale_down_rules([(i, p)], "Max"), window), i, p)
            for i, p in policies
        ]
        chosen = max(solo, key=lambda f: f[0]) if select == "Max" else min(solo, key=lambda f: f[0])
        p = chosen[2]
        yield Violation(
            scaler.doc,
            f"scale-down policy {p.get('type')} {p.get('value')} per {p.get('periodSeconds')}s "
            f"(selectPolicy {select}) lets the HPA remove {removed} of {replicas} pods in {window}s; "
            f"the scaling policy ({source}) allows {policy['maxPercentPerPeriod']}% per {window}s "
            f"({allowed_removal(replicas, max_percent)} of {replicas})",
            path=(*path, "policies", chosen[1]),
        )


def _up_allowance(policies: list[dict[str, Any]], select: str, current: int, period: int) -> int:
    allowed: list[int] = []
    for p in policies:
        value = _int(p.get("value"), 0)
        if _int(p.get("periodSeconds"), 0) > period:
            # A longer period grants the step once but a slower sustained rate: it never meets "per period".
            allowed.append(0)
            continue
        if p.get("type") == "Percent":
            allowed.append(math.ceil(current * (1 + value / 100)) - current)
        else:
            allowed.append(value)
    if not allowed:
        return 0
    return max(allowed) if select == "Max" else min(allowed)


@rule(
    "scale-up-rate",
    title="scale-up is at least as fast as the scaling policy asks",
    area="keda",
    rule_class=RuleClass.POLICY,
    rationale="""A traffic surge on a model server must add replicas quickly: GPU nodes take minutes to join,
    so the HPA must not hold scale-up back too. The scaling policy's scaleUp sets the floor (the reference
    profile: 100% or 4 pods per 15 s, the HPA's own default when a behavior block omits scaleUp, kubernetes
    pkg/apis/autoscaling/v2/defaults.go): stabilization window at most scaleUp.maxStabilizationWindowSeconds,
    and per periodSeconds at least the larger of percent% and pods pods (selectPolicy Max); without it nothing
    is judged. Without any behavior block the legacy limit applies: at most max(2 x
    current, 4) replicas per sync, slower than 4 pods for 1-3 replicas (kubernetes
    pkg/controller/podautoscaler/horizontal.go calculateScaleUpLimit). Percent rounds up: ceil(start * (1 +
    p)).""",
    fix="""Leave behavior.scaleUp out of an explicit behavior block (the default is 100%/4 pods per 15 s,
    Max), or set policies `[{type: Percent, value: 100, periodSeconds: 15}, {type: Pods, value: 4,
    periodSeconds: 15}]` with selectPolicy Max and stabilizationWindowSeconds 0.""",
    sources=(
        "kubernetes/kubernetes pkg/apis/autoscaling/v2/defaults.go",
        "kubernetes/kubernetes pkg/controller/podautoscaler/horizontal.go",
    ),
)
def scale_up_rate(ctx: CheckContext) -> Iterator[Violation]:
    policy = ctx.policy.scaling.get("scaleUp") or {}
    if any(policy.get(k) is None for k in ("percent", "pods", "periodSeconds", "maxStabilizationWindowSeconds")):
        return
    percent, pods, period = int(policy["percent"]), int(policy["pods"]), int(policy["periodSeconds"])
    max_window = int(policy["maxStabilizationWindowSeconds"])
    source = ctx.policy.source_of("scaling")
    for scaler in gpu_autoscalers(ctx):
        maximum = scaler.max_replicas
        behavior = scaler.behavior
        path = (*scaler.behavior_path, "scaleUp")

        def wanted(current: int, maximum: int = maximum) -> int:
            step = max(math.ceil(current * (1 + percent / 100)) - current, pods)
            return min(step, maximum - current)

        if behavior is None:
            slow = [c for c in range(1, maximum) if max(2 * c, 4) - c < wanted(c)]
            if slow:
                yield Violation(
                    scaler.doc,
                    f"no behavior block: the legacy limit max(2 x current, 4) replicas per "
                    f"sync adds fewer than {pods} pods at {slow[0]}..{slow[-1]} replicas; the scaling policy "
                    f"({source}) wants {percent}% or {pods} pods per {period}s",
                    path=("spec",),
                )
            continue
        rules = _rules_of(behavior, "scaleUp")
        if rules is None:
            continue  # defaults: Pods 4 / Percent 100 per 15 s, Max, window 0
        window = rules.get("stabilizationWindowSeconds")
        if isinstance(window, int) and window > max_window:
            yield Violation(
                scaler.doc,
                f"scale-up stabilization window is {window}s; the scaling policy ({source}) allows at most "
                f"{max_window}s",
                path=(*path, "stabilizationWindowSeconds"),
            )
            continue
        select = str(rules.get("selectPolicy") or "Max")
        if select == "Disabled":
            yield Violation(scaler.doc, f"scale-up is Disabled; the scaling policy ({source}) wants {percent}% or "
                            f"{pods} pods per {period}s", path=(*path, "selectPolicy"))
            continue
        policies = [p for _, p in _policies(rules)] or [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ]
        for current in range(1, maximum):
            have = _up_allowance(policies, select, current, period)
            need = wanted(current)
            if have < need:
                yield Violation(
                    scaler.doc,
                    f"at {current} replicas scale-up may add {have} pod(s) per {period}s "
                    f"(selectPolicy {select}); the scaling policy ({source}) wants {need} ({percent}% or "
                    f"{pods} pods, whichever is more)",
                    path=(*path, "policies"),
                )
                break


# ----------------------------------------------------------------------------------------------------
# Workload classes (policies/workload-classes.yaml)
# ----------------------------------------------------------------------------------------------------
def workload_label(doc: Document, label: str) -> tuple[str | None, FieldPath]:
    """A label on the workload's metadata, or else on its pod template (both are accepted)."""
    if label in doc.labels:
        return str(doc.labels[label]), ("metadata", "labels", label)
    template = pod_template_of(doc)
    if template is not None and label in template.labels:
        return str(template.labels[label]), (*template.path, "metadata", "labels", label)
    return None, ("metadata", "labels")


def _threshold(trigger: Mapping[str, Any]) -> Decimal | None:
    value = _metadata(trigger).get("threshold")
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


@rule(
    "scaling-matches-workload-class",
    title="GPU autoscaling matches the workload class",
    area="keda",
    rule_class=RuleClass.POLICY,
    rationale="""The seed's threshold table (policies/workload-classes.yaml) fixes, per workload class, the
    GPU utilization a pod is scaled at (scaleUpUtilization = the GPU-utilization trigger's threshold: the HPA
    has one target per metric) and the cooldown (cooldownSeconds = the scale-down stabilization window for
    1..N replicas; KEDA's cooldownPeriod only governs scaling to zero, keda-docs content/docs/2.20/reference/
    scaledobject-spec.md#cooldownperiod). When the policy in force defines classes, a KEDA-scaled GPU workload
    must declare its class with the policy's classLabel (`gpu-policy.io/workload-class` by default; on the
    Deployment or its pod template) so the table can be applied; without classes nothing is judged.
    dcgm-exporter emits one DCGM_FI_DEV_GPU_UTIL series per GPU (NVIDIA/dcgm-exporter README: labels gpu,
    UUID), so a `sum(...)` query with metricType AverageValue totals every GPU and its per-pod threshold is
    scaleUpUtilization x the pod's nvidia.com/gpu limit (8 x 70 = 560 for an 8-GPU pod); an `avg(...)` with
    metricType Value is a per-GPU figure and keeps threshold = scaleUpUtilization.""",
    fix="""Label the workload with its class, set the DCGM_FI_DEV_GPU_UTIL trigger's threshold to the class's
    scaleUpUtilization (x GPUs per pod for a sum with AverageValue), and a scale-down
    stabilizationWindowSeconds >= the class's cooldownSeconds.""",
    sources=(
        "kedacore/keda-docs content/docs/2.20/reference/scaledobject-spec.md",
        "NVIDIA/dcgm-exporter README.md",
    ),
)
def scaling_matches_workload_class(ctx: CheckContext) -> Iterator[Violation]:
    classes = ctx.policy.workload_classes
    table = classes.get("classes") or {}
    label = str(classes.get("classLabel") or "")
    if not table or not label:
        return  # no workload classes in the policy in force: nothing to judge
    source = ctx.policy.source_of("workload-classes")
    for scaler in gpu_autoscalers(ctx):
        if not scaler.is_scaled_object:
            continue
        assert scaler.target is not None
        value, label_path = workload_label(scaler.target, label)
        if value is None:
            yield Violation(
                scaler.target,
                f"{scaler.target.ref} runs GPU pods scaled by ScaledObject {scaler.doc.name!r} but has no "
                f"{label} label (classes of {source}: {', '.join(table)})",
                path=label_path,
                exemptible_by=(scaler.doc,),
            )
            continue
        spec = table.get(value)
        if spec is None:
            yield Violation(
                scaler.target,
                f"{label} is {value!r}, not a class of {source} "
                f"({', '.join(table)})",
                path=label_path,
                exemptible_by=(scaler.doc,),
            )
            continue
        utilization = Decimal(str(spec["scaleUpUtilization"]))
        gpus = gpus_per_pod(scaler.target)
        for index, trigger in _triggers(scaler.doc):
            query = str(_metadata(trigger).get("query") or "")
            if trigger.get("type") != "prometheus" or GPU_UTIL_METRIC not in metric_names(query):
                continue
            # dcgm-exporter emits one DCGM_FI_DEV_GPU_UTIL series per GPU (labels gpu, UUID: NVIDIA/
            # dcgm-exporter README): sum(...) with AverageValue totals the GPUs, so the per-pod target is
            # scaleUpUtilization x the pod's GPUs; an avg (Value) is already per GPU.
            summed = query_aggregation(query) == "sum" and _metric_type(trigger) == "AverageValue"
            want = utilization * gpus if summed and gpus > 1 else utilization
            have = _threshold(trigger)
            if have is None or have != want:
                per_gpu = (
                    f" ({utilization}% x {gpus} GPUs per pod: the query sums one series per GPU)"
                    if want != utilization else ""
                )
                yield Violation(
                    scaler.doc,
                    f"GPU-utilization trigger threshold is {_metadata(trigger).get('threshold')}"
                    f"; class {value!r} ({source}) scales up at {utilization}%, so the threshold must be "
                    f"{want}{per_gpu}",
                    path=("spec", "triggers", index, "metadata", "threshold"),
                )
        window, where = scale_down_window(scaler)
        cooldown = int(spec["cooldownSeconds"])
        if window < cooldown:
            yield Violation(
                scaler.doc,
                f"scale-down stabilization window is {window}s (from {where}); class "
                f"{value!r} ({source}) cools down for {cooldown}s",
                path=(*scaler.behavior_path, "scaleDown", "stabilizationWindowSeconds"),
            )


# ----------------------------------------------------------------------------------------------------
# Prometheus triggers: query semantics, target pods, server address
# ----------------------------------------------------------------------------------------------------
AVERAGING = frozenset({"avg", "max", "min", "quantile", "stddev", "stdvar", "group"})
SUMMING = frozenset({"sum", "count"})


_CONSTANT_OPS = frozenset({"+", "-", "*", "/"})


def _skip_group(tokens: tuple[Token, ...], i: int) -> int:
    """Index after the bracket group opening at tokens[i]."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind in ("(", "{", "["):
            depth += 1
        elif tokens[j].kind in (")", "}", "]"):
            depth -= 1
            if depth == 0:
                return j + 1
    return len(tokens)


def _only_constants(tokens: tuple[Token, ...]) -> bool:
    return all(t.kind in ("number", "(", ")") or (t.kind == "op" and t.text in _CONSTANT_OPS) for t in tokens)


def query_aggregation(query: str) -> str | None:
    """The aggregation that decides what the query returns: one aggregation covering the whole query
    (`sum(x)`, `avg by (ns) (x)`), or one combined only with number literals (`100 * avg(x)`,
    `sum(x) / 100`), which scales the value but not its kind. None otherwise (`sum(x) / count(x)`,
    `avg(x) * count(x)`: an aggregation of an aggregation's ratio or product is neither a total nor a per-pod
    figure that the first operator names), and for a query without an aggregation."""
    outer = outer_aggregation(query)
    if outer is None:
        return None
    if outer.whole:
        return outer.operator
    tokens = tokenize(query)
    found: str | None = None
    rest: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "ident" and token.word in AGGREGATIONS:
            if found is not None:
                return None  # a second top-level aggregation
            found = token.word
            i += 1
            # `op by (l) (expr)` or `op (expr) by (l)`
            if i < len(tokens) and tokens[i].word in ("by", "without"):
                i = _skip_group(tokens, i + 1)
            if i < len(tokens) and tokens[i].kind == "(":
                i = _skip_group(tokens, i)
            if i < len(tokens) and tokens[i].word in ("by", "without"):
                i = _skip_group(tokens, i + 1)
            continue
        if token.kind == "ident":
            return None  # a function or a selector outside the aggregation
        if token.kind in ("(", ")") or token.kind == "number" or token.kind == "op":
            rest.append(token)
            i += 1
            continue
        return None
    return found if found is not None and _only_constants(tuple(rest)) else None


def _prometheus_triggers(scaler: Autoscaler) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    for index, trigger in _triggers(scaler.doc):
        if trigger.get("type") == "prometheus":
            yield index, trigger, _metadata(trigger)


@rule(
    "query-aggregation-matches-metric-type",
    title="the query's aggregation suits the metricType",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The prometheus trigger's threshold becomes the HPA target. With metricType AverageValue
    (KEDA's default, kedacore/keda pkg/scalers/scaler.go) the HPA computes desired = ceil(value / threshold)
    whatever the replica count (kubernetes pkg/controller/podautoscaler/replica_calculator.go
    GetExternalPerPodMetricReplicas): the query must return a TOTAL (sum over pods); an avg/max/min returns
    one pod's worth, so 80% average with threshold 70 asks for 2 replicas even when 10 run and the model never
    scales out. With metricType Value, desired = ceil(readyPods x value / threshold): the query must return a
    per-pod figure (avg); a sum already grows with the replicas, so every scale-up inflates the metric again
    and the workload runs away to maxReplicaCount (kedacore/keda#5781, #4148). Light parsing: a query is
    judged only when one aggregation covers all of it, or is combined only with number literals
    (`100 * avg(x)`); a binary operation between aggregations (`sum(x) / count(x)` is a per-pod average,
    `avg(x) * count(x)` a total) is not judged by its first operator.""",
    fix="Use `sum(...)` with metricType AverageValue (threshold = per-pod target), or `avg(...)` with metricType "
    "Value.",
    sources=(
        "kedacore/keda pkg/scalers/scaler.go",
        "kedacore/keda pkg/scalers/prometheus_scaler.go",
        "kubernetes/kubernetes pkg/controller/podautoscaler/replica_calculator.go",
    ),
)
def query_aggregation_matches_metric_type(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        for index, trigger, meta in _prometheus_triggers(scaler):
            query = str(meta.get("query") or "")
            if not query.strip():
                continue
            aggregation = query_aggregation(query) or ""
            metric_type = _metric_type(trigger)
            path = ("spec", "triggers", index, "metadata", "query")
            # A query without an outer aggregation (one series per GPU) is keda-query-reads-only-its-target's
            # finding: it evaluates the query over synthetic series with promtool.
            if metric_type == "AverageValue" and aggregation in AVERAGING:
                yield Violation(
                    scaler.doc,
                    f"trigger {index}: {aggregation}(...) with metricType AverageValue gives "
                    f"desired = ceil({aggregation} / threshold) whatever the replica count "
                    f"(e.g. {aggregation} 80 / threshold 70 -> 2 replicas even when 10 run)",
                    path=path,
                )
            elif metric_type == "Value" and aggregation in SUMMING:
                yield Violation(
                    scaler.doc,
                    f"trigger {index}: {aggregation}(...) with metricType Value gives desired "
                    f"= ceil(readyPods x {aggregation} / threshold): the {aggregation} grows "
                    f"with the pods, so each scale-up inflates the metric again",
                    path=path,
                )


PER_POD_METRIC_PREFIXES = ("vllm:", "vllm_")
"""vLLM serves its metrics from every model-server pod (vllm/engine metrics, one /metrics per server)."""
POD_LABELS = ("pod", "pod_name", "kubernetes_pod_name", "exported_pod")
WORKLOAD_LABELS = ("deployment", "statefulset", "service", "job", "app", "app_kubernetes_io_name",
                   "app_kubernetes_io_instance", "container", "kubernetes_name", "service_name")
SINGLE_SERIES_FUNCTIONS = frozenset({"scalar", "vector", "absent", "absent_over_time", "time"})


def _holds(op: str, pattern: str, value: str) -> bool:
    if op == "=":
        return value == pattern
    if op == "=~":
        try:
            return re.fullmatch(pattern, value) is not None
        except re.error:
            return False
    return False


def per_pod_reason(query: str, target: str) -> str | None:
    """Why an un-aggregated query returns one series per pod of the scaled workload (None when it may not):
    a vLLM metric (each server pod exports it), a pod-name matcher that is not one exact pod, or a matcher naming
    the target workload (`deployment`, `service`, `job`, `app`, ...). Queries with any aggregation, scalar() or
    vector(), and DCGM queries (keda-query-reads-only-its-target evaluates those) are not judged, except an outermost
    aggregation `by` a pod label, which keeps one series per pod."""
    found = selectors(query)
    if any(t.kind == "ident" and t.word in SINGLE_SERIES_FUNCTIONS for t in tokenize(query)) or not found or any(
        (s.metric or "").startswith("DCGM_") for s in found
    ):
        return None
    if aggregations(query):
        outer = outer_aggregation(query)
        per_pod = [label for label in outer.labels if label in POD_LABELS] if outer and outer.grouping == "by" else []
        if outer is not None and outer.whole and per_pod and not any(
            m.name == per_pod[0] and m.op == "=" for s in found for m in s.matchers
        ):
            return f"{outer.operator} by ({', '.join(outer.labels)}) keeps one series per {per_pod[0]}"
        return None
    for sel in found:
        metric = sel.metric or ""
        if metric.startswith(PER_POD_METRIC_PREFIXES):
            return f"{metric} is exported by every vLLM server pod"
        for m in sel.matchers:
            if m.name in POD_LABELS and m.op != "=":
                return f"{metric}{{{m.name}{m.op}\"{m.value}\"}} selects several pods"
            if target and m.name in WORKLOAD_LABELS and _holds(m.op, m.value, target):
                return f"{metric}{{{m.name}{m.op}\"{m.value}\"}} selects the series of every pod of {target}"
    return None


@rule(
    "keda-query-returns-one-series",
    title="every KEDA prometheus query aggregates its target's pods into one series",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""KEDA's prometheus scaler accepts an empty result or exactly one element: with more it fails
    with `prometheus query %s returned multiple elements` (kedacore/keda v2.20.2 pkg/scalers/prometheus_scaler.go
    ExecutePromQuery; keda-docs scalers/prometheus.md: "query must return a vector/scalar single element
    response"). A query without any aggregation over a metric that every pod of the scaled workload exports
    (`vllm:num_requests_waiting`, `rate(http_requests_total{job="app"}[1m])`) works with one replica and fails
    on every poll once a second pod runs: the HPA then keeps the current count (or KEDA applies fallback), so the
    workload never scales further. Any metric is judged, not only GPU metrics; judged when maxReplicaCount is at
    least 2 and the query shows it reads per-pod series (a vLLM metric, a pod-name matcher other than one exact
    pod, or a matcher naming the target).""",
    fix="Aggregate across the pods: `sum(vllm:num_requests_waiting{namespace=\"ns\"})` (metricType AverageValue), "
    "or `avg(...)` with metricType Value.",
    sources=(
        "kedacore/keda v2.20.2 pkg/scalers/prometheus_scaler.go (returned multiple elements)",
        "kedacore/keda-docs content/docs/2.20/scalers/prometheus.md",
    ),
)
def keda_query_returns_one_series(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        if scaler.max_replicas < 2:
            continue
        for index, _trigger, meta in _prometheus_triggers(scaler):
            query = str(meta.get("query") or "")
            if not query.strip():
                continue
            reason = per_pod_reason(query, scaler.name)
            if reason is None:
                continue
            yield Violation(
                scaler.doc,
                f"trigger {index}: query {query.strip()!r} has no aggregation and {reason}: with 2 or more "
                f"replicas (maxReplicaCount {scaler.max_replicas}) KEDA fails with 'prometheus query ... returned "
                "multiple elements' and stops scaling",
                path=("spec", "triggers", index, "metadata", "query"),
            )


_HOST = re.compile(
    r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?))?"
    r"(\.svc(\.cluster\.local)?)?$"
)
# The labels the Prometheus Operator gives a Prometheus' pods (prometheus-operator pkg/prometheus/server
# statefulset.go / operator.go: app.kubernetes.io/name, managed-by, instance,
# operator.prometheus.io/name|shard, prometheus=<name>), plus spec.podMetadata.labels.
PROMETHEUS_WEB_PORT = 9090


def prometheus_pod_labels(prometheus: Document) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": prometheus.name,
        "operator.prometheus.io/name": prometheus.name,
        "operator.prometheus.io/shard": "0",
        "prometheus": prometheus.name,
    }
    extra = prometheus.get(("spec", "podMetadata", "labels"))
    if isinstance(extra, dict):
        labels.update({str(k): str(v) for k, v in extra.items()})
    return labels


def _prometheus_pods_in_set(ctx: CheckContext, namespace: str) -> bool:
    """The set declares a Prometheus, or a workload running a prometheus image, in `namespace`."""
    if any(p.namespace == namespace for p in ctx.graph.of_kind("Prometheus")):
        return True
    return any(
        template.owner.namespace == namespace
        and any("prometheus" in str(c.get("image") or "").rsplit("/", 1)[-1] for _, c in template.containers())
        for template in ctx.graph.pod_templates()
    )


def _service_reaches_prometheus(ctx: CheckContext, service: Document, port: int) -> str | None:
    """None when `service:port` leads to Prometheus pods; else what is wrong."""
    ports = [p for p in service.spec.get("ports") or [] if isinstance(p, dict)]
    entry = next((p for p in ports if p.get("port") == port), None)
    if entry is None:
        return (
            f"Service {service.ref} has no port {port} (ports: "
            f"{', '.join(str(p.get('port')) for p in ports) or 'none'})"
        )
    selector = service.spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        return f"Service {service.ref} has no selector, so it selects no Prometheus pods"
    prometheuses = [p for p in ctx.graph.of_kind("Prometheus") if p.namespace == service.namespace]
    if any(matches_map(selector, prometheus_pod_labels(p)) for p in prometheuses):
        target_port = entry.get("targetPort", port)
        if target_port not in (PROMETHEUS_WEB_PORT, "web"):
            return (
                f"Service {service.ref} port {port} forwards to targetPort {target_port!r}; Prometheus listens on "
                f"{PROMETHEUS_WEB_PORT} (port name 'web')"
            )
        return None
    for template in ctx.graph.pod_templates():
        if template.owner.namespace != service.namespace or not matches_map(selector, template.labels):
            continue
        if any(
            "prometheus" in str(c.get("image") or "").rsplit("/", 1)[-1] for _, c in template.containers()
        ):
            return None
    return (
        f"Service {service.ref} selector {selector} matches no Prometheus' pods in namespace "
        f"{service.namespace!r}"
    )


@rule(
    "server-address-reaches-prometheus",
    title="serverAddress reaches a Prometheus",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""A prometheus trigger whose serverAddress does not resolve, or resolves to something other
    than Prometheus, fails every poll; with fallback KEDA then pins the fallback replica count, without it the
    HPA keeps the current count and never scales. The address is resolved by the KEDA operator, which runs in
    its own namespace (keda), so a bare service name does not resolve to the ScaledObject's namespace: use
    `<service>.<namespace>[.svc[.cluster.local]]`. The Service must expose the port and select the Prometheus
    pods: the Prometheus Operator labels them app.kubernetes.io/name=prometheus, prometheus=<name>,
    operator.prometheus.io/name=<name> (prometheus-operator pkg/prometheus/server/statefulset.go) and creates
    the governing Service `prometheus-operated` (port 9090, web) in the Prometheus' namespace. Addresses
    outside the cluster (another domain) are not checked; a Service, or Prometheus pods, absent from the set
    (installed by a chart) are "not checked" unless the set is declared complete.""",
    fix="Set serverAddress to `http://<service>.<namespace>.svc.cluster.local:<port>` of a Service in the set that "
    "selects the Prometheus pods (or `prometheus-operated.<namespace>:9090`).",
    sources=(
        "kedacore/keda-docs content/docs/2.20/scalers/prometheus.md",
        "prometheus-operator/prometheus-operator pkg/prometheus/server/statefulset.go",
    ),
)
def server_address_reaches_prometheus(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        for index, _trigger, meta in _prometheus_triggers(scaler):
            address = str(meta.get("serverAddress") or "")
            path = ("spec", "triggers", index, "metadata", "serverAddress")
            if not address:
                continue  # authenticated via TriggerAuthentication or missing: the schema/KEDA reports it
            parts = urlsplit(address)
            host = (parts.hostname or "").lower()
            match = _HOST.match(host)
            if parts.scheme not in ("http", "https") or match is None:
                continue  # an external endpoint (AMP, Thanos elsewhere): not checkable from manifests
            name, namespace = match.group("name"), match.group("ns")
            if namespace is None:
                yield Violation(
                    scaler.doc,
                    f"trigger {index}: serverAddress host {host!r} has no namespace; the KEDA "
                    f"operator resolves it in its own namespace, not {scaler.doc.namespace!r}",
                    path=path,
                )
                continue
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                yield Violation(
                    scaler.doc, f"trigger {index}: serverAddress {address!r} has an invalid port", path=path
                )
                continue
            service = ctx.graph.get("Service", name, namespace)
            if service is None:
                if name == "prometheus-operated" and any(
                    p.namespace == namespace for p in ctx.graph.of_kind("Prometheus")
                ):
                    if port != PROMETHEUS_WEB_PORT:
                        yield Violation(
                            scaler.doc,
                            f"trigger {index}: prometheus-operated listens on "
                            f"{PROMETHEUS_WEB_PORT}, not {port}",
                            path=path,
                        )
                    continue
                yield from ctx.missing(
                    scaler.doc, path,
                    f"ScaledObject {scaler.doc.namespace}/{scaler.doc.name} trigger {index}: serverAddress "
                    f"{address!r} names Service {namespace}/{name}, which is not in the manifest set",
                )
                continue
            if not _prometheus_pods_in_set(ctx, service.namespace):
                yield from ctx.missing(
                    scaler.doc, path,
                    f"ScaledObject {scaler.doc.namespace}/{scaler.doc.name} trigger {index}: Service {service.ref} "
                    f"selects Prometheus pods that are not in the set (no Prometheus in namespace "
                    f"{service.namespace!r})",
                )
                continue
            problem = _service_reaches_prometheus(ctx, service, port)
            if problem is not None:
                yield Violation(
                    scaler.doc, f"trigger {index}: {problem}", path=path, exemptible_by=(service,)
                )


# ----------------------------------------------------------------------------------------------------
# Removed / no-op fields, null handling, SLA, replicas in Git
# ----------------------------------------------------------------------------------------------------
@rule(
    "keda-no-dead-fields",
    title="ScaledObjects carry no removed or no-op fields",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    severity=Severity.WARNING,
    rationale="""Fields that do nothing mislead the reader into thinking they tune scaling. Trigger metadata
    `metricName` was deprecated in KEDA 2.10 and removed in 2.12 (ignored except by aws-cloudwatch,
    huawei-cloudeye and azure-monitor; kedacore/keda apis/keda/v1alpha1/scaletriggers_types.go).
    `activationThreshold` only decides 0 <-> 1 and is ignored when minReplicaCount >= 1; `cooldownPeriod` only
    applies when scaling to zero (keda-docs content/docs/2.20/reference/scaledobject-spec.md; KEDA's webhook
    warns `CooldownPeriod is configured but is not relevant` when minReplicaCount > 0 and idleReplicaCount is
    unset), and so does `initialCooldownPeriod`: the executor reads both only in scaleToZeroOrIdle, which it
    enters only with idleReplicaCount set or minReplicaCount 0 (kedacore/keda
    pkg/scaling/executor/scale_scaledobjects.go RequestScale). The seed's cooldown belongs in the scale-down
    stabilization window.""",
    fix="Remove metricName; remove activationThreshold, cooldownPeriod and initialCooldownPeriod when "
    "minReplicaCount >= 1 (put the cooldown in behavior.scaleDown.stabilizationWindowSeconds).",
    sources=(
        "kedacore/keda apis/keda/v1alpha1/scaletriggers_types.go",
        "kedacore/keda-docs content/docs/2.20/reference/scaledobject-spec.md",
        "kedacore/keda pkg/scaling/executor/scale_scaledobjects.go (RequestScale, scaleToZeroOrIdle)",
    ),
)
def no_dead_fields(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        spec = scaler.doc.spec
        scales_from_zero = scaler.min_raw == 0 or "idleReplicaCount" in spec
        for index, trigger in _triggers(scaler.doc):
            meta = _metadata(trigger)
            if "metricName" in meta and trigger.get("type") not in (
                "aws-cloudwatch",
                "huawei-cloudeye",
                "azure-monitor",
            ):
                yield Violation(
                    scaler.doc,
                    f"trigger {index}: metadata.metricName was removed in KEDA 2.12 and is ignored",
                    path=("spec", "triggers", index, "metadata", "metricName"),
                )
            if "activationThreshold" in meta and not scales_from_zero:
                yield Violation(
                    scaler.doc,
                    f"trigger {index}: activationThreshold only governs 0 <-> 1 and "
                    f"minReplicaCount is {scaler.min_raw}",
                    path=("spec", "triggers", index, "metadata", "activationThreshold"),
                )
        for name in ("cooldownPeriod", "initialCooldownPeriod"):
            if name in spec and not scales_from_zero:
                yield Violation(
                    scaler.doc,
                    f"{name} is {spec[name]} but only applies when scaling to "
                    f"zero, and minReplicaCount is {scaler.min_raw}",
                    path=("spec", name),
                )


def _parse_bool(value: Any, default: bool) -> bool:
    """Go strconv.ParseBool, as KEDA reads trigger metadata."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value)
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return default


@rule(
    "lost-metric-is-not-zero",
    title="a lost GPU metric does not silently scale to the minimum",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""With ignoreNullValues true (the default) the prometheus scaler reports 0 for an empty result,
    an empty value list, or a NaN/Inf value (keda-docs content/docs/2.20/scalers/prometheus.md; kedacore/keda
    pkg/scalers/prometheus_scaler.go ExecutePromQuery; releases before the NaN check passed NaN through):
    when the DCGM exporter or its scrape is lost the model servers are
    scaled down to the minimum exactly when nobody can see their load, and `fallback` never fires because
    nothing failed. With "false" an empty result is an error: the HPA keeps the current replicas, or KEDA
    applies fallback. Required on every GPU-metric (DCGM_*) trigger and on every prometheus trigger of a
    ScaledObject that configures fallback.""",
    fix='Set `ignoreNullValues: "false"` in the trigger metadata (and configure fallback).',
    sources=(
        "kedacore/keda-docs content/docs/2.20/scalers/prometheus.md",
        "kedacore/keda pkg/scalers/prometheus_scaler.go",
    ),
)
def lost_metric_is_not_zero(ctx: CheckContext) -> Iterator[Violation]:
    for scaler in _scaled_objects(ctx):
        has_fallback = isinstance(scaler.doc.spec.get("fallback"), dict)
        for index, _trigger, meta in _prometheus_triggers(scaler):
            gpu = _is_gpu_query(str(meta.get("query") or ""))
            if not (gpu or has_fallback) or not _parse_bool(meta.get("ignoreNullValues"), True):
                continue
            why = "a GPU metric" if gpu else "fallback is configured"
            where = (
                ("spec", "triggers", index, "metadata", "ignoreNullValues")
                if "ignoreNullValues" in meta
                else ("spec", "triggers", index, "metadata")
            )
            yield Violation(
                scaler.doc,
                f"trigger {index}: ignoreNullValues is "
                f"{meta.get('ignoreNullValues', 'unset (true)')} ({why}): a lost series reads "
                f"as 0 and scales to the minimum instead of failing over",
                path=where,
            )


@rule(
    "sla-minimum-replicas",
    title="minimum replicas keep the SLA minimum",
    area="keda",
    rule_class=RuleClass.POLICY,
    rationale="""The seed: "Model B의 최소 SLA를 보장하기 위해 minReplicas를 설정해야 합니다" — the
    autoscaler's minimum is the
    floor when traffic falls or capacity is reallocated to another model. policies/sla.yaml lists each model's
    minimum. For a ScaledObject the floor is minReplicaCount (default 0) and, when set, idleReplicaCount (KEDA
    scales to it while the triggers are inactive: keda-docs
    content/docs/2.20/reference/scaledobject-spec.md#idlereplicacount); for an HPA minReplicas (default 1);
    for a Deployment without autoscaler spec.replicas (default 1).""",
    fix="Raise minReplicaCount / minReplicas (or the Deployment's replicas) to the SLA minimum, and drop "
    "idleReplicaCount.",
    sources=("kedacore/keda-docs content/docs/2.20/reference/scaledobject-spec.md",),
)
def sla_minimum_replicas(ctx: CheckContext) -> Iterator[Violation]:
    scaled: set[tuple[str, str]] = set()
    for scaler in autoscalers(ctx):
        if scaler.kind != "Deployment":
            continue
        scaled.add((scaler.doc.namespace, scaler.name))
        want = ctx.policy.sla_min_replicas(scaler.doc.namespace, scaler.name)
        if want is None:
            continue
        field = "minReplicaCount" if scaler.is_scaled_object else "minReplicas"
        if scaler.min_raw < want:
            yield Violation(
                scaler.doc,
                f"{field} is {scaler.min_raw}; the SLA of {scaler.target_ref} ({ctx.policy.source_of('sla')}) "
                f"needs at least {want}",
                path=("spec", field),
            )
        idle = scaler.doc.spec.get("idleReplicaCount") if scaler.is_scaled_object else None
        if isinstance(idle, int) and idle < want:
            yield Violation(
                scaler.doc,
                f"idleReplicaCount is {idle}: inactive triggers scale {scaler.target_ref} "
                f"below its SLA minimum of {want} ({ctx.policy.source_of('sla')})",
                path=("spec", "idleReplicaCount"),
            )
    for doc in ctx.graph.of_kind("Deployment"):
        if (doc.namespace, doc.name) in scaled:
            continue
        want = ctx.policy.sla_min_replicas(doc.namespace, doc.name)
        replicas = _int(doc.spec.get("replicas"), 1)
        if want is not None and replicas < want:
            yield Violation(
                doc,
                f"replicas is {replicas} and no autoscaler keeps a floor; the SLA ({ctx.policy.source_of('sla')}) "
                f"needs at least {want}",
                path=("spec", "replicas"),
            )


@rule(
    "autoscaled-replicas-unset",
    title="autoscaled workloads leave spec.replicas unset",
    area="keda",
    rule_class=RuleClass.CORRECTNESS,
    severity=Severity.WARNING,
    tags=("source-only",),  # judges what Git applies: a live Deployment always has spec.replicas (defaulted)
    rationale="""Once an HPA (or KEDA's HPA) owns a workload, a spec.replicas in the manifest resets the
    replica count on every apply (kubectl apply, Argo CD, Flux), undoing the autoscaler until its next sync:
    "When an HPA is enabled, it is recommended that the value of spec.replicas of the Deployment and / or
    StatefulSet be removed from their manifest(s)"
    (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
    #migrating-deployments-and-statefulsets-to-horizontal-autoscaling).""",
    fix="Remove spec.replicas from the autoscaled workload's manifest.",
    sources=("https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/",),
)
def autoscaled_replicas_unset(ctx: CheckContext) -> Iterator[Violation]:
    seen: set[int] = set()
    for scaler in autoscalers(ctx):
        target = scaler.target
        if target is None or id(target) in seen or "replicas" not in target.spec:
            continue
        seen.add(id(target))
        yield Violation(
            target,
            f"spec.replicas is {target.spec['replicas']} but {scaler.doc.kind} "
            f"{scaler.doc.name!r} owns the replica count; every apply resets it",
            path=("spec", "replicas"),
            exemptible_by=(scaler.doc,),
        )
