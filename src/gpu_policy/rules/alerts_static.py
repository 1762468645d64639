"""Alerting rules read statically from PrometheusRule objects: complete, specific, and measuring the
right thing.

promtool behaviour (parse errors, unit tests of the rules) is judged by the promql rules; these rules
judge what
an operator paged at 3 a.m. needs: a duration, a severity, a summary naming the GPU and pod, and an
expression that
fires at the policy's threshold (policies/alerts.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gpu_policy.findings import Severity
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.metrics.health import all_hardware_health
from gpu_policy.promql.text import (
    Aggregation,
    aggregations,
    comparison,
    dcgm_metric_names,
    divisors,
    outer_aggregation,
    tokenize,
)
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import RuleClass, Violation, rule

FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_TOTAL = "DCGM_FI_DEV_FB_TOTAL"
_PROM_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_TEMPLATE_REF = r"(?:\$labels\.{0}\b|\.Labels\.{0}\b|index\s+\$labels\s+\"{0}\")"


def prom_duration(value: Any) -> float | None:
    """Prometheus duration (`5m`, `1h30m`, `2d`), seconds; None when unparsable."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    pos, total = 0, 0.0
    for match in _PROM_DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


@dataclass(frozen=True)
class Alert:
    doc: Document
    path: FieldPath
    rule: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.rule.get("alert"))

    @property
    def expr(self) -> str:
        return str(self.rule.get("expr", ""))

    @property
    def labels(self) -> dict[str, Any]:
        value = self.rule.get("labels")
        return value if isinstance(value, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        value = self.rule.get("annotations")
        return value if isinstance(value, dict) else {}

    @property
    def is_dcgm(self) -> bool:
        return bool(dcgm_metric_names(self.expr))


def alerts(ctx: CheckContext) -> list[Alert]:
    def compute() -> list[Alert]:
        found: list[Alert] = []
        for doc in ctx.graph.of_kind("PrometheusRule"):
            for gi, group in enumerate(doc.spec.get("groups") or []):
                if not isinstance(group, dict):
                    continue
                for ri, entry in enumerate(group.get("rules") or []):
                    if isinstance(entry, dict) and entry.get("alert"):
                        found.append(Alert(doc, ("spec", "groups", gi, "rules", ri), entry))
        return found

    return ctx.memo("alerting-rules", compute)


@rule(
    "alert-is-complete",
    title="every alert has the for duration, labels and annotations the alert policy requires",
    area="alerts",
    rule_class=RuleClass.POLICY,
    rationale="""Without `for`, one scrape above the threshold pages (a GPU spike during a batch is normal);
    routing in Alertmanager keys on labels such as `severity`; the notification shows annotations such as
    `summary`. What is required is the alert policy's choice: requireForDuration, requiredLabels and
    requiredAnnotations (the reference profile: a non-zero `for`, label severity, annotation summary); without
    them nothing is judged.""",
    fix="Give the alert what the alert policy requires: `for:` (e.g. 5m), and the listed labels and annotations.",
    sources=("prometheus docs configuration/alerting_rules.md", "prometheus/alertmanager routing on labels"),
)
def alert_is_complete(ctx: CheckContext) -> Iterator[Violation]:
    required_labels = ctx.policy.alerts.get("requiredLabels") or []
    required_annotations = ctx.policy.alerts.get("requiredAnnotations") or []
    require_for = ctx.policy.alerts.get("requireForDuration") is True
    if not (required_labels or required_annotations or require_for):
        return
    source = ctx.policy.source_of("alerts")
    for alert in alerts(ctx):
        missing: list[str] = []
        path: FieldPath = alert.path
        if require_for and prom_duration(alert.rule.get("for")) in (None, 0.0):
            missing.append("`for` (a non-zero duration)")
        missing += [
            f"label {name}" for name in required_labels if not str(alert.labels.get(name, "")).strip()
        ]
        missing += [
            f"annotation {name}"
            for name in required_annotations
            if not str(alert.annotations.get(name, "")).strip()
        ]
        if missing:
            yield Violation(
                doc=alert.doc, path=path,
                message=f"alert {alert.name} has no {', '.join(missing)} (required by the alert policy, {source})"
            )


def _names(text: str, label: str) -> bool:
    return re.search(_TEMPLATE_REF.format(re.escape(label)), text) is not None


def _absent_only(expr: str) -> bool:
    """absent()/absent_over_time() alerts have no per-GPU series to name."""
    tokens = tokenize(expr)
    return len(tokens) > 1 and tokens[0].text in ("absent", "absent_over_time") and tokens[1].kind == "("


GPU_ID_LABELS = ("gpu", "UUID")
"""Either names the GPU: the exporter's `gpu` index (with Hostname) or its `UUID`."""


def surviving(label: str, aggregation: Aggregation | None) -> bool:
    """Does `label` survive the outermost aggregation? `by (...)` keeps only the listed labels, `without (...)` drops
    the listed ones, no grouping drops all (prometheus docs querying/operators.md, aggregation operators)."""
    if aggregation is None:
        return True
    if aggregation.grouping == "without":
        return label not in aggregation.labels
    return label in aggregation.labels


def _ref(label: str) -> str:
    return f"{{{{ $labels.{label} }}}}"


@rule(
    "gpu-alert-names-gpu-and-pod",
    title="every GPU alert names the GPU, and a workload alert the pod, in its summary or description",
    area="alerts",
    rule_class=RuleClass.POLICY,
    rationale="""A convention of the alert policy (gpuAlertsNameGpuAndPod; the reference profile sets it). A
    DCGM series is per GPU (`gpu` with `Hostname`, or `UUID`) and, with DCGM_EXPORTER_KUBERNETES, per workload
    pod. An alert text without them ("GPU memory is low") sends the operator searching across the fleet.
    Hardware-health alerts (temperature, power, clocks, XID, ECC, retired pages, remapped rows, PCIe replays,
    NVLink errors, throttling violations: NVIDIA/dcgm-exporter etc/default-counters.csv sections) are acted on
    per GPU and node, so they need the GPU but not the pod.
    Templates reach labels as {{ $labels.gpu }} or {{ .Labels.gpu }} (prometheus docs alerting_rules.md
    templating). Only labels that survive the expression's outermost aggregation can be named: `by (...)` keeps
    just the listed labels and `without (...)` drops the listed ones (prometheus docs querying/operators.md), so
    `max by (Hostname) (...)` needs neither gpu nor pod, only one of the labels it keeps. absent() alerts are
    exempt: their series has no GPU.""",
    fix="Put {{ $labels.gpu }} (with Hostname) or {{ $labels.UUID }}, and {{ $labels.pod }}, in the summary or "
    "description; when the expression aggregates them away, name the labels its `by (...)` keeps.",
    sources=(
        "prometheus docs configuration/alerting_rules.md (templating)",
        "prometheus docs querying/operators.md (aggregation operators, by/without)",
        "NVIDIA/dcgm-exporter README (gpu, UUID, Hostname labels)",
    ),
)
def gpu_alert_names_gpu_and_pod(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.policy.alerts.get("gpuAlertsNameGpuAndPod") is not True:
        return
    for alert in alerts(ctx):
        if not alert.is_dcgm or _absent_only(alert.expr):
            continue
        hardware = all_hardware_health(dcgm_metric_names(alert.expr))
        text = " ".join(str(alert.annotations.get(k, "")) for k in ("summary", "description"))
        aggregation = outer_aggregation(alert.expr)
        missing: list[str] = []
        gpu_ids = [label for label in GPU_ID_LABELS if surviving(label, aggregation)]
        if gpu_ids and not any(_names(text, label) for label in gpu_ids):
            missing.append(" or ".join(_ref(label) for label in gpu_ids))
        if not hardware and surviving("pod", aggregation) and not _names(text, "pod"):
            missing.append(_ref("pod"))
        kept = aggregation.labels if aggregation is not None and aggregation.grouping == "by" else ()
        pod_kept = surviving("pod", aggregation) and not hardware
        if not gpu_ids and not pod_kept and kept and not any(_names(text, k) for k in kept):
            # gpu and pod are aggregated away: the text must name what the aggregation keeps
            missing.append(" or ".join(_ref(label) for label in kept))
        if missing:
            scope = (
                f" (its outermost aggregation keeps only {', '.join(aggregation.labels) or 'no label'})"
                if aggregation is not None and aggregation.grouping != "without"
                else f" (its outermost aggregation drops {', '.join(aggregation.labels)})"
                if aggregation is not None
                else ""
            )
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "annotations"),
                message=f"alert {alert.name}: summary/description never mention " + " nor ".join(missing) + scope
                + f" (alert policy {ctx.policy.source_of('alerts')}: gpuAlertsNameGpuAndPod)",
            )


def divides_used_by_free(expr: str) -> bool:
    """True when some `x / y` has the framebuffer's FREE alone as divisor while USED is measured."""
    if FB_USED not in dcgm_metric_names(expr):
        return False
    return any(
        FB_FREE in divisor and FB_USED not in divisor and FB_TOTAL not in divisor for divisor in divisors(expr)
    )


@rule(
    "gpu-memory-alert-divides-by-total",
    title="GPU memory alerts measure used / (used + free) framebuffer",
    area="alerts",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""The fraction of GPU memory in use is FB_USED / (FB_USED + FB_FREE) (add FB_RESERVED on newer
    drivers). FB_USED / FB_FREE is the ratio of used to free: `> 0.9` fires at about 47% use (0.9 / 1.9),
    paging
    on healthy GPUs; the seed's GPUMemoryPressure made exactly this mistake. FB_TOTAL is not in the default
    collectors (NVIDIA/dcgm-exporter etc/default-counters.csv).""",
    fix="Divide by the total: DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9.",
    sources=("NVIDIA/dcgm-exporter etc/default-counters.csv (FB_FREE, FB_USED, FB_RESERVED)",),
)
def gpu_memory_alert_divides_by_total(ctx: CheckContext) -> Iterator[Violation]:
    for alert in alerts(ctx):
        if divides_used_by_free(alert.expr):
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "expr"),
                message=(
                    f"alert {alert.name} divides {FB_USED} by {FB_FREE} alone: {alert.expr.strip()!r} "
                    "is a used/free ratio, which passes 0.9 at about 47% of memory in use"
                ),
            )


_DIRECTION = {">": "above", ">=": "above", "<": "below", "<=": "below"}


@rule(
    "gpu-alert-thresholds-match-policy",
    title="GPU alerts fire at the thresholds and durations of the alert policy",
    area="alerts",
    rule_class=RuleClass.POLICY,
    rationale="""The alert policy's `alerts` table (the reference profile: HighGPUUtilization above 90% for 5m,
    GPUMemoryPressure above 0.9 of memory for 2m, with their severities) is what on-call agreed to be paged for;
    only alerts it names are judged. An alert whose
    comparison constant, direction, `for` or severity differs pages at another point than the one reviewed:
    `DCGM_FI_DEV_GPU_UTIL < 90` has the policy's constant yet fires on idle GPUs. Alerts are found by name; the
    threshold is the expression's comparison constant, and its direction is the comparison read as `series <op>
    constant` (`90 < x` is x above 90; prometheus docs querying/operators.md, comparison binary operators). A
    policy `comparison: ">"` accepts `>` and `>=`, `"<"` accepts `<` and `<=`.""",
    fix="Set the comparison operator and constant, `for` and `labels.severity` to the values of the alert policy.",
    sources=("prometheus docs configuration/alerting_rules.md", "prometheus docs querying/operators.md"),
)
def gpu_alert_thresholds_match_policy(ctx: CheckContext) -> Iterator[Violation]:
    wanted = ctx.policy.alerts.get("alerts") or {}
    if not wanted:
        return
    src = f"the alert policy ({ctx.policy.source_of('alerts')})"
    for alert in alerts(ctx):
        policy = wanted.get(alert.name)
        if policy is None:
            continue
        found = comparison(alert.expr)
        direction = _DIRECTION.get(str(policy.get("comparison", "")))
        if found is None:
            want = f"{policy['comparison']} {policy['threshold']}" if direction else str(policy["threshold"])
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "expr"),
                message=f"alert {alert.name} has no comparison with a constant; {src} wants {want}",
            )
        else:
            if found.value != float(policy["threshold"]):
                yield Violation(
                    doc=alert.doc,
                    path=(*alert.path, "expr"),
                    message=f"alert {alert.name} compares {found.written} {found.value:g}; the threshold of {src} is "
                    f"{policy['threshold']}",
                )
            if direction is not None and _DIRECTION.get(found.series_op) != direction:
                yield Violation(
                    doc=alert.doc,
                    path=(*alert.path, "expr"),
                    message=f"alert {alert.name} fires when the series is {found.series_op} {found.value:g}; "
                    f"{src} wants it to fire {direction} {policy['threshold']} (comparison {policy['comparison']})",
                )
        have_for = prom_duration(alert.rule.get("for"))
        if have_for is not None and have_for != prom_duration(policy["for"]):
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "for"),
                message=f"alert {alert.name} has for {alert.rule.get('for')}; {src} wants "
                f"{policy['for']}",
            )
        severity = alert.labels.get("severity")
        if severity is not None and str(severity) != str(policy["severity"]):
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "labels", "severity"),
                message=f"alert {alert.name} has severity {severity}; {src} wants {policy['severity']}",
            )


@rule(
    "gpu-alert-not-fleet-average",
    title="GPU alerts do not average one hot GPU away across the fleet",
    area="alerts",
    rule_class=RuleClass.POLICY,
    rationale="""A convention of the alert policy (gpuAlertsNotFleetAverage; the reference profile sets it).
    `avg(DCGM_FI_DEV_GPU_UTIL) > 90` without `by` averages every GPU of every node into one number:
    one saturated GPU among ten idle ones reads 10% and never fires, and the alert carries no gpu/pod label to
    name. Alert per GPU (no aggregation) or aggregate `by` the labels that identify what to act on.""",
    fix="Drop the avg (per-GPU series), or aggregate by the target: avg by (namespace, pod) (...).",
    sources=("prometheus docs querying/operators.md (aggregation operators, by/without)",),
    severity=Severity.WARNING,
)
def gpu_alert_not_fleet_average(ctx: CheckContext) -> Iterator[Violation]:
    if ctx.policy.alerts.get("gpuAlertsNotFleetAverage") is not True:
        return
    for alert in alerts(ctx):
        if not alert.is_dcgm:
            continue
        # `avg without (...)` and `avg by (<labels>)` keep series apart; `avg(...)` / `avg by ()` do not
        for aggregation in aggregations(alert.expr):
            if aggregation.operator != "avg" or aggregation.grouping == "without" or aggregation.labels:
                continue
            yield Violation(
                doc=alert.doc,
                path=(*alert.path, "expr"),
                message=f"alert {alert.name}: {alert.expr.strip()!r} averages all GPUs into one series (alert policy "
                f"{ctx.policy.source_of('alerts')}: gpuAlertsNotFleetAverage)",
            )
            break


_EMPTY_SAFE = frozenset({"or", "absent", "absent_over_time", "vector", "unless"})


def counts_below(expr: str) -> tuple[str, str, float] | None:
    """(aggregation, operator, constant) when the whole expression is `count(...)`/`sum(...)` compared at the top
    level with `< N` / `<= N` (N >= 0 for `<=`, N > 0 for `<`) or `count(...) == 0`, and nothing supplies a value
    for the empty case (`or vector(0)`, `absent(...)`)."""
    tokens = tokenize(expr)
    if not tokens or any(t.kind == "ident" and t.word in _EMPTY_SAFE for t in tokens):
        return None
    head = tokens[0].word
    if tokens[0].kind != "ident" or head not in ("count", "sum"):
        return None
    depth, i = 0, 1
    # `count by (x) (...)` / `count (...) by (x)`: skip every bracket group until the first top-level operator
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind in ("(", "{", "["):
            depth += 1
        elif tok.kind in (")", "}", "]"):
            depth -= 1
        elif depth == 0 and tok.kind == "op":
            break
        i += 1
    if i + 1 >= len(tokens) or tokens[i].text not in ("<", "<=", "=="):
        return None
    rest = tokens[i + 1:]
    if rest and rest[0].word == "bool":
        return None  # `bool` turns the filter into 0/1: the comparison always has a result
    if len(rest) != 1 or rest[0].kind != "number":
        return None
    try:
        value = float(rest[0].text)
    except ValueError:
        return None
    op = tokens[i].text
    if (op == "<" and value > 0) or (op == "<=" and value >= 0) or (op == "==" and value == 0 and head == "count"):
        return head, op, value
    return None


@rule(
    "alert-fires-when-nothing-is-left",
    title="a 'too few' alert also fires when none is left",
    area="alerts",
    rule_class=RuleClass.CORRECTNESS,
    rationale="""An aggregation over an empty instant vector returns an empty vector, not 0: aggregation operators
    produce one element per group of their input, and no input makes no group (prometheus docs
    querying/operators.md, aggregation operators; absent() exists "for alerting on when no time series exist",
    querying/functions.md). `count(up{job="vllm"} == 1) < 40` therefore has no result, and cannot fire, exactly
    when every replica is down or the scrape is gone — the worst outage is the silent one (checked with promtool
    2.42: every `up` series at 0, the alert does not fire). `count(...) == 0` can never be true.""",
    fix="Give the empty case a value: `(count(up{job=\"vllm\"} == 1) or vector(0)) < 40`, or add an "
    "`absent(up{job=\"vllm\"} == 1)` alert.",
    sources=("prometheus docs querying/operators.md (aggregation operators)",
             "prometheus docs querying/functions.md (absent)"),
)
def alert_fires_when_nothing_is_left(ctx: CheckContext) -> Iterator[Violation]:
    for alert in alerts(ctx):
        found = counts_below(alert.expr)
        if found is None:
            continue
        head, op, value = found
        yield Violation(
            doc=alert.doc,
            path=(*alert.path, "expr"),
            message=f"alert {alert.name}: {alert.expr.strip()!r} compares {head}(...) {op} {value:g}; when nothing "
            f"matches, {head}(...) returns no series rather than 0, so the alert is silent exactly when none is "
            "left",
            fix=f"Write ({head}(...) or vector(0)) {op} {value:g}.",
        )
