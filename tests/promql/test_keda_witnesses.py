"""keda_eval.witnesses: the other workloads a KEDA query is tested against, chosen with a bounded number of label
comparisons per query (linear in the set), and exactly those a matcher-by-matcher reading chooses."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_policy.promql import keda_eval
from gpu_policy.promql.keda_eval import (
    Workload,
    _Namespace,
    literal_prefix,
    other_workloads,
    witnesses,
)
from gpu_policy.promql.text import Matcher, selectors


def _set(namespaces: int, per_namespace: int) -> dict[str, _Namespace]:
    out = {}
    for n in range(namespaces):
        ns = f"team-{n}"
        workloads = [Workload(ns, f"model-{i:05d}", "vllm") for i in range(per_namespace)]
        out[ns] = _Namespace([w.name for w in workloads], workloads)
    return out


def _brute_may_select(expr: str, workload: Workload) -> bool:
    """The reading without any shortcut: every selector, every pod, every workload-label matcher."""
    for selector in selectors(expr):
        for pod in workload.pods():
            labels = {"namespace": workload.namespace, "container": workload.container, "pod": pod}
            relevant = [m for m in selector.matchers if m.name in labels]
            if all(keda_eval._matcher_holds(m, labels[m.name]) for m in relevant):
                return True
    return False


def _brute_witnesses(expr: str, target: Workload, others: Iterator[Workload]) -> list[Workload]:
    selected: list[Workload] = []
    unselected: list[Workload] = []
    elsewhere = 0
    for other in others:
        if other.namespace != target.namespace:
            elsewhere += 1
            if elsewhere > keda_eval.OTHER_NAMESPACE_CANDIDATES:
                break
        (selected if _brute_may_select(expr, other) else unselected).append(other)
        if len(selected) >= keda_eval.MAX_WITNESSES and len(unselected) >= 2:
            break
    chosen = selected[: keda_eval.MAX_WITNESSES] + unselected[: max(2, keda_eval.MAX_WITNESSES - len(selected))]
    chosen.append(Workload(f"{target.namespace}-staging", target.name, target.container))
    return chosen


QUERIES = (
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"{name}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"{name}.*"}})',  # leaks to model-0001x
    'avg(DCGM_FI_DEV_GPU_UTIL{{pod=~"{name}-.*"}})',  # any namespace
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}"}})',  # every pod of the namespace
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"model-0*1?.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"(?i)MODEL-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"{name}-.*|model-00002-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod="{name}-6d8f9c7b5-x0k2m"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{namespace!="{ns}",pod!~"{name}-.*"}})',
    'avg(DCGM_FI_DEV_GPU_UTIL{{container="vllm",pod=~"model-0001[0-9]-.*"}}) / '
    'avg(DCGM_FI_DEV_FB_USED{{namespace="{ns}",pod=~"{name}"}})',
)


@pytest.mark.parametrize("query", QUERIES)
def test_witnesses_are_those_every_matcher_chooses(query: str) -> None:
    workloads = _set(3, 40)
    for target in (workloads["team-1"].workloads[1], workloads["team-0"].workloads[17]):
        expr = query.format(ns=target.namespace, name=target.name)
        assert witnesses(expr, target, other_workloads(workloads, target)) == _brute_witnesses(
            expr, target, other_workloads(workloads, target)
        ), expr


def _comparisons(monkeypatch: pytest.MonkeyPatch, namespaces: int, per_namespace: int) -> tuple[int, int]:
    """(queries, label comparisons) choosing the witnesses of one correct query per workload of the set."""
    calls = 0
    real = keda_eval._matcher_holds

    def counting(matcher: Matcher, value: str) -> bool:
        nonlocal calls
        calls += 1
        return real(matcher, value)

    monkeypatch.setattr(keda_eval, "_matcher_holds", counting)
    workloads = _set(namespaces, per_namespace)
    queries = 0
    for found in workloads.values():
        for target in found.workloads:
            expr = QUERIES[0].format(ns=target.namespace, name=target.name)
            witnesses(expr, target, other_workloads(workloads, target))
            queries += 1
    return queries, calls


def test_a_large_set_costs_a_bounded_number_of_comparisons_per_query(monkeypatch: pytest.MonkeyPatch) -> None:
    small_queries, small = _comparisons(monkeypatch, 2, 150)
    large_queries, large = _comparisons(monkeypatch, 3, 1000)
    # every neighbour was compared (2 pods x 2 matchers, up to 250 neighbours) before the pod-name prefix
    # ruled most out without a comparison: now a few comparisons per query, the same at 300 and 3000
    assert large / large_queries <= 8, large / large_queries
    assert large / large_queries <= 1.2 * (small / small_queries) + 1


@given(st.from_regex(re.compile(r"[a-z0-9.\-*+?|()\[\]]{0,12}"), fullmatch=True),
       st.from_regex(re.compile(r"[a-z0-9\-]{0,16}"), fullmatch=True))
def test_every_value_a_pattern_accepts_starts_with_its_literal_prefix(pattern: str, value: str) -> None:
    matcher = Matcher("pod", "=~", pattern)
    try:
        accepted = re.fullmatch(pattern, value) is not None
    except re.error:
        return
    if accepted:
        assert value.startswith(literal_prefix(matcher)), (pattern, value, literal_prefix(matcher))
