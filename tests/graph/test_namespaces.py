"""An object whose manifest names no namespace lands in the default namespace (kubectl apply without -n), so the
graph indexes and names it there: `unset` and `default` are one place, for lookups and for findings alike."""

from __future__ import annotations

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents

TEXT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
---
apiVersion: v1
kind: PriorityClass
metadata: {name: high}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: gpu}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web}
"""


def _scope(group: str, kind: str) -> bool | None:
    return {("karpenter.sh", "NodePool"): True, ("keda.sh", "ScaledObject"): False}.get((group, kind))


def _graph(default_namespace: str = "default") -> ResourceGraph:
    docs = to_documents(TEXT, "x.yaml")[0]
    return ResourceGraph(docs, _scope, default_namespace=default_namespace)


def test_unset_namespace_is_the_default_namespace() -> None:
    graph = _graph()
    deployment = graph.get("Deployment", "web", "default")
    assert deployment is not None and deployment.ref == "Deployment/default/web"
    assert graph.get("Service", "web", "default") is not None
    assert graph.get("ScaledObject", "web", "default") is not None
    assert [d.name for d in graph.select("Deployment", "default", None)] == ["web"]


def test_cluster_scoped_objects_keep_no_namespace() -> None:
    graph = _graph()
    assert graph.get("PriorityClass", "high") is not None
    pool = graph.get("NodePool", "gpu")
    assert pool is not None and pool.ref == "NodePool/gpu"


def test_the_default_namespace_can_be_chosen() -> None:
    graph = _graph("serving")
    assert graph.get("Deployment", "web", "serving") is not None
    assert graph.get("Service", "web", "default") is not None  # a namespace the manifest names stays
    assert graph.get("Deployment", "web", "default") is None


def test_unknown_custom_kinds_are_not_guessed_into_a_namespace() -> None:
    docs = to_documents("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "x.yaml")[0]
    graph = ResourceGraph(docs, lambda group, kind: None)
    assert graph.of_kind("Widget")[0].ref == "Widget/w"
