"""KEDA queries of the common shapes are evaluated in-process: the same series per phase as promtool returns on
the same synthetic input, for every shape, with and without honorLabels; other shapes are left to promtool."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.promql.instant import shape
from gpu_policy.promql.keda_eval import PHASES, QueryEvaluation, evaluate_queries
from gpu_policy.promql.sources import promql_sources

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")

WORKLOADS = ("model-a", "model-a-v2", "model-b", "other")

EVALUATED_HERE = (
    'DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}}',
    'DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-[a-z0-9]+-[a-z0-9]+"}}',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}})',
    'sum(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}})',
    'max(DCGM_FI_DEV_FB_USED{{pod=~"{t}.*"}})',  # leaks to model-a-v2
    'min(DCGM_FI_DEV_GPU_UTIL{{namespace!="batch",pod!~"{t}-.*"}})',
    'count(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}})',
    'avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*"}}) by (namespace)',
    'sum without (gpu, UUID, Hostname, pod) (DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}})',
    'sum by (exported_pod) (DCGM_FI_DEV_GPU_UTIL{{exported_namespace="inference",exported_pod=~"{t}-.*"}})',
    'sum(DCGM_FI_DEV_GPU_UTIL{{exported_namespace="inference",exported_pod=~"{t}-[a-z0-9]+-[a-z0-9]+"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{t}-.*|model-b-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"(model-a|model-b)-[a-z0-9]+-x0k2m"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",container="",pod=~"{t}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",missing_label=~".*",pod=~"{t}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL)',
)
LEFT_TO_PROMTOOL = (
    'avg(rate(DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}}[5m]))',
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}}) * 100',
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-\\\\d.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"(?i){t}-.*"}})',
    'topk(1, DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}} offset 1m)',
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"{t}-.*"}}) / avg(DCGM_FI_DEV_FB_USED{{pod=~"{t}-.*"}})',
)


def _manifests(queries: list[str]) -> str:
    docs = []
    for name in WORKLOADS:
        docs.append(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: inference}}
spec:
  template:
    spec:
      containers: [{{name: vllm, resources: {{limits: {{nvidia.com/gpu: 1}}}}}}]
""")
    for i, query in enumerate(queries):
        target = WORKLOADS[i % 2]
        docs.append(f"""---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: so-{i}, namespace: inference}}
spec:
  scaleTargetRef: {{name: {target}}}
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus:9090
        threshold: "1"
        query: '{query.format(t=target)}'
""")
    return "".join(docs)


def _results(evaluations: list[QueryEvaluation]) -> list[list[list[tuple[tuple[tuple[str, str], ...], float]]]]:
    return [
        [sorted((tuple(sorted(s.labels.items())), round(s.value, 9)) for s in getattr(e, phase)) for phase in PHASES]
        for e in evaluations
    ]


@pytest.mark.parametrize("honor", [True, False], ids=["honorLabels", "renamed"])
def test_common_shapes_give_promtools_series(graph_of: Callable[[str], ResourceGraph], honor: bool) -> None:
    graph = graph_of(_manifests(list(EVALUATED_HERE)))
    queries = list(promql_sources(graph).keda)
    assert len(queries) == len(EVALUATED_HERE)
    assert all(shape(q.parsed) is not None for q in queries), [q.parsed for q in queries if not shape(q.parsed)]
    here = evaluate_queries(graph, queries, honor, explain=False)
    promtool = evaluate_queries(graph, queries, honor, in_process=False)
    assert not any(e.skipped for e in promtool), [e.skipped for e in promtool]
    assert _results(here) == _results(promtool)
    # and the verdict the rule gives is the same (several phases returned no series or several, some did not)
    assert [e.problems() for e in here] == [e.problems() for e in promtool]
    assert any(e.problems() for e in promtool) and any(not e.problems() for e in promtool)


def test_other_shapes_are_left_to_promtool(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(_manifests(list(LEFT_TO_PROMTOOL)))
    queries = list(promql_sources(graph).keda)
    assert [q.parsed for q in queries if shape(q.parsed) is not None] == []
    # promtool evaluated them: its report is the evidence of each
    assert all(e.output for e in evaluate_queries(graph, queries, True) if not e.skipped)


def test_a_wrong_query_found_here_carries_promtools_report(graph_of: Callable[[str], ResourceGraph]) -> None:
    graph = graph_of(_manifests(['max(DCGM_FI_DEV_FB_USED{{pod=~"{t}.*"}})']))
    (evaluation,) = evaluate_queries(graph, list(promql_sources(graph).keda), True)
    assert evaluation.problems() and "got:" in evaluation.output, evaluation.output
