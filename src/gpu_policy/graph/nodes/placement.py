"""Whether a pod can land on a node shape, and why not.

- Tolerations: the pod's own, plus — when policies/cluster.yaml eks.extendedResourceToleration is on — the
  ExtendedResourceToleration admission plugin's `{key: <resource>, operator: Exists, effect: NoSchedule}` for
  every extended resource a container or init container REQUESTS (the key is present in `requests`; limits
  default the requests of extended resources) (kubernetes/kubernetes
  plugin/pkg/admission/extendedresourcetoleration/admission.go). Only NoSchedule/NoExecute taints keep a pod
  off; startupTaints are not counted (gpu_policy.graph.scheduling.untolerated).
- Node selection: nodeSelector AND (OR of the required node-affinity terms; AND of each term's
  matchExpressions); an empty term matches nothing (core/v1 NodeSelectorTerm). `can_select` asks whether SOME
  node of the shape satisfies it, as Karpenter decides to launch (kubernetes-sigs/karpenter
  pkg/scheduling/requirements.go `Compatible`); `always_selects` whether EVERY node does, as a DaemonSet needs.
- Fit: the pod's requests (kube-scheduler's pod requests: containers + sidecars, or the largest init
  container; k8s.io/component-helpers resource/helpers.go) against the shape's allocatable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gpu_policy.graph.nodes.labels import (
    CAPACITY_TYPE,
    GPU_RESOURCE,
    LabelState,
    always_holds,
    expression_text,
    narrow,
)
from gpu_policy.graph.nodes.pools import ALL_CAPACITY_TYPES
from gpu_policy.graph.nodes.shapes import NodeShape
from gpu_policy.graph.quantities import parse_quantity
from gpu_policy.graph.scheduling import untolerated
from gpu_policy.graph.workloads import PodTemplate
from gpu_policy.loading.document import FieldPath

FIT_RESOURCES = (GPU_RESOURCE, "cpu", "memory")
Expression = tuple[str, str, list[str]]


def _resources(container: Mapping[str, Any], section: str) -> dict[str, Any]:
    resources = container.get("resources")
    values = resources.get(section) if isinstance(resources, Mapping) else None
    return dict(values) if isinstance(values, Mapping) else {}


def effective_request(container: Mapping[str, Any], resource: str) -> Decimal | None:
    """The request the scheduler uses: the request, or the limit when only a limit is set (API defaulting)."""
    request = parse_quantity(_resources(container, "requests").get(resource))
    if request is not None:
        return request
    return parse_quantity(_resources(container, "limits").get(resource))


def pod_requests(template: PodTemplate) -> dict[str, Decimal]:
    """Pod-level requests as kube-scheduler computes them: sum of containers (+ restartable init containers),
    or the largest regular init container when larger (k8s.io/component-helpers resource/helpers.go)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, container in template.containers():
        for resource in FIT_RESOURCES:
            totals[resource] += effective_request(container, resource) or Decimal(0)
    init_max: dict[str, Decimal] = defaultdict(Decimal)
    for container in template.spec.get("initContainers") or []:
        if not isinstance(container, Mapping):
            continue
        for resource in FIT_RESOURCES:
            amount = effective_request(container, resource) or Decimal(0)
            if container.get("restartPolicy") == "Always":
                totals[resource] += amount  # sidecar: runs beside the app containers
            else:
                init_max[resource] = max(init_max[resource], amount)
    return {r: max(totals[r], init_max[r]) for r in FIT_RESOURCES}


def is_extended_resource(name: str) -> bool:
    """core/v1 helper IsExtendedResourceName: a domain-prefixed name outside kubernetes.io, not `requests.`."""
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def requested_extended_resources(template: PodTemplate) -> frozenset[str]:
    names: set[str] = set()
    for _, container in template.containers(include_init=True):
        for section in ("requests", "limits"):
            names.update(str(k) for k in _resources(container, section) if is_extended_resource(str(k)))
    return frozenset(names)


@dataclass
class Placement:
    """How a pod template asks for nodes."""

    template: PodTemplate
    node_selector: dict[str, str]
    terms: list[list[Expression]] | None
    """Required node-affinity terms (ORed), each a list of (key, operator, values) (ANDed); None when none."""
    matchfield_terms: frozenset[int]
    tolerations: list[dict[str, Any]]
    extended_resources: frozenset[str]
    requests: dict[str, Decimal]

    @property
    def requests_gpu(self) -> bool:
        """A container or init container asks for a positive amount of nvidia.com/gpu."""
        return any((effective_request(c, GPU_RESOURCE) or Decimal(0)) > 0
                   for _, c in self.template.containers(include_init=True))

    @property
    def constrained(self) -> bool:
        return bool(self.node_selector or self.terms)

    def path(self, *rest: str | int) -> FieldPath:
        return (*self.template.spec_path, *rest)

    def effective_tolerations(self, extended_resource_toleration: bool) -> list[dict[str, Any]]:
        if not extended_resource_toleration:
            return self.tolerations
        added = [{"key": name, "operator": "Exists", "effect": "NoSchedule"}
                 for name in sorted(self.extended_resources)]
        return [*self.tolerations, *added]


def placement(template: PodTemplate) -> Placement:
    spec = template.spec
    selector = spec.get("nodeSelector")
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") \
        if isinstance(node_affinity, Mapping) else None
    terms: list[list[Expression]] | None = None
    with_fields: set[int] = set()
    if isinstance(required, Mapping):
        terms = []
        for i, term in enumerate(t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)):
            terms.append([(str(e.get("key")), str(e.get("operator")), [str(v) for v in e.get("values") or []])
                          for e in term.get("matchExpressions") or [] if isinstance(e, Mapping)])
            if term.get("matchFields"):
                with_fields.add(i)
    return Placement(
        template=template,
        node_selector={str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {},
        terms=terms, matchfield_terms=frozenset(with_fields),
        tolerations=[dict(t) for t in spec.get("tolerations") or [] if isinstance(t, Mapping)],
        extended_resources=requested_extended_resources(template),
        requests=pod_requests(template),
    )


def _selector_expressions(pod: Placement) -> list[Expression]:
    return [(k, "In", [v]) for k, v in pod.node_selector.items()]


def _term_failure(shape: NodeShape, expressions: list[Expression]) -> str | None:
    """None when one node of the shape can satisfy every expression; else the first that cannot hold."""
    narrowed: dict[str, LabelState] = {}
    for key, operator, values in expressions:
        state = narrowed.get(key) or shape.state(key)
        result = narrow(state, operator, values)
        if result is None:
            return f"{expression_text(key, operator, values)} (node: {state.describe()})"
        narrowed[key] = result
    return None


def selection_failure(pod: Placement, shape: NodeShape) -> str | None:
    """Why no node of `shape` matches the pod's node selection, as Karpenter judges it; None when one can."""
    base = _selector_expressions(pod)
    if pod.terms is None:
        return _term_failure(shape, base)
    reasons: list[str] = []
    for i, term in enumerate(pod.terms):
        if not term and i not in pod.matchfield_terms:
            reasons.append("an empty node selector term matches no node")
            continue
        failure = _term_failure(shape, [*base, *term])
        if failure is None:
            return None
        reasons.append(failure)
    return reasons[0] if reasons else "required node affinity has no terms"


def can_select(pod: Placement, shape: NodeShape) -> bool:
    return selection_failure(pod, shape) is None


def _must_failure(shape: NodeShape, key: str, operator: str, values: list[str]) -> str | None:
    state = shape.state(key, running=True)
    if always_holds(state, operator, values):
        return None
    if state.kind == "absent":
        return f"these nodes do not carry the label {key}"
    if state.kind == "values":
        return f"{key} may be {state.describe()} (not {operator} {values})"
    if state.kind == "any":
        return f"{key} is set on these nodes but its value is not fixed by the NodePool ({operator} {values})"
    return f"{key} is not modelled for these nodes ({operator} {values})"


def every_node_failure(pod: Placement, shape: NodeShape) -> tuple[str, FieldPath] | None:
    """Why some node of `shape` would not match the pod's node selection (a DaemonSet then skips it), with the
    field to blame; None when every node matches."""
    for key, value in pod.node_selector.items():
        why = _must_failure(shape, key, "In", [value])
        if why is not None:
            return f"nodeSelector {key}={value}: {why}", pod.path("nodeSelector", key)
    if pod.terms is None:
        return None
    reasons: list[str] = []
    for i, term in enumerate(pod.terms):
        failures = ["matchFields cannot be proven for nodes that do not exist yet"] \
            if i in pod.matchfield_terms else []
        failures += [why for key, op, values in term if (why := _must_failure(shape, key, op, values))]
        if not failures and (term or i in pod.matchfield_terms):
            return None
        reasons.append("; ".join(failures) or "an empty term matches no node")
    return ("required node affinity: no term holds (" + " | ".join(reasons) + ")",
            pod.path("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                     "nodeSelectorTerms"))


def taint_text(taint: Mapping[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def shape_rejects(pod: Placement, shape: NodeShape, extended_resource_toleration: bool,
                  taints_checked: bool = False) -> str | None:
    """Why a pod cannot run on a fresh node of `shape` (None when it can): a taint, the node selection, or
    the requests do not fit. Unmodelled shapes (no facts) are never counted as a fit. `taints_checked`: the
    caller already judged the shape's taints (its pool's) for this pod."""
    blocking = [] if taints_checked else untolerated(pod.effective_tolerations(extended_resource_toleration),
                                                     shape.taints)
    if blocking:
        t = blocking[0]
        return f"untolerated taint {t.get('key')}={t.get('value', '')}:{t.get('effect')}"
    failure = selection_failure(pod, shape)
    if failure is not None:
        return f"node selection does not match: {failure}"
    if shape.room is None:
        return "not in the GPU instance catalogue (not modelled)"
    for name in FIT_RESOURCES:
        want, have = pod.requests[name], shape.room.get(name)
        if want > have:
            return (f"requests {_amount(name, want)} {name}, {shape.instance_type} offers "
                    f"{_amount(name, have)}")
    return None


def _amount(resource: str, quantity: Decimal) -> str:
    return f"{quantity / 2**30:.1f}Gi" if resource == "memory" else f"{quantity.normalize()}"


def allowed_capacity_types(pod: Placement) -> frozenset[str]:
    """The capacity types the pod's own node selection admits."""
    allowed = set(ALL_CAPACITY_TYPES)
    if CAPACITY_TYPE in pod.node_selector:
        allowed &= {pod.node_selector[CAPACITY_TYPE]}
    if pod.terms is not None:
        union: set[str] = set()
        for term in pod.terms:
            term_allowed = set(ALL_CAPACITY_TYPES)
            for key, operator, values in term:
                if key != CAPACITY_TYPE:
                    continue
                if operator == "In":
                    term_allowed &= set(values)
                elif operator == "NotIn":
                    term_allowed -= set(values)
                elif operator == "DoesNotExist":
                    term_allowed = set()
            union |= term_allowed
        allowed &= union
    return frozenset(allowed)
