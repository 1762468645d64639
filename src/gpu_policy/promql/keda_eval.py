"""KEDA prometheus queries evaluated by promtool over synthetic DCGM series.

Series are labelled as the DCGM exporter labels them with `DCGM_EXPORTER_KUBERNETES=true` (`gpu`, `UUID`,
`modelName`, `Hostname`, and the GPU's workload `pod`, `namespace`, `container`), plus the target labels the
Prometheus Operator adds (`instance`, `job`, `namespace`, `pod`, `container`, `service`, `endpoint`). With
`honorLabels: true` the exporter's labels win; without it the collision renames them `exported_pod`,
`exported_namespace`, `exported_container` and `pod`/`namespace` name the exporter's own pod (Prometheus
scrape/scrape.go `mutateSampleLabels`; NVIDIA/dcgm-exporter PR #76, issue #85).

Per query, one promtool test group in three phases (see PHASE_MINUTES):
- baseline: the target's pods and other workloads' pods (those the query's matchers may select, and a few it
  should not: `witnesses`);
- others changed: only the other workloads' values differ -> the result must not change;
- target changed: only the target's values differ -> the result must change;
and the baseline must return exactly one series (KEDA: "returned multiple elements" is an error; none reads
0).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document
from gpu_policy.metrics.scrape import honor_labels
from gpu_policy.promql.instant import InputSeries, evaluate, regex, shape
from gpu_policy.promql.promtool import PromtoolResult, run_promtool, scratch_folder
from gpu_policy.promql.sources import PromQLSource
from gpu_policy.promql.testrun import Sample, parse_test_output
from gpu_policy.promql.text import Matcher, dcgm_metric_names, selectors

PHASE_MINUTES = 20
"""One promtool test group per query, in three phases of 20 one-minute points: baseline, then only the other
workloads' values change, then only the target's. Each phase is read at its last minute, so range selectors up
to 19m see a single phase (one group instead of three: promtool's cost is per group)."""
PHASES = ("baseline", "others_changed", "target_changed")
TARGET_VALUES = (40.0, 70.0)
TARGET_CHANGED = (10.0, 95.0)
OTHER_VALUES = (90.0, 5.0)
OTHER_CHANGED = (30.0, 60.0)
EXPORTER_POD = "dcgm-exporter-7xk2p"
EXPORTER_NAMESPACE = "gpu-monitoring"
UNRELATED_WORKLOAD = "unrelated-gpu-job"


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    container: str

    def pods(self) -> list[str]:
        # Deployment pod names: <deployment>-<pod-template-hash>-<5 random chars>.
        return [f"{self.name}-6d8f9c7b5-x{i}k2m" for i in range(2)]


@dataclass
class QueryEvaluation:
    query: PromQLSource
    target: Workload | None
    honor_labels: bool
    baseline: list[Sample] = field(default_factory=list)
    others_changed: list[Sample] = field(default_factory=list)
    target_changed: list[Sample] = field(default_factory=list)
    skipped: str = ""
    """Why the query was not evaluated (no DCGM metric, no target in the manifests)."""
    output: str = ""
    """promtool's report (its `got:` lines are the evidence)."""

    def problems(self) -> list[str]:
        if self.skipped:
            return []
        found: list[str] = []
        if len(self.baseline) != 1:
            what = "no series" if not self.baseline else f"{len(self.baseline)} series"
            found.append(
                f"returns {what} instead of exactly one"
                + (
                    " (KEDA reads an empty result as 0 when ignoreNullValues is true, and fails "
                    "with 'returned multiple elements' on several)"
                )
            )
            return found
        base = self.baseline[0].value
        if len(self.others_changed) != 1 or not _same(self.others_changed[0].value, base):
            found.append(
                "its value changes when only OTHER workloads' GPUs change: it does not select only "
                f"the pods of {self.target_label()}"
            )
        if len(self.target_changed) == 1 and _same(self.target_changed[0].value, base):
            found.append(
                f"its value does not change when the GPUs of {self.target_label()} change: it does not "
                "read the target's pods"
            )
        return found

    def target_label(self) -> str:
        return f"{self.target.namespace}/{self.target.name}" if self.target else "the target"


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _container_name(doc: Document) -> str:
    containers = doc.get(("spec", "template", "spec", "containers")) or []
    first = containers[0] if containers and isinstance(containers[0], dict) else {}
    name = first.get("name")
    return name if isinstance(name, str) else "main"


def target_of(graph: ResourceGraph, doc: Document) -> Workload | None:
    ref = doc.spec.get("scaleTargetRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    kind = ref.get("kind") or "Deployment"
    target = graph.get(kind, ref["name"], doc.namespace)
    return Workload(doc.namespace, ref["name"], _container_name(target) if target else "main")


NEIGHBOURS = 100
"""Workloads of the target's namespace looked at per query, the nearest by name on each side: a pod regex that
leaks (`model-a-.*` also matching `model-a-v2-serving`) leaks first to names that sort next to the target's."""


@dataclass(frozen=True)
class _Namespace:
    names: list[str]
    workloads: list[Workload]


def _scalable_workloads(graph: ResourceGraph) -> dict[str, _Namespace]:
    """Deployments and StatefulSets by namespace, sorted by name (for a bisect to the target's neighbours)."""
    found: dict[str, list[Workload]] = {}
    for t in graph.pod_templates():
        if t.owner.kind in ("Deployment", "StatefulSet"):
            found.setdefault(t.owner.namespace, []).append(
                Workload(t.owner.namespace, t.owner.name, _container_name(t.owner))
            )
    out: dict[str, _Namespace] = {}
    for namespace, workloads in found.items():
        workloads.sort(key=lambda w: w.name)
        out[namespace] = _Namespace([w.name for w in workloads], workloads)
    return out


def other_workloads(workloads: dict[str, _Namespace], target: Workload) -> Iterator[Workload]:
    """Other scalable workloads to test a query against, nearest first: an unrelated one beside the target, the
    target's namespace neighbours by name (at most NEIGHBOURS on each side), then other namespaces."""
    yield Workload(target.namespace, UNRELATED_WORKLOAD, "worker")
    same = workloads.get(target.namespace)
    if same is not None:
        at = bisect.bisect_left(same.names, target.name)
        for distance in range(NEIGHBOURS + 1):
            for index in (at - distance - 1, at + distance):
                if 0 <= index < len(same.workloads) and same.names[index] != target.name:
                    yield same.workloads[index]
    for namespace, found in workloads.items():
        if namespace != target.namespace:
            yield from found.workloads


MAX_WITNESSES = 6
"""Other workloads fed to one query: those its matchers may select (the likely leaks), then a few that they
should not; bounded so that evaluating every query stays linear in the size of the set."""


def _matcher_holds(matcher: Matcher, value: str) -> bool:
    """PromQL label matching on one value (RE2 patterns are anchored; Python's `re` agrees on these patterns)."""
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    try:
        found = regex(matcher.value).fullmatch(value) is not None
    except re.error:
        return True  # unreadable here: let promtool judge it
    return found if matcher.op == "=~" else not found


WORKLOAD_LABELS = ("namespace", "container", "pod")
_REGEX_META = frozenset("\\.^$*+?{}[]()|")
_QUANTIFIERS = frozenset("*+?{")


def literal_prefix(matcher: Matcher) -> str:
    """A string every value the matcher accepts starts with ('' when none is known): the value of `=`, the
    leading literal characters of an `=~` pattern without alternation (a character a quantifier follows is
    optional, so it ends the prefix before it). Prometheus anchors the pattern at both ends."""
    if matcher.op == "=":
        return matcher.value
    if matcher.op != "=~" or "|" in matcher.value:
        return ""
    try:
        regex(matcher.value)
    except re.error:
        return ""
    pattern = matcher.value
    end = 0
    while end < len(pattern) and pattern[end] not in _REGEX_META:
        end += 1
    if end < len(pattern) and pattern[end] in _QUANTIFIERS:
        end -= 1
    return pattern[:max(end, 0)]


@dataclass(frozen=True)
class _CompiledSelector:
    matchers: tuple[Matcher, ...]
    """The selector's matchers on the workload labels (the others hold for every synthetic series alike)."""
    namespace: str | None
    """The value of a `namespace="..."` matcher: no workload of another namespace can be selected."""
    pod_prefix: str
    """What every pod name the selector accepts starts with ('' when unknown)."""

    def possible(self, workload: Workload) -> bool:
        """A cheap necessary condition for `holds`: the namespace, and the pod-name prefix (a pod is named
        `<workload>-<hash>-<suffix>`, so the prefix either starts the workload's name or the name starts it)."""
        if self.namespace is not None and workload.namespace != self.namespace:
            return False
        prefix = self.pod_prefix
        if not prefix or workload.name.startswith(prefix):
            return True
        return prefix.startswith(workload.name) and any(pod.startswith(prefix) for pod in workload.pods())

    def holds(self, workload: Workload) -> bool:
        labels = {"namespace": workload.namespace, "container": workload.container}
        for pod in workload.pods():
            labels["pod"] = pod
            if all(_matcher_holds(m, labels[m.name]) for m in self.matchers):
                return True
        return False


class CompiledQuery:
    """A query's selectors read once, for testing many workloads against it."""

    def __init__(self, expr: str) -> None:
        compiled = []
        for selector in selectors(expr):
            relevant = tuple(m for m in selector.matchers if m.name in WORKLOAD_LABELS)
            namespace = next((m.value for m in relevant if m.name == "namespace" and m.op == "="), None)
            prefix = max((literal_prefix(m) for m in relevant if m.name == "pod"), key=len, default="")
            compiled.append(_CompiledSelector(relevant, namespace, prefix))
        self.selectors = tuple(compiled)

    def may_select(self, workload: Workload) -> bool:
        """Whether some selector may select a series of `workload`'s pods (workload labels only)."""
        for s in self.selectors:  # noqa: SIM110 - a loop: any() over a generator costs twice as much here
            if s.possible(workload) and s.holds(workload):
                return True
        return False


def _may_select(expr: str, workload: Workload) -> bool:
    """Whether some selector of `expr` may select a series of `workload`'s pods (workload labels only)."""
    return CompiledQuery(expr).may_select(workload)


OTHER_NAMESPACE_CANDIDATES = 50
"""Workloads of other namespaces looked at per query; a query that does not filter by namespace is caught by
the same-named workload in another namespace that every query is tested against."""


def witnesses(expr: str, target: Workload, others: Iterable[Workload]) -> list[Workload]:
    """The other workloads whose series a query is tested against: those it may select (up to a bound), then
    ones it should leave alone, so that both a leak and a correct filter show in promtool's result. `others`
    lists the target's namespace first."""
    query = CompiledQuery(expr)
    selected: list[Workload] = []
    unselected: list[Workload] = []
    elsewhere = 0
    # When every selector pins the target's namespace, no workload of another namespace can be selected, and no
    # more than MAX_WITNESSES unselected ones are ever kept: such workloads need no matching.
    pinned = bool(query.selectors) and all(s.namespace == target.namespace for s in query.selectors)
    may_select = query.may_select
    for other in others:
        if other.namespace != target.namespace:
            elsewhere += 1
            if elsewhere > OTHER_NAMESPACE_CANDIDATES:
                break
            if pinned:
                if len(unselected) < MAX_WITNESSES:
                    unselected.append(other)
                if len(selected) >= MAX_WITNESSES and len(unselected) >= 2:
                    break
                continue
        (selected if may_select(other) else unselected).append(other)
        if len(selected) >= MAX_WITNESSES and len(unselected) >= 2:
            break
    chosen = selected[:MAX_WITNESSES] + unselected[: max(2, MAX_WITNESSES - len(selected))]
    # The same workload name in another namespace shows a query that filters by pod name only.
    chosen.append(Workload(f"{target.namespace}-staging", target.name, target.container))
    return chosen


def _series_labels(workload: Workload, pod: str, gpu: int, honor_labels: bool) -> dict[str, str]:
    labels = {
        "gpu": str(gpu),
        "UUID": f"GPU-{zlib.crc32(f'{pod}/{gpu}'.encode()):08x}-0000-0000-0000-000000000000",
        "modelName": "NVIDIA A10G",
        "Hostname": f"ip-10-0-{gpu}-{len(pod)}.ec2.internal",
        "instance": "10.0.1.23:9400",
        "job": "dcgm-exporter",
        "service": "dcgm-exporter",
        "endpoint": "metrics",
    }
    workload_labels = {"pod": pod, "namespace": workload.namespace, "container": workload.container}
    if honor_labels:
        labels.update(workload_labels)
    else:
        labels.update({f"exported_{k}": v for k, v in workload_labels.items()})
        labels.update({"pod": EXPORTER_POD, "namespace": EXPORTER_NAMESPACE, "container": "dcgm-exporter"})
    return labels


def _input_series(
    metrics: list[str], target: Workload, others: list[Workload], honor_labels: bool
) -> list[dict[str, str]]:
    """promtool's `input_series`: every metric for the target's and the witnesses' pods, one value per phase."""
    out: list[dict[str, str]] = []
    for series in _synthetic(metrics, target, others, honor_labels):
        labels = dict(series.labels)
        metric = labels.pop("__name__")
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        values = " ".join(f"{value:g}x{PHASE_MINUTES - 1}" for value in series.values)
        out.append({"series": f"{metric}{{{inner}}}", "values": values})
    return out


def _synthetic(metrics: list[str], target: Workload, others: list[Workload], honor_labels: bool) -> list[InputSeries]:
    phases_of_target = (TARGET_VALUES, TARGET_VALUES, TARGET_CHANGED)
    phases_of_others = (OTHER_VALUES, OTHER_CHANGED, OTHER_VALUES)
    out: list[InputSeries] = []
    for m, metric in enumerate(metrics):
        offset = 7.0 * m  # distinct per metric, so ratios of two metrics still move with the values
        for workload, phases in [(target, phases_of_target)] + [(o, phases_of_others) for o in others]:
            for p, pod in enumerate(workload.pods()):
                labels = {"__name__": metric, **_series_labels(workload, pod, p, honor_labels)}
                # the value promtool reads: the `%g` text of the input series
                values = tuple(float(f"{phase[p % len(phase)] + offset:g}") for phase in phases)
                out.append(InputSeries(labels, values))
    return out


def _eval_minute(phase: int) -> int:
    return PHASE_MINUTES * (phase + 1) - 1


def _test_file(expr: str, series: list[dict[str, str]]) -> dict[str, object]:
    return {
        "tests": [
            {
                "name": "keda-query",
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": f"{_eval_minute(i)}m", "exp_samples": []} for i in range(len(PHASES))
                ],
            }
        ]
    }


def _in_process(evaluation: QueryEvaluation, series: list[InputSeries]) -> bool:
    """Evaluate the query here when its shape is a common one (`instant`); False when promtool must."""
    found = shape(evaluation.query.parsed)
    labelsets = {tuple(sorted(s.labels.items())) for s in series}
    if found is None or len(labelsets) != len(series):  # promtool's reading of duplicate series is its own
        return False
    for i, phase in enumerate(PHASES):
        setattr(evaluation, phase, evaluate(found, series, i))
    return True


def evaluate_queries(
    graph: ResourceGraph, queries: list[PromQLSource], honor_labels: bool, *, explain: bool = True,
    in_process: bool = True,
) -> list[QueryEvaluation]:
    """Evaluate every KEDA query: the common shapes in-process, the others in one promtool run (a process per
    core). With `explain`, a query found wrong in-process is evaluated again by promtool, whose result and report
    (`output`) are then the evidence; without it (only whether it returns a series matters) it is not.
    `in_process=False` gives every query to promtool."""
    evaluations: list[QueryEvaluation] = []
    files: dict[str, QueryEvaluation] = {}
    workloads = graph.derived("keda_eval.workloads", _scalable_workloads)
    # the witnesses of a query depend on the query, its target and the set only: the rule and the honorLabels
    # scenario (which evaluates the same queries with the labels renamed) choose them once
    chosen: dict[tuple[str, Workload], list[Workload]] = graph.derived("keda_eval.witnesses", lambda _: {})

    def all_others(target: Workload) -> Iterator[Workload]:
        return other_workloads(workloads, target)

    with scratch_folder("gpu-policy-keda-") as folder:
        for i, query in enumerate(queries):
            target = target_of(graph, query.doc)
            evaluation = QueryEvaluation(query=query, target=target, honor_labels=honor_labels)
            evaluations.append(evaluation)
            metrics = sorted(dcgm_metric_names(query.expr))
            if not metrics:
                evaluation.skipped = "the query reads no DCGM_FI_* metric"
                continue
            if target is None:
                evaluation.skipped = "the ScaledObject has no scaleTargetRef.name"
                continue
            others = chosen.get((query.parsed, target))
            if others is None:
                others = chosen[(query.parsed, target)] = witnesses(query.parsed, target, all_others(target))
            evaluated_here = in_process and _in_process(evaluation, _synthetic(metrics, target, others, honor_labels))
            if evaluated_here and not (explain and evaluation.problems()):
                continue
            name = f"q{i:05d}.yaml"
            series = _input_series(metrics, target, others, honor_labels)
            (Path(folder) / name).write_text(json.dumps(_test_file(query.parsed, series)))
            files[name] = evaluation
        # promtool runs one process per core over slices of the files: the groups are independent.
        names = sorted(files)
        if not names:
            return evaluations
        workers = max(1, min(os.cpu_count() or 1, len(names) // 50 + 1))
        slices = [names[k::workers] for k in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda part: run_promtool(["test", "rules", *part], cwd=folder), slices))
        for result in results:
            _distribute(result, files)
    return evaluations


def _distribute(result: PromtoolResult, files: dict[str, QueryEvaluation]) -> None:
    """Split promtool's report per test file (`Unit Testing:  <file>`) and read each phase's result."""
    chunks: dict[str, list[str]] = {}
    current = ""
    for line in result.output.splitlines():
        if line.startswith("Unit Testing:"):
            current = line.split(":", 1)[1].strip()
            chunks[current] = []
        elif current:
            chunks[current].append(line)
    for name, text_lines in chunks.items():
        evaluation = files.get(name)
        if evaluation is None:
            continue
        text = "\n".join(text_lines)
        _, samples = parse_test_output(text)
        by_time = {time: got for (_, time), got in samples.items()}
        for i, phase in enumerate(PHASES):
            setattr(evaluation, phase, by_time.get(_eval_minute(i) * 60.0, []))
        evaluation.output = text.strip()
        if "FAILED" in text and not samples:
            evaluation.skipped = f"promtool could not evaluate the query: {text.strip()}"


def dcgm_honor_labels(graph: ResourceGraph) -> tuple[bool | None, str]:
    """Does the scrape of the DCGM exporter keep its `pod`/`namespace` labels? (value, explanation)."""
    return honor_labels(graph)
