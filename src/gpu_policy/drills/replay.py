"""Replaying a metric trace through the real KEDA and HPA on the testbed: what the scaling drills share.

The drill's namespace (`gpu-policy-drill-<drill>-<run>`, labelled) receives copies of the set's Deployment and
ScaledObject for one model, changed only where the testbed requires it (documented in each `_copy_*`): namespace,
the trigger's `serverAddress` (the drill's Prometheus on 127.0.0.1; the testbed's admission policy refuses anything
else) and the query's `namespace="..."` matcher (the drill's namespace instead of the set's). Threshold, metric
type, min/max and the HPA behaviour are the set's own. kube-controller-manager's HPA controller runs with its
default `--horizontal-pod-autoscaler-sync-period` (15 s), which is what the simulator is given.

Load: kwok runs the pods (nothing executes), so the drill plays the GPUs. Every `TICK_SECONDS` it lists the
Deployment's pods and writes, for each GPU node, a synthetic DCGM exporter trace with one GPU per pod on that node,
labelled with the pod as the real exporter labels it (`-k`): a `demand` trace shares the demand among the Ready pods
(each min(100, demand / ready), pods not ready report 0), a `per_pod` trace gives every Running pod the same value
(the simulator's two trace kinds, gpu_policy.simulation.traces). A real Prometheus (127.0.0.1, scrape and rule
interval `SCRAPE_INTERVAL`) scrapes them as the set's ServiceMonitor means; KEDA queries it.

Observed: the Deployment's spec.replicas every tick from t = 0 (the trace's start). Predicted: gpu_policy.simulation
for the same ScaledObject, trace and initial replicas, sync period 15 s and a metric delay of `METRIC_DELAY_SECONDS`
(the tick plus the scrape interval, halved: the expected age of the sample KEDA reads).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_policy.drills.base import (
    DRILL_LABEL,
    RUN_LABEL,
    DrillContext,
    DrillFailure,
    DrillResult,
    DrillUnavailable,
    located,
)
from gpu_policy.drills.compare import Comparison, Tolerance, compare, predicted_timeline, write_comparison
from gpu_policy.loading.document import Document
from gpu_policy.simulation.engine import Trajectory, simulate, workload_for_scaled_object
from gpu_policy.simulation.hpa import SYNC_PERIOD_SECONDS
from gpu_policy.simulation.keda import ScaledObjectModel
from gpu_policy.simulation.traces import Trace

TICK_SECONDS = 1.0
SCRAPE_INTERVAL = "2s"
SCRAPE_SECONDS = 2.0
HPA_SYNC_SECONDS = SYNC_PERIOD_SECONDS
"""kube-controller-manager's --horizontal-pod-autoscaler-sync-period on the testbed (the default, not changed)."""
METRIC_DELAY_SECONDS = (TICK_SECONDS + SCRAPE_SECONDS) / 2
TOLERANCE = Tolerance(seconds=HPA_SYNC_SECONDS + TICK_SECONDS + SCRAPE_SECONDS + 2, replicas=0)
"""A real sync may fall anywhere within the simulator's 15 s period, and the sample it reads is up to a tick and a
scrape old (plus 2 s for the API calls of a loaded machine); the replica counts themselves must match."""
GPU_RESOURCE = "nvidia.com/gpu"
_NAMESPACE_MATCHER = re.compile(r'namespace\s*=\s*"[^"]*"')


SCALED_OBJECT = ("inference", "model-a-gpu-scaler")
"""Model A's ScaledObject, which the scaling drills replay."""
MODEL_B = ("inference", "model-b-gpu-scaler")
"""Model B's ScaledObject: the surge drill replays it beside model A (model B gives GPUs back)."""


def model_a(ctx: DrillContext, purpose: str) -> tuple[Document, ScaledObjectModel, Document]:
    """Model A's ScaledObject (`SCALED_OBJECT`), its model and its target, or a failure saying what is missing."""
    return scaled_workload(ctx, SCALED_OBJECT, f"model A's {purpose}")


def scaled_workload(ctx: DrillContext, key: tuple[str, str],
                    purpose: str) -> tuple[Document, ScaledObjectModel, Document]:
    """The ScaledObject `key` (namespace, name) of the set, its model and its target, or a failure saying what is
    missing and what the drill needs it for (`purpose`: "model A's surge")."""
    namespace, name = key
    so = ctx.require("ScaledObject", name, namespace, f"the drill replays {purpose}",
                     "deploy the reference ScaledObject")
    model = ScaledObjectModel.from_document(so)
    deployment = ctx.graph.get(model.target_kind, model.target_name, model.namespace)
    if deployment is None:
        raise DrillFailure(located(so, ("spec", "scaleTargetRef")),
                           f"targets {model.target_kind} {model.target_name}, which is not in the manifests",
                           "nothing to scale", "deploy the target")
    return so, model, deployment


def kubernetes_api(ctx: DrillContext) -> Any:
    from kubernetes import config as k8s_config

    assert ctx.kubeconfig is not None
    api = k8s_config.new_client_from_config(config_file=str(ctx.kubeconfig))
    api.configuration.retries = 0
    ctx.on_cleanup("the Kubernetes client", api.close)
    return api


def keda_running(kubeconfig: Path) -> bool:
    """The testbed in kubeconfig's folder was started with KEDA (state.json `components`)."""
    try:
        data = json.loads((kubeconfig.parent / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "keda" in (data.get("components") or [])


def label_selector(workload: Document) -> str:
    """The workload's selector matchLabels as a label selector string (`k=v,k2=v2`)."""
    return ",".join(f"{k}={v}" for k, v in (((workload.spec or {}).get("selector") or {})
                                            .get("matchLabels") or {}).items())


def pod_lister(api: Any, namespace: str, workload: Document) -> Callable[[], list[dict[str, Any]]]:
    """A function listing the pods of the drill's copy of `workload` in `namespace` (by its selector's
    matchLabels), as plain dicts."""
    from kubernetes import client as k8s

    core: Any = k8s.CoreV1Api(api)
    selector = label_selector(workload)

    def pods() -> list[dict[str, Any]]:
        listed = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=(5, 30))
        items: list[dict[str, Any]] = api.sanitize_for_serialization(listed).get("items", [])
        return items

    return pods


def drill_namespace(ctx: DrillContext, api: Any) -> str:
    """Create the drill's labelled namespace; its deletion (with everything in it) is registered for cleanup."""
    from kubernetes import client as k8s

    name = f"gpu-policy-drill-{ctx.spec.name}-{ctx.run_id}"[:63]
    core: Any = k8s.CoreV1Api(api)  # plain dicts as bodies: the client serialises them as given
    core.create_namespace({"metadata": {"name": name, "labels": {DRILL_LABEL: ctx.spec.name, RUN_LABEL: ctx.run_id}}},
                          _request_timeout=(5, 30))

    def delete() -> None:
        from kubernetes.client.rest import ApiException

        custom: Any = k8s.CustomObjectsApi(api)
        try:  # KEDA's finalizer: let the operator remove its HPA before the namespace goes
            for item in custom.list_namespaced_custom_object("keda.sh", "v1alpha1", name, "scaledobjects",
                                                             _request_timeout=(5, 30)).get("items", []):
                custom.delete_namespaced_custom_object("keda.sh", "v1alpha1", name, "scaledobjects",
                                                       item["metadata"]["name"], _request_timeout=(5, 30))
        except ApiException:
            pass
        core.delete_namespace(name, propagation_policy="Background", _request_timeout=(5, 30))
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                core.read_namespace(name, _request_timeout=(5, 10))
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(1)
        raise TimeoutError(f"namespace {name} still terminating after 60 s")

    ctx.on_cleanup(f"namespace {name}", delete)
    end = time.monotonic() + 30
    while time.monotonic() < end:  # pods need the namespace's default ServiceAccount (kube-controller-manager)
        try:
            core.read_namespaced_service_account("default", name, _request_timeout=(5, 10))
            break
        except Exception:  # not there yet
            time.sleep(0.5)
    return name


def ensure_priority_class(ctx: DrillContext, api: Any, template: Mapping[str, Any]) -> None:
    """The pod template's PriorityClass, from the set, when the cluster lacks it (created labelled, removed after)."""
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    name = (template.get("spec") or {}).get("priorityClassName")
    if not name:
        return
    scheduling = k8s.SchedulingV1Api(api)
    try:
        scheduling.read_priority_class(name, _request_timeout=(5, 30))
        return
    except ApiException as exc:
        if exc.status != 404:
            raise
    doc = ctx.graph.get("PriorityClass", name)
    if doc is None:
        raise DrillFailure(f"the pod template's priorityClassName {name}", "names no PriorityClass of the set",
                           "the API server rejects pods whose PriorityClass does not exist",
                           f"add PriorityClass {name} to the manifests")
    body = copy.deepcopy(doc.obj)
    body["metadata"] = {"name": name, "labels": {DRILL_LABEL: ctx.spec.name, RUN_LABEL: ctx.run_id}}
    scheduling.create_priority_class(body, _request_timeout=(5, 30))
    ctx.on_cleanup(f"PriorityClass {name}", lambda: scheduling.delete_priority_class(name, _request_timeout=(5, 30)))


def merge_gpus(parts: Mapping[str, Mapping[str, list[dict[str, Any]]]],
               nodes: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each node's GPUs when several replayed workloads share the exporters: every part's GPUs on that node, in
    the parts' order, numbered from 0 as one exporter numbers the GPUs of its node."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        gpus = [gpu for part in parts.values() for gpu in part.get(node, [])]
        merged[node] = [{**gpu, "index": index} for index, gpu in enumerate(gpus)]
    return merged


@dataclass
class GpuBoard:
    """The exporters' GPUs when one metrics stack serves several replays (the surge drill plays model A and
    model B at once): each replay puts what its pods use, per node, and every node's exporter serves all of it."""

    stack: Any
    parts: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def put(self, owner: str, by_node: dict[str, list[dict[str, Any]]]) -> None:
        self.parts[owner] = by_node
        for node, gpus in merge_gpus(self.parts, list(self.stack.traces)).items():
            self.stack.set_gpus(node, gpus)


@dataclass
class Replay:
    ctx: DrillContext
    scaled_object: Document
    deployment: Document
    trace: Trace
    initial_replicas: int
    api: Any = None
    namespace: str = ""
    stack: Any = None
    observed: list[tuple[float, int]] = field(default_factory=list)
    ready_seen: list[tuple[float, int]] = field(default_factory=list)
    hpa_status: dict[str, Any] = field(default_factory=dict)
    t0: float = 0.0
    label: str = ""
    """Names the replay in progress lines and report files when a drill plays several (default: the drill's
    name alone)."""
    board: GpuBoard | None = None
    last_said: float = -60.0
    """Trace time of the last periodic progress line."""

    @property
    def report_name(self) -> str:
        return f"{self.ctx.spec.name}-{self.label}" if self.label else self.ctx.spec.name

    @property
    def model(self) -> ScaledObjectModel:
        return ScaledObjectModel.from_document(self.scaled_object)

    @property
    def hpa_name(self) -> str:
        return f"keda-hpa-{self.scaled_object.name}"

    # -- set up ---------------------------------------------------------------------------------------------
    def _copy_deployment(self) -> dict[str, Any]:
        return workload_copy(self.ctx, self.deployment, self.namespace, replicas=self.initial_replicas)

    def _copy_scaled_object(self, prometheus_url: str) -> dict[str, Any]:
        body = copy.deepcopy(self.scaled_object.obj)
        body["metadata"] = {"name": self.scaled_object.name, "namespace": self.namespace,
                            "labels": {DRILL_LABEL: self.ctx.spec.name, RUN_LABEL: self.ctx.run_id}}
        for trigger in body["spec"].get("triggers") or []:
            meta = trigger.get("metadata") or {}
            if trigger.get("type") == "prometheus":
                meta["serverAddress"] = prometheus_url
                meta["query"] = _NAMESPACE_MATCHER.sub(f'namespace="{self.namespace}"', str(meta.get("query", "")))
        body.pop("status", None)
        return body

    def start(self, alongside: Replay | None = None) -> None:
        """Create the drill's copies and wait until KEDA's HPA reads its metric. `alongside`: a replay already
        started in this drill, whose namespace, client and metrics stack this one shares (its pods' GPUs are put
        on the same exporters, `GpuBoard`)."""
        from kubernetes import client as k8s

        from gpu_policy.testbed.metrics_stack import MetricsStack
        from gpu_policy.testbed.nodes import FAKE_NODES

        ctx = self.ctx
        if alongside is not None:
            self.api, self.stack, self.namespace = alongside.api, alongside.stack, alongside.namespace
            if alongside.board is None:  # from now on the exporters serve both; the first one's GPUs stay put
                alongside.board = GpuBoard(alongside.stack)
                alongside.feed(alongside.trace.value_at(0))
            self.board = alongside.board
        else:
            if ctx.kubeconfig is None or not keda_running(ctx.kubeconfig):
                raise DrillUnavailable(f"drill {ctx.spec.name}: the testbed runs without KEDA "
                                       "(`gpu-policy testbed up --with keda`)")
            self.api = kubernetes_api(ctx)
            gpu_nodes = [n.name for n in FAKE_NODES if n.nodepool]
            self.stack = MetricsStack(ctx.graph, {node: [] for node in gpu_nodes}, ctx.work_dir / "metrics",
                                      interval=SCRAPE_INTERVAL)
            ctx.say(f"starting Prometheus and {len(gpu_nodes)} synthetic DCGM exporters on 127.0.0.1")
            self.stack.start()
            ctx.on_cleanup("Prometheus and the synthetic exporters", self.stack.close)
            self.namespace = drill_namespace(ctx, self.api)
        template = (self.deployment.spec.get("template") or {}) if self.deployment.spec else {}
        ensure_priority_class(ctx, self.api, template)
        ctx.say(f"namespace {self.namespace}: Deployment {self.deployment.name} at {self.initial_replicas} "
                f"replicas, ScaledObject {self.scaled_object.name} on Prometheus {self.stack.prometheus.url}")
        apps: Any = k8s.AppsV1Api(self.api)
        apps.create_namespaced_deployment(self.namespace, self._copy_deployment(), _request_timeout=(5, 30))
        self.t0 = time.monotonic()  # the load before the trace starts is its first value
        self.ctx.poll(lambda: self._all_ready(self.initial_replicas), "waiting for the pods to run", within=120,
                      on_expiry=self._pods_not_ready)
        k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
            "keda.sh", "v1alpha1", self.namespace, "scaledobjects",
            self._copy_scaled_object(self.stack.prometheus.url), _request_timeout=(5, 30))
        ctx.poll(self._hpa_active, f"waiting for KEDA's HPA {self.hpa_name} to read its metric", within=180,
                 on_expiry=self._hpa_not_active)
        ctx.say(f"HPA {self.hpa_name} is reading its metric")

    # -- the load -------------------------------------------------------------------------------------------
    def pods(self) -> list[dict[str, Any]]:
        return pod_lister(self.api, self.namespace, self.deployment)()

    def _all_ready(self, count: int) -> bool:
        self.feed(self.trace.value_at(0))
        ready = [p for p in self.pods() if _ready(p)]
        return len(ready) >= count

    def feed(self, value: float) -> tuple[int, int]:
        """Write every GPU node's exporter trace for the current pods; return (running, ready)."""
        by_node, running, ready = gpus_by_node(self.pods(), value, self.trace.kind, list(self.stack.traces))
        if self.board is not None:
            self.board.put(self.deployment.name, by_node)
        else:
            for node, gpus in by_node.items():
                self.stack.set_gpus(node, gpus)
        return running, ready

    def replicas(self) -> int:
        from kubernetes import client as k8s

        deployment = k8s.AppsV1Api(self.api).read_namespaced_deployment(self.deployment.name, self.namespace,
                                                                        _request_timeout=(5, 30))
        return int(deployment.spec.replicas or 0)

    def read_hpa(self) -> dict[str, Any] | None:
        from kubernetes import client as k8s
        from kubernetes.client.rest import ApiException

        try:
            hpa = k8s.AutoscalingV2Api(self.api).read_namespaced_horizontal_pod_autoscaler(
                self.hpa_name, self.namespace, _request_timeout=(5, 30))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        out: dict[str, Any] = self.api.sanitize_for_serialization(hpa)
        return out

    def _hpa_active(self) -> bool:
        self.feed(self.trace.value_at(0))
        hpa = self.read_hpa()
        if hpa is None:
            return False
        self.hpa_status = hpa.get("status") or {}
        return _condition(hpa, "ScalingActive") and bool(self.hpa_status.get("currentMetrics"))

    def _pods_not_ready(self) -> DrillFailure:
        pods = self.pods()
        ready = sum(1 for p in pods if _ready(p))
        return DrillFailure(f"Deployment/{self.namespace}/{self.deployment.name}",
                            f"only {ready} of {self.initial_replicas} pods ready after 120 s",
                            "the testbed's GPU nodes lack room (another Deployment uses their GPUs?) or the pods "
                            "cannot be scheduled", "run the drill on a fresh testbed (`gpu-policy testbed up --with "
                            "keda`)")

    def _hpa_not_active(self) -> DrillFailure:
        hpa = self.read_hpa()
        why = "KEDA created no HPA" if hpa is None else "; ".join(
            f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
            for c in (hpa.get("status") or {}).get("conditions") or [])
        return DrillFailure(located(self.scaled_object, ("spec", "triggers")),
                            f"KEDA's HPA {self.hpa_name} never read its metric", why,
                            "the trigger's query must return a series on the drill's Prometheus")

    def check_reads_load(self, per_pod: float, within: float = 2 * HPA_SYNC_SECONDS + 5) -> float:
        """With every Running pod at `per_pod` % (the trace's first value, pods steady), the HPA of an AverageValue
        trigger must read that per pod (current.averageValue = the query's total / replicas,
        replica_calculator.go GetExternalPerPodMetricReplicas). Returns what it read; raises DrillFailure when it
        stays off by more than the HPA's tolerance (10 %) for two syncs."""
        from gpu_policy.simulation.hpa import DEFAULT_TOLERANCE, parse_quantity
        from gpu_policy.simulation.keda import query_shape

        trigger = self.model.triggers[0]
        if trigger.metric_type != "AverageValue":
            return per_pod
        read: list[float] = []

        def probe() -> bool:
            self.feed(self.trace.value_at(0))
            hpa = self.read_hpa() or {}
            metrics = (hpa.get("status") or {}).get("currentMetrics") or []
            current = ((metrics[0].get("external") or {}).get("current") or {}) if metrics else {}
            if "averageValue" not in current:
                return False
            read.append(parse_quantity(current["averageValue"]))
            return abs(read[-1] - per_pod) <= DEFAULT_TOLERANCE * per_pod

        def off() -> DrillFailure:
            seen = read[-1] if read else float("nan")
            shape = query_shape(trigger.query)
            why = (f"the query returns {shape}(...) (one pod's worth) and metricType AverageValue divides it by "
                   f"the replica count again, so desired = ceil({shape} / threshold) whatever the load"
                   if shape in ("avg", "max", "min") else
                   "the query does not return the total over the workload's pods")
            return DrillFailure(
                located(self.scaled_object, ("spec", "triggers", trigger.index, "metricType")),
                f"KEDA's HPA read {seen:g} per pod while each of the {self.initial_replicas} pods ran at "
                f"{per_pod:g} % (target {trigger.threshold:g})", why,
                "with metricType AverageValue, query sum(...) over the pods (or keep avg(...) with metricType "
                "Value)")

        self.ctx.poll(probe, "comparing the HPA's metric with the load", within=within, interval=TICK_SECONDS,
                      on_expiry=off)
        return read[-1]

    # -- run --------------------------------------------------------------------------------------------------
    def play(self, until: float, check: Any = None) -> None:
        """Play the trace from t = 0 to `until` s, recording spec.replicas every tick; `check(t, replicas)` may raise
        DrillFailure as soon as the behaviour breaks the policy."""
        play_together([(self, check)], until)

    def tick(self, t: float, check: Any) -> None:
        """One tick of `play_together` at trace time `t`: feed the load, record spec.replicas (saying each change,
        and the count once a minute), run `check`."""
        running, ready = self.feed(self.trace.value_at(t))
        replicas = self.replicas()
        name = f"{self.label}: " if self.label else ""
        if not self.observed or self.observed[-1][1] != replicas:
            self.observed.append((round(t, 1), replicas))
            self.ctx.say(f"t={t:5.0f} s {name}replicas {replicas} (running {running}, ready {ready}, "
                         f"load {self.trace.value_at(t):g})")
        elif t - self.last_said >= 60:
            self.ctx.say(f"t={t:5.0f} s {name}replicas {replicas} (load {self.trace.value_at(t):g})")
            self.last_said = t
        if check is not None:
            check(t, replicas)

    def kubernetes_version(self) -> str:
        """The minor version of the kube-controller-manager whose HPA the drill judges ("1.33"): the API server's
        `/version` once the drill is connected, the testbed's pin (testbed/pins.yaml) before. The simulator's HPA
        depends on it (configurable tolerance from 1.33)."""
        if self.api is not None:
            from kubernetes import client as k8s

            info = k8s.VersionApi(self.api).get_code(_request_timeout=(5, 30))
            minor = str(info.minor).rstrip("+")
            return f"{int(info.major)}.{int(minor)}"
        from gpu_policy.testbed.pins import load_pins

        return load_pins().kubernetes_minor

    def prediction(self, edge_counts: bool = False, trace: Trace | None = None) -> Trajectory:
        """The simulator's run on the replay's trace (or `trace`); `edge_counts`: whether the HPA counts a record
        exactly one window old, which a real controller may or may not do at any boundary
        (gpu_policy.simulation.hpa, "Window edges")."""
        workload = workload_for_scaled_object(self.ctx.graph, self.scaled_object.name, self.kubernetes_version())
        return simulate(workload, trace or self.trace, self.initial_replicas, sync_period=HPA_SYNC_SECONDS,
                        metric_delay_seconds=METRIC_DELAY_SECONDS, edge_counts=edge_counts)

    def compare(self, horizon: float) -> Comparison:
        predicted = predicted_timeline(self.prediction(edge_counts=False))
        late = predicted_timeline(self.prediction(edge_counts=True))
        observed = [(0.0, self.initial_replicas)] + [(t, r) for t, r in self.observed if t > 0]
        result = compare(observed, predicted, TOLERANCE, horizon, alternatives=[late])
        if self.ctx.report_dir is not None:
            files = write_comparison(result, self.ctx.report_dir, self.report_name,
                                     f"{self.report_name}: {self.deployment.ref} observed (real KEDA + HPA) vs "
                                     f"predicted (simulator), trace {self.trace.name}")
            self.ctx.say(f"wrote {files[0]} and {files[1]}")
        return result

    def judge(self, horizon: float) -> DrillResult:
        """The observed timeline against the simulator's up to `horizon`: what the drill measured (final replicas,
        differences, both timelines), or a DrillFailure on the ScaledObject when they differ beyond TOLERANCE."""
        comparison = self.compare(horizon)
        result = DrillResult()
        result.numbers["final_replicas"] = self.observed[-1][1] if self.observed else self.initial_replicas
        result.numbers["differences"] = len(comparison.differences)
        result.observations += [
            "observed (t s, replicas): " + ", ".join(f"{t:g}:{r}" for t, r in self.observed),
            f"observed vs predicted: {comparison.summary()}",
        ]
        if not comparison.ok:
            raise DrillFailure(located(self.scaled_object),
                               "the real KEDA + HPA did not do what gpu_policy.simulation predicts",
                               comparison.summary(),
                               f"fix the simulator where reality disagrees (drills/{self.report_name}-observed-vs-"
                               "predicted.svg under --report shows both)")
        return result


def play_together(parts: list[tuple[Replay, Any]], until: float) -> None:
    """Play every replay's trace from the same t = 0 to `until` s, one tick for all of them every TICK_SECONDS
    (each: feed its load, record its spec.replicas, run its check, which may raise DrillFailure at once)."""
    ctx = parts[0][0].ctx
    ctx.say(f"the trace starts: playing {until:.0f} s")
    start = time.monotonic()
    while True:
        t = time.monotonic() - start
        if t > until:
            break
        for replay, check in parts:
            replay.tick(t, check)
        ctx.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - start - t)), "playing the trace")


def drill_copy(ctx: DrillContext, doc: Document, namespace: str,
               labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The body of the drill's copy of the set's object `doc` in the drill's `namespace`: the object as written, with
    only its name, that namespace and `labels` (default: its own labels and the drill's run labels) as metadata, and
    no status."""
    body = copy.deepcopy(doc.obj)
    body["metadata"] = {"name": doc.name, "namespace": namespace,
                        "labels": dict(labels or {**doc.labels, DRILL_LABEL: ctx.spec.name, RUN_LABEL: ctx.run_id})}
    body.pop("status", None)
    return body


def workload_copy(ctx: DrillContext, workload: Document, namespace: str, replicas: int | None = None,
                  pin: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The body of the drill's copy of a Deployment (`drill_copy`), at `replicas` when given, its pod template changed
    by `pin` (restricting it to the drill's NodePools) and its resource quantities written as strings."""
    body = drill_copy(ctx, workload, namespace)
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    template = body["spec"].setdefault("template", {})
    if pin is not None:
        pin(template)
    _quantities_as_strings(template.get("spec") or {})
    return body


def _quantities_as_strings(pod_spec: dict[str, Any]) -> None:
    """Resource quantities as strings, their canonical JSON form: the kubernetes client (pydantic-validated models)
    refuses a YAML integer such as `nvidia.com/gpu: 1` that the API server itself would accept."""
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            for part in ("limits", "requests"):
                values = (container.get("resources") or {}).get(part)
                if isinstance(values, dict):
                    for name, value in values.items():
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            values[name] = str(value)


def gpus_by_node(
    pods: list[dict[str, Any]], value: float, kind: str, nodes: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Each node's GPUs for the pods at load `value`: one GPU per Running pod (not being deleted) on that node, with
    the pod's namespace, name and first container as the exporter labels them. `demand`: the Ready pods share
    `value` (each min(100, value / ready)) and pods not Ready report 0; `per_pod`: every pod reports `value`.
    Returns (GPUs by node, running pods, ready pods)."""
    from gpu_policy.testbed.metrics_stack import gpu

    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and not (p.get("metadata") or {}).get("deletionTimestamp")]
    ready = [p for p in running if _ready(p)]
    share = min(100.0, value / len(ready)) if ready else 0.0
    by_node: dict[str, list[dict[str, Any]]] = {node: [] for node in nodes}
    for pod in running:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in by_node:
            continue
        utilisation = value if kind == "per_pod" else (share if _ready(pod) else 0.0)
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
        meta = pod.get("metadata") or {}
        by_node[node].append(gpu(len(by_node[node]), (str(meta.get("namespace")), str(meta.get("name")), container),
                                 DCGM_FI_DEV_GPU_UTIL=round(utilisation)))
    return by_node, len(running), len(ready)


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)
