"""Edge cases of the GPU workload rules, on small in-memory manifest sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.model import placement_of, reachable
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules import workloads
from gpu_policy.rules.context import CheckContext

POOL = """
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: pool}
spec:
  template:
    metadata: {labels: {team: ml}}
    spec:
      requirements:
        - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.12xlarge, p4d.24xlarge]}
        - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}
      taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: x}
  limits: {nvidia.com/gpu: "8"}
"""


DEFAULT_RESOURCES = "{limits: {nvidia.com/gpu: 1}, requests: {cpu: '1', memory: 1Gi}}"


def deployment(pod_spec: str, resources: str = DEFAULT_RESOURCES, labels: str = "{}") -> str:
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d, namespace: ns, labels: {labels}}}
spec:
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
{pod_spec}
      containers:
        - name: c
          resources: {resources}
"""


def context(text: str, ert: bool = True, complete: bool = True) -> CheckContext:
    """A set declared complete, as the reference set is: what the set lacks is a defect, not "not checked"."""
    docs, errors = to_documents(text, "x.yaml")
    assert not errors
    policy = PolicySet.load()
    if not ert:
        policy.cluster["eks"]["extendedResourceToleration"] = False
    return CheckContext(graph=ResourceGraph(docs), policy=policy, complete=complete)


def test_extended_resource_toleration_covers_the_gpu_taint_only_when_enabled() -> None:
    text = POOL + deployment("      priorityClassName: system-node-critical")
    assert list(workloads.gpu_workload_lands_on_nodepool(context(text))) == []
    found = list(workloads.gpu_workload_lands_on_nodepool(context(text, ert=False)))
    assert len(found) == 1 and "untolerated taint nvidia.com/gpu" in found[0].message


@pytest.mark.parametrize(("selector", "lands"), [
    ("{karpenter.k8s.aws/instance-gpu-name: a100}", True),
    ("{karpenter.k8s.aws/instance-gpu-name: h100}", False),
    ("{team: ml}", True),
    ("{karpenter.sh/capacity-type: spot}", False),
    ("{karpenter.k8s.aws/instance-family: g5, karpenter.k8s.aws/instance-gpu-count: '4'}", True),
    ("{topology.kubernetes.io/zone: us-east-1a}", True),
])
def test_node_selector_against_pool_labels(selector: str, lands: bool) -> None:
    text = POOL + deployment(f"      nodeSelector: {selector}")
    assert (list(workloads.gpu_workload_lands_on_nodepool(context(text))) == []) is lands


def test_gt_affinity_on_gpu_count_and_pool_limits() -> None:
    affinity = """      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["4"]}"""
    ctx = context(POOL + deployment(affinity))
    shapes = reachable(ctx, placement_of(ctx, workloads.gpu_templates(ctx)[0])).shapes
    assert [s.instance_type for s in shapes] == ["p4d.24xlarge"]
    # A pool whose GPU limit is below one node's GPUs cannot launch that type at all.
    ctx = context(POOL.replace('nvidia.com/gpu: "8"', 'nvidia.com/gpu: "4"') + deployment(affinity))
    found = list(workloads.gpu_workload_lands_on_nodepool(ctx))
    assert len(found) == 1 and any("exceeds the pool's limits" in d for d in found[0].details)


def test_memory_headroom_is_modelled() -> None:
    # g5.12xlarge has 192 GiB; after 7.5% VM overhead and kube-reserved a 190Gi pod no longer fits.
    resources = "{limits: {nvidia.com/gpu: 1}, requests: {cpu: '1', memory: 190Gi}}"
    selector = "      nodeSelector: {node.kubernetes.io/instance-type: g5.12xlarge}"
    found = list(workloads.gpu_workload_lands_on_nodepool(context(POOL + deployment(selector, resources))))
    assert len(found) == 1 and "memory" in found[0].message


@pytest.mark.parametrize(("resources", "message"), [
    ("{limits: {nvidia.com/gpu: '0.5'}}", "must be an integer"),
    ("{requests: {nvidia.com/gpu: 1}}", "Limit must be set"),
    ("{requests: {nvidia.com/gpu: 2}, limits: {nvidia.com/gpu: 1}}",
     "must be equal to nvidia.com/gpu limit of 1"),
])
def test_gpu_request_rules(resources: str, message: str) -> None:
    text = deployment("      hostNetwork: false", resources)
    found = list(workloads.gpu_requests_equal_limits(context(text)))
    assert len(found) == 1 and message in found[0].message


def test_gpu_limit_only_is_accepted() -> None:
    text = deployment("      hostNetwork: false", "{limits: {nvidia.com/gpu: 2}}")
    assert list(workloads.gpu_requests_equal_limits(context(text))) == []


@pytest.mark.parametrize(("pdb", "blocks"), [
    ("maxUnavailable: 1", False),
    ("maxUnavailable: '0%'", True),
    ("maxUnavailable: '1%'", False),      # rounds up to 1
    ("minAvailable: 2", True),
    ("minAvailable: 1", False),
    ("minAvailable: '50%'", False),       # ceil(0.5 x 2) = 1 of 2
    ("minAvailable: '51%'", True),        # ceil(1.02) = 2 of 2
])
def test_pdb_blocks_drain_at_the_workloads_minimum(pdb: str, blocks: bool) -> None:
    base = deployment("      hostNetwork: false")
    text = base.replace("spec:\n  template", "spec:\n  replicas: 2\n  template") + f"""
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: p, namespace: ns}}
spec:
  {pdb}
  selector: {{matchLabels: {{app: d}}}}
"""
    assert bool(list(workloads.gpu_pdb_allows_eviction(context(text)))) is blocks


PDB_100_PERCENT = """
---
apiVersion: {api}
kind: PodDisruptionBudget
metadata: {{name: p, namespace: ns}}
spec:
  minAvailable: 100%
{selector}"""


@pytest.mark.parametrize(("api", "selector", "blocks"), [
    # policy/v1: "an empty ({}) selector will select all pods within the namespace" (kubernetes/api
    # policy/v1/types.go); /tmp/audit/pdb_empty.yaml was passed as "selects nothing".
    ("policy/v1", "  selector: {}", True),
    ("policy/v1", "  selector: {matchLabels: {app: d}}", True),
    ("policy/v1", "  selector: {matchLabels: {app: other}}", False),
    ("policy/v1", "  selector: null", False),        # "A null selector will match no pods"
    ("policy/v1", "", False),                        # absent == null
    ("policy/v1beta1", "  selector: {}", False),     # v1beta1: {} selected nothing
])
def test_pdb_selector_scope(api: str, selector: str, blocks: bool) -> None:
    base = deployment("      hostNetwork: false")
    text = base.replace("spec:\n  template", "spec:\n  replicas: 2\n  template")
    text += PDB_100_PERCENT.format(api=api, selector=selector)
    found = list(workloads.gpu_pdb_allows_eviction(context(text)))
    assert [(v.doc.ref if v.doc else "", v.message.split(" allows")[0]) for v in found] == (
        [("PodDisruptionBudget/ns/p", "minAvailable 100%")] if blocks else []
    )
    if blocks:
        assert "Deployment/ns/d" in found[0].message


def test_pdb_empty_selector_stays_in_its_namespace() -> None:
    base = deployment("      hostNetwork: false")
    text = base.replace("spec:\n  template", "spec:\n  replicas: 2\n  template")
    text += PDB_100_PERCENT.format(api="policy/v1", selector="  selector: {}").replace(
        "namespace: ns", "namespace: elsewhere")
    assert list(workloads.gpu_pdb_allows_eviction(context(text))) == []


def test_pool_memory_limit_compares_karpenters_capacity_not_nominal_memory() -> None:
    """p4d.24xlarge is 1152 GiB nominal, 1065.6 GiB after the 7.5% VM overhead Karpenter subtracts before
    comparing it.Capacity with the limits (scheduler.go filterByRemainingResources; aws provider types.go
    memory()): a 1100Gi limit admits it (/tmp/audit/np_1100Gi.yaml), a 1000Gi limit does not."""
    selector = "      nodeSelector: {node.kubernetes.io/instance-type: p4d.24xlarge}"

    def pool(memory: str) -> str:
        return POOL.replace('limits: {nvidia.com/gpu: "8"}', f'limits: {{nvidia.com/gpu: "8", memory: {memory}}}')

    assert list(workloads.gpu_workload_lands_on_nodepool(context(pool("1100Gi") + deployment(selector)))) == []
    found = list(workloads.gpu_workload_lands_on_nodepool(context(pool("1000Gi") + deployment(selector))))
    assert [v.doc.ref if v.doc else "" for v in found] == ["Deployment/ns/d"]
    assert any("p4d.24xlarge: one node exceeds the pool's limits (memory)" in d for d in found[0].details)


def test_model_size_guide_boundaries() -> None:
    guide = PolicySet.load().instance_types["modelSizeGuide"]
    from decimal import Decimal
    assert workloads.families_for(guide, Decimal(70)) == ["p5", "p4d"]
    assert workloads.families_for(guide, Decimal(7)) == ["g5"]
    assert workloads.families_for(guide, Decimal(10)) == []


def test_reference_manifests_pass_every_workload_rule() -> None:
    from gpu_policy.engine import RunOptions, run_engine
    run = run_engine(RunOptions(paths=[str(Path(__file__).parents[2] / "manifests")]))
    mine = [f for f in run.findings if run.rules[f.rule_id].area in ("gpu-workloads", "keda")
            and f.rule_id not in ("keda-query-parses", "keda-query-reads-only-its-target")]
    assert mine == []


def test_a_pod_whose_selection_matches_no_pool_of_a_partial_set_is_not_checked() -> None:
    # An H100 pod beside a g5/p4d pool: its pool may be in another repository. Listed as not checked, unless the
    # set is declared complete; a pod the pool's selection admits but whose taint it refuses stays an error.
    text = POOL + deployment("      nodeSelector: {karpenter.k8s.aws/instance-gpu-name: h100}")
    partial = context(text, complete=False)
    assert list(workloads.gpu_workload_lands_on_nodepool(partial)) == []
    assert "matches no NodePool of the set" in partial.unresolved[0].message
    untolerated = POOL + deployment("", resources="{limits: {nvidia.com/gpu: 1}}")
    found = list(workloads.gpu_workload_lands_on_nodepool(context(untolerated, ert=False, complete=False)))
    assert [v.doc.ref if v.doc else "" for v in found] == ["Deployment/ns/d"]
