"""Drill `alerts`: the set's PrometheusRules in a real Prometheus (Debian's, on 127.0.0.1) scraping synthetic DCGM
exporters (one process per GPU node, on 127.0.0.1) as the set's ServiceMonitor means, honorLabels included.

Timeline (t = 0 when both exporters have been scraped):
1. Baseline, healthy GPUs (framebuffer 50 %, utilisation 40 %, both exporters up) for `BASELINE_SECONDS`: no alert of
   the set may be pending or firing. The seed's GPUMemoryPressure (FB_USED / FB_FREE > 0.9, true from about 47 %)
   fails here.
2. Model A's GPU framebuffer goes to 92 % and the exporter of model B's node stops, at the same instant:
   - GPUMemoryPressure goes pending within a scrape and an evaluation, names the GPU and the pod (gpu, Hostname,
     namespace, pod), and fires no earlier than the `for` of policies/alerts.yaml after it went pending (Prometheus
     fires at the first evaluation where now - activeAt >= for; rules/alerting.go Eval) and no later than that plus
     `LATE_SLACK_SECONDS`;
   - once it fires, the framebuffer returns to 50 %: the alert resolves (leaves /api/v1/alerts) within
     `RESOLVE_SECONDS`;
   - an alert of the set naming the lost exporter (its pod, node or instance) fires: the reference DCGMExporterDown
     (`up{job="dcgm-exporter"} == 0`, for 5m). Model B's scaler-input alert (absent(...), for 5m) is reported too.
The `for` durations are the manifests' own, never shortened, so the drill lasts about 5.5 minutes (the 5m of the
telemetry alert). Scrape and evaluation intervals are set to `INTERVAL` (2 s) instead of the Prometheus object's
15 s, so the observed times are precise to a few seconds; that changes when an alert is evaluated, not what it
means.

Not reproduced: the real exporter's own collection interval (DCGM_EXPORTER_INTERVAL, 30 s in the reference
DaemonSet) delays a change by up to that much before Prometheus can see it; the synthetic exporter serves a new
value at once.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpu_policy.drills.base import DrillContext, DrillFailure, DrillResult, DrillSpec, DrillUnavailable
from gpu_policy.graph.quantities import parse_duration
from gpu_policy.live.prometheus import Alert
from gpu_policy.live.prometheus_checks import selected_rules
from gpu_policy.loading.document import Document
from gpu_policy.testbed.metrics_stack import MetricsStack, gpu, rfc3339_seconds
from gpu_policy.testbed.prometheus import PrometheusStartError, the_prometheus

INTERVAL = "2s"
INTERVAL_SECONDS = 2.0
BASELINE_SECONDS = 12.0
SETTLE_SECONDS = 3 * INTERVAL_SECONDS
PENDING_WITHIN_SECONDS = 60.0
"""A scrape, an evaluation and the poll take seconds; these bounds only tell "never" from "late on a loaded
machine": the measured times are in the result, and only the lower bound (the policy's `for`) is strict."""
LATE_SLACK_SECONDS = 60.0
RESOLVE_SECONDS = 60.0
TELEMETRY_SLACK_SECONDS = 60.0
POLL_SECONDS = 1.0

MEMORY_ALERT = "GPUMemoryPressure"
NODE_A, NODE_B = "kwok-p4d-ondemand-0", "kwok-g5-ondemand-0"
POD_A = ("inference", "model-a-serving-6d8f9c7b5-x0k2m", "vllm")
POD_B = ("inference", "model-b-serving-7c9d8e6f4-b0q7z", "vllm")
FB_A, FB_B = 40960, 23028  # A100-SXM4-40GB, A10G (MiB)
HEALTHY_FRACTION, HIGH_FRACTION = 0.50, 0.92


@dataclass
class _RuleRef:
    doc: Document
    rule: Mapping[str, Any]
    path: tuple[str | int, ...]

    @property
    def where(self) -> str:
        return f"{self.doc.ref} ({self.doc.source}:{self.doc.line_of(self.path)})"

    @property
    def expr(self) -> str:
        return " ".join(str(self.rule.get("expr", "")).split())

    @property
    def for_seconds(self) -> float:
        return parse_duration(str(self.rule.get("for") or "0s")) or 0.0


def alert_rules(ctx: DrillContext) -> dict[str, _RuleRef]:
    """Alert name -> its rule, over the PrometheusRules the set's Prometheus selects."""
    found: dict[str, _RuleRef] = {}
    for doc in selected_rules(ctx.graph, the_prometheus(ctx.graph)):
        for gi, group in enumerate((doc.spec or {}).get("groups") or []):
            for ri, rule in enumerate((group or {}).get("rules") or []):
                if isinstance(rule, Mapping) and rule.get("alert"):
                    found.setdefault(str(rule["alert"]), _RuleRef(doc, rule, ("spec", "groups", gi, "rules", ri)))
    return found


@dataclass
class _Timeline:
    start: float
    rows: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, event: str, detail: str = "", at: float | None = None) -> float:
        when = time.time() if at is None else at
        self.rows.append((round(when - self.start, 1), event, detail))
        return when

    def csv(self) -> str:
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(["seconds", "event", "detail"])
        writer.writerows(sorted(self.rows))
        return out.getvalue()


def _where(alert: Alert) -> str:
    labels = alert.labels
    where = labels.get("Hostname") or labels.get("node") or labels.get("instance") or "?"
    return f"{where} gpu={labels.get('gpu', '-')} pod={labels.get('namespace', '-')}/{labels.get('pod', '-')}"


def _describe(alert: Alert) -> str:
    return f"{alert.labels.get('alertname')} {alert.state} on {_where(alert)}"


def _names_exporter(alert: Alert, pod: str, node: str, instance: str) -> bool:
    labels = alert.labels
    return labels.get("pod") == pod or labels.get("node") == node or labels.get("instance") == instance


def run(ctx: DrillContext) -> DrillResult:
    from gpu_policy.policy.loader import PolicySet

    policy = PolicySet.load().alerts.get("alerts", {}).get(MEMORY_ALERT, {})
    threshold = float(policy.get("threshold", 0.9))
    policy_for = parse_duration(str(policy.get("for", "2m"))) or 120.0
    rules = alert_rules(ctx)
    if MEMORY_ALERT not in rules:
        raise DrillFailure("the PrometheusRules the Prometheus selects", f"no alert named {MEMORY_ALERT}",
                           "policies/alerts.yaml requires it (framebuffer use above 90 %)",
                           f"add the reference {MEMORY_ALERT} rule (manifests/monitoring/prometheus-rules.yaml)")
    memory = rules[MEMORY_ALERT]
    nodes = {
        NODE_A: [gpu(0, POD_A, DCGM_FI_DEV_GPU_UTIL=40, DCGM_FI_DEV_FB_USED=round(FB_A * HEALTHY_FRACTION))],
        NODE_B: [gpu(0, POD_B, DCGM_FI_DEV_GPU_UTIL=40, DCGM_FI_DEV_FB_USED=round(FB_B * HEALTHY_FRACTION))],
    }
    nodes[NODE_A][0]["framebufferMiB"] = FB_A
    nodes[NODE_B][0].update(framebufferMiB=FB_B, modelName="NVIDIA A10G")
    stack = MetricsStack(ctx.graph, nodes, ctx.work_dir / "metrics", interval=INTERVAL)
    if not stack.pods:
        raise DrillFailure("the manifests", "no DCGM exporter DaemonSet", "nothing would export GPU metrics",
                           "deploy the reference dcgm-exporter DaemonSet, Service and ServiceMonitor")
    ctx.say(f"starting Prometheus and {len(stack.pods)} synthetic DCGM exporters on 127.0.0.1 "
            f"(scrape and evaluation every {INTERVAL})")
    try:
        stack.start()
    except PrometheusStartError as exc:
        raise DrillUnavailable(f"drill alerts: {exc}") from exc
    ctx.on_cleanup("Prometheus and the synthetic exporters", stack.close)
    assert stack.prometheus is not None
    if stack.prometheus.rules.rejected:
        ref, why = next(iter(stack.prometheus.rules.rejected.items()))
        raise DrillFailure(ref, "the Prometheus Operator would reject this PrometheusRule", why.splitlines()[0],
                           "make `promtool check rules` pass on its spec")
    client = stack.client
    stack.wait_scraped(timeout=min(60.0, max(1.0, ctx.remaining())))
    timeline = _Timeline(time.time())
    timeline.add("scraped", "both exporters scraped")
    # Rules evaluated before the first scrape saw no series (absent() was true): let an evaluation with data clear
    # what went pending then, before judging.
    ctx.sleep(SETTLE_SECONDS, "waiting for an evaluation after the first scrape")
    result = DrillResult()

    # 1. baseline: healthy GPUs, nothing pending
    ctx.say(f"baseline: framebuffer {HEALTHY_FRACTION:.0%}, utilisation 40 %, exporters up; "
            f"no alert may be pending for {BASELINE_SECONDS:.0f} s")
    end = time.monotonic() + BASELINE_SECONDS
    while time.monotonic() < end:
        for alert in client.alerts():
            name = alert.labels.get("alertname", "")
            rule = rules.get(name)
            where = rule.where if rule else f"alert {name}"
            timeline.add("unexpected", _describe(alert))
            if name == MEMORY_ALERT:
                raise DrillFailure(
                    where, f"{MEMORY_ALERT} went {alert.state} on a healthy GPU ({_where(alert)}) at "
                    f"{HEALTHY_FRACTION:.0%} framebuffer use",
                    f"its expression `{memory.expr}` is true below policies/alerts.yaml's threshold {threshold:g} of "
                    "the framebuffer in use (USED / FREE passes 0.9 at about 47 %)",
                    f"alert on DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > {threshold:g}")
            raise DrillFailure(
                where, f"{name} went {alert.state} on healthy GPUs ({_where(alert)})",
                f"framebuffer {HEALTHY_FRACTION:.0%}, utilisation 40 % and every exporter up should keep it quiet; "
                f"its expression is `{rule.expr if rule else '?'}`",
                "correct the expression so that it is false on healthy GPUs")
        ctx.sleep(POLL_SECONDS, "watching the baseline")
    data = client.query("DCGM_FI_DEV_FB_USED")
    if len(data) < 2:
        raise DrillUnavailable(f"drill alerts: Prometheus holds {len(data)} DCGM_FI_DEV_FB_USED series after the "
                               "baseline, expected 2 (one per exporter): the scrape configuration is not working")
    timeline.add("baseline quiet", f"no alert for {BASELINE_SECONDS:.0f} s")
    result.observations.append(f"baseline: no alert pending at {HEALTHY_FRACTION:.0%} framebuffer use")

    # 2. model A's framebuffer to 92 %, model B's exporter stops
    lost = next(p for p in stack.pods if p.node == NODE_B)
    lost_instance = f"127.0.0.1:{lost.port}"
    stack.set_values(NODE_A, 0, DCGM_FI_DEV_FB_USED=round(FB_A * HIGH_FRACTION))
    changed = timeline.add("framebuffer high", f"{NODE_A} gpu 0 at {HIGH_FRACTION:.0%}")
    stack.stop_exporter(NODE_B)
    stopped = timeline.add("exporter stopped", f"{lost.name} on {NODE_B}")
    ctx.say(f"{NODE_A} GPU 0 framebuffer at {HIGH_FRACTION:.0%}; exporter {lost.name} on {NODE_B} stopped; "
            f"{MEMORY_ALERT} must fire after {policy_for:.0f} s and the exporter's loss must be alerted")
    telemetry_for = max((r.for_seconds for r in rules.values()), default=0.0)
    telemetry_by = stopped + telemetry_for + TELEMETRY_SLACK_SECONDS
    pending_at: float | None = None
    active_at: float | None = None
    fired_at: float | None = None
    recovered_at: float | None = None
    resolved_at: float | None = None
    telemetry_fired: dict[str, float] = {}
    telemetry_pending: dict[str, float] = {}
    others: dict[str, float] = {}
    while True:
        now = time.time()
        alerts = client.alerts()
        memory_alerts = [a for a in alerts if a.labels.get("alertname") == MEMORY_ALERT]
        for alert in alerts:
            name = alert.labels.get("alertname", "")
            if name == MEMORY_ALERT:
                continue
            if _names_exporter(alert, lost.name, NODE_B, lost_instance):
                bucket = telemetry_fired if alert.state == "firing" else telemetry_pending
                if name not in bucket:
                    bucket[name] = timeline.add(f"{name} {alert.state}", _describe(alert), now)
            elif alert.state == "firing" and name not in others:
                others[name] = timeline.add(f"{name} firing", _describe(alert), now)
        if fired_at is None:
            if memory_alerts and pending_at is None:
                alert = memory_alerts[0]
                pending_at = timeline.add(f"{MEMORY_ALERT} {alert.state}", _describe(alert), now)
                active_at = rfc3339_seconds(alert.active_at) or now
                _check_names_gpu(memory, alert)
            firing = [a for a in memory_alerts if a.state == "firing"]
            if firing:
                fired_at = timeline.add(f"{MEMORY_ALERT} firing", _describe(firing[0]), now)
                assert active_at is not None
                held = fired_at - active_at
                if held < policy_for:
                    raise DrillFailure(
                        memory.where, f"{MEMORY_ALERT} fired {held:.0f} s after it went pending",
                        f"policies/alerts.yaml wants it to wait {policy_for:.0f} s (a short spike must not page); "
                        f"the rule's for is {memory.rule.get('for', 'unset')}",
                        f"set `for: {policy.get('for', '2m')}` on {MEMORY_ALERT}")
                result.numbers["memory_pending_after_s"] = round(active_at - changed, 1)
                result.numbers["memory_fired_after_pending_s"] = round(held, 1)
                stack.set_values(NODE_A, 0, DCGM_FI_DEV_FB_USED=round(FB_A * HEALTHY_FRACTION))
                recovered_at = timeline.add("framebuffer recovered", f"{NODE_A} gpu 0 at {HEALTHY_FRACTION:.0%}")
                ctx.say(f"{MEMORY_ALERT} fired {held:.0f} s after going pending; framebuffer back to "
                        f"{HEALTHY_FRACTION:.0%}, waiting for it to resolve")
            elif pending_at is None and now - changed > PENDING_WITHIN_SECONDS:
                raise DrillFailure(
                    memory.where, f"{MEMORY_ALERT} did not go pending within {PENDING_WITHIN_SECONDS:.0f} s of "
                    f"{NODE_A} GPU 0 reaching {HIGH_FRACTION:.0%} framebuffer use",
                    f"its expression `{memory.expr}` is false at {HIGH_FRACTION:.0%}",
                    f"alert on DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > {threshold:g}")
            elif active_at is not None and now - active_at > policy_for + LATE_SLACK_SECONDS:
                raise DrillFailure(
                    memory.where, f"{MEMORY_ALERT} still not firing {now - active_at:.0f} s after it went pending",
                    f"policies/alerts.yaml wants it to fire after {policy_for:.0f} s; the rule's for is "
                    f"{memory.rule.get('for', 'unset')}",
                    f"set `for: {policy.get('for', '2m')}` on {MEMORY_ALERT}")
        elif resolved_at is None:
            assert recovered_at is not None
            if not memory_alerts:
                resolved_at = timeline.add(f"{MEMORY_ALERT} resolved", "left /api/v1/alerts", now)
                result.numbers["memory_resolved_after_recovery_s"] = round(resolved_at - recovered_at, 1)
                ctx.say(f"{MEMORY_ALERT} resolved {resolved_at - recovered_at:.0f} s after the framebuffer "
                        "recovered; waiting for the telemetry alert")
            elif now - recovered_at > RESOLVE_SECONDS:
                raise DrillFailure(
                    memory.where, f"{MEMORY_ALERT} still {memory_alerts[0].state} {now - recovered_at:.0f} s "
                    f"after the framebuffer returned to {HEALTHY_FRACTION:.0%}",
                    "an alert that does not resolve hides the next incident",
                    "use an instant comparison on the current series, not one that holds the peak")
        if resolved_at is not None and telemetry_fired:
            break
        if now > telemetry_by:
            job = _target_job(stack, lost.name)
            raise DrillFailure(
                "the PrometheusRules the Prometheus selects",
                f"no alert naming the lost exporter {lost.name} (node {NODE_B}, instance {lost_instance}) fired "
                f"within {now - stopped:.0f} s of it stopping",
                f"its target is down (up{{job=\"{job}\"}} == 0) but no rule fires on it"
                + (f"; pending only: {', '.join(telemetry_pending)}" if telemetry_pending else ""),
                f"alert on up{{job=\"{job}\"}} == 0 (the job is the exporter Service's name) with a `for`")
        ctx.sleep(POLL_SECONDS, "waiting for the alerts")
    for name, at in telemetry_fired.items():
        result.numbers[f"{name}_fired_after_exporter_stopped_s"] = round(at - stopped, 1)
    for name, at in others.items():
        result.numbers[f"{name}_fired_after_exporter_stopped_s"] = round(at - stopped, 1)
    result.observations += [
        f"{MEMORY_ALERT}: pending {result.numbers['memory_pending_after_s']:.0f} s after the framebuffer reached "
        f"{HIGH_FRACTION:.0%}, firing {result.numbers['memory_fired_after_pending_s']:.0f} s after pending "
        f"(policy: {policy_for:.0f} s), resolved {result.numbers['memory_resolved_after_recovery_s']:.0f} s "
        "after recovery",
        *(f"{name} fired {at - stopped:.0f} s after the exporter {lost.name} stopped"
          for name, at in {**telemetry_fired, **others}.items()),
    ]
    if ctx.report_dir is not None:
        from gpu_policy.reporting.files import write_report_file

        result.files.append(write_report_file(ctx.report_dir, "drills/alerts-timeline.csv", timeline.csv()))
    return result


def _check_names_gpu(memory: _RuleRef, alert: Alert) -> None:
    labels = alert.labels
    missing = [k for k, v in (("gpu", "0"), ("Hostname", NODE_A), ("namespace", POD_A[0]), ("pod", POD_A[1]))
               if labels.get(k) != v]
    if missing:
        shown = ", ".join(f"{k}={labels.get(k, '<none>')!s}" for k in missing)
        raise DrillFailure(
            memory.where, f"{MEMORY_ALERT} does not name the GPU and its pod ({shown})",
            f"the on-call person must see which GPU ({NODE_A} gpu 0) and pod ({POD_A[0]}/{POD_A[1]}) is at risk",
            "keep the per-GPU series (no aggregation) and honorLabels: true on the exporter's ServiceMonitor")


def _target_job(stack: MetricsStack, pod: str) -> str:
    for target in stack.client.targets():
        if target.labels.get("pod") == pod:
            return str(target.labels.get("job", "?"))
    return "?"


SPEC = DrillSpec(
    name="alerts",
    title="GPU alerts fire after their for, name the GPU and pod, resolve; a lost exporter is alerted",
    summary="framebuffer at 92 % fires GPUMemoryPressure after its for (2m) and resolves after recovery; a stopped "
    "DCGM exporter fires DCGMExporterDown (for 5m); nothing is pending on healthy GPUs",
    duration_seconds=340,
    timeout_seconds=600,
    needs=("prometheus",),
    run=run,
    variants=("alerts-seed-memory-rule", "alerts-memory-for-too-short", "alerts-exporter-down-wrong-job"),
)
