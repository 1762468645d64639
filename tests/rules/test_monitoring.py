"""Edge cases of the monitoring rules: node labels Karpenter sets, collectors files, Prometheus selection."""

from __future__ import annotations

import dataclasses

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.metrics import dcgm
from gpu_policy.policy.loader import PolicySet
from gpu_policy.promql.text import dcgm_metric_names, metric_names
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import all_rules
from tests.rules._helpers import POLICY, run_rule

POOL = """
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: gpu}
spec:
  template:
    metadata:
      labels: {node-type: gpu}
    spec:
      requirements:
        - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.12xlarge, p5.48xlarge]}
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot]}
      taints:
        - {key: nvidia.com/gpu, value: "true", effect: NoSchedule}
        - {key: dedicated, value: gpu, effect: NoExecute}
"""


def exporter(
    spec_extra: str = "", env: str = "", image: str = "dcgm-exporter:4.5.3-4.8.2-ubuntu22.04"
) -> str:
    return f"""
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: dcgm, namespace: mon}}
spec:
  selector: {{matchLabels: {{app: dcgm}}}}
  template:
    metadata: {{labels: {{app: dcgm}}}}
    spec:
{spec_extra}
      containers:
        - name: exporter
          image: nvcr.io/nvidia/k8s/{image}
{env}
"""


TOLERATE_ALL = """      tolerations:
        - {operator: Exists}"""


@pytest.mark.parametrize(
    ("selector", "ok"),
    [
        ("karpenter.k8s.aws/instance-gpu-manufacturer: nvidia", True),
        ("node-type: gpu", True),
        ("karpenter.sh/capacity-type: spot", True),
        ('nvidia.com/gpu.present: "true"', False),  # GFD's label, not Karpenter's
        ('karpenter.k8s.aws/instance-gpu-count: "8"', False),  # g5.12xlarge has 4
        ("node.kubernetes.io/instance-type: p5.48xlarge", False),
    ],
)
def test_node_selector_must_hold_on_every_instance_type_of_the_pool(selector: str, ok: bool) -> None:
    text = POOL + exporter(TOLERATE_ALL + f"\n      nodeSelector:\n        {selector}")
    found = run_rule("dcgm-exporter-selects-gpu-nodes", text)
    assert (found == []) is ok, found
    if not ok:
        assert found[0][0] == "DaemonSet/mon/dcgm" and "NodePool gpu" in found[0][1]


def test_gfd_label_is_accepted_when_the_policy_says_gfd_is_installed() -> None:
    policy = dataclasses.replace(
        POLICY, cluster={**POLICY.cluster, "gpuFeatureDiscovery": {"installed": True}}
    )
    text = POOL + exporter(TOLERATE_ALL + '\n      nodeSelector:\n        nvidia.com/gpu.present: "true"')
    assert run_rule("dcgm-exporter-selects-gpu-nodes", text, policy) == []


def test_required_affinity_with_gt_on_gpu_count() -> None:
    affinity = """      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["0"]}"""
    assert run_rule("dcgm-exporter-selects-gpu-nodes", POOL + exporter(TOLERATE_ALL + "\n" + affinity)) == []
    too_many = affinity.replace('values: ["0"]', 'values: ["4"]')
    found = run_rule("dcgm-exporter-selects-gpu-nodes", POOL + exporter(TOLERATE_ALL + "\n" + too_many))
    assert found and "g5.12xlarge" in found[0][1]


def test_noexecute_taint_must_be_tolerated_and_gpu_requests_do_not_help_the_exporter() -> None:
    only_gpu = """      tolerations:
        - {key: nvidia.com/gpu, operator: Exists}"""
    found = run_rule("dcgm-exporter-tolerates-gpu-taints", POOL + exporter(only_gpu))
    assert len(found) == 1 and "dedicated=gpu:NoExecute" in found[0][1]
    found = run_rule("dcgm-exporter-tolerates-gpu-taints", POOL + exporter(""))
    assert "nvidia.com/gpu=true:NoSchedule" in found[0][1]


def test_collectors_flag_wins_over_env_and_default_applies() -> None:
    container = {
        "args": ["-f", "/etc/x/a.csv"],
        "env": [{"name": dcgm.COLLECTORS_ENV, "value": "/etc/x/b.csv"}],
    }
    assert dcgm.configured_collectors(("c",), container)[0] == "/etc/x/a.csv"
    assert dcgm.configured_collectors(("c",), {"args": ["--collectors=/x/c.csv"]})[0] == "/x/c.csv"
    assert dcgm.configured_collectors(("c",), {})[0] == dcgm.DEFAULT_COLLECTORS


def test_commented_rows_are_not_collected() -> None:
    fields = dcgm.parse_collectors_csv(
        "# c\nDCGM_FI_DEV_GPU_UTIL, gauge, x\n# DCGM_FI_DEV_FB_TOTAL, gauge, y\n"
        "DCGM_FI_DEV_DEC_UTIL ,     gauge, z\n"
    )
    assert fields == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_DEC_UTIL"}


def test_unreadable_collector_file_is_a_finding_not_a_pass() -> None:
    env = """          env:
            - {name: DCGM_EXPORTER_COLLECTORS, value: /etc/dcgm-exporter/custom.csv}"""
    found = run_rule("dcgm-metrics-are-collected", exporter(env=env))
    assert len(found) == 1 and "custom.csv could not be read" in found[0][1]


def test_collectors_from_a_mounted_configmap_are_read() -> None:
    text = (
        exporter(
            spec_extra="""      volumes:
        - {name: csv, configMap: {name: counters}}""",
            env="""          env:
            - {name: DCGM_EXPORTER_COLLECTORS, value: /etc/custom/c.csv}
          volumeMounts:
            - {name: csv, mountPath: /etc/custom}""",
        )
        + """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: counters, namespace: mon}
data:
  c.csv: |
    DCGM_FI_DEV_GPU_UTIL, gauge, util
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: mon}
spec:
  groups:
    - name: g
      rules:
        - {alert: A, expr: DCGM_FI_DEV_GPU_UTIL > 90 and DCGM_FI_DEV_FB_USED > 0}
"""
    )
    found = run_rule("dcgm-metrics-are-collected", text)
    assert found == [("PrometheusRule/mon/r", found[0][1])] and "DCGM_FI_DEV_FB_USED" in found[0][1]
    assert "GPU_UTIL" not in found[0][1].split("queries")[1].split(",")[0]



_UTIL_AND_FB_RULE = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: mon}
spec:
  groups:
    - name: g
      rules:
        - {alert: A, expr: DCGM_FI_DEV_GPU_UTIL > 90 and DCGM_FI_DEV_FB_USED > 0}
"""


def test_collectors_flag_inside_a_shell_script_is_read() -> None:
    """`command: [bash, -c]` whose script starts dcgm-exporter with --collectors (seen in a public GKE sample): the
    flag names the mounted ConfigMap key; reading the default path instead reported "no such key"."""
    shell = """          command: ["/bin/bash", "-c"]
          args:
            - 'hostname "$NODE_NAME"; exec dcgm-exporter --collect-interval 5000 --collectors /etc/ours/list.csv;'
          volumeMounts:
            - {name: csv, mountPath: /etc/ours}"""
    text = (
        exporter(spec_extra="""      volumes:
        - {name: csv, configMap: {name: our-list}}""", env=shell)
        + """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: our-list, namespace: mon}
data:
  list.csv: |
    DCGM_FI_DEV_GPU_UTIL, gauge, util
"""
        + _UTIL_AND_FB_RULE
    )
    found = run_rule("dcgm-metrics-are-collected", text)
    assert [r for r, _ in found] == ["PrometheusRule/mon/r"], found
    assert "DCGM_FI_DEV_FB_USED" in found[0][1] and "/etc/ours/list.csv" in found[0][1]
    container = {"command": ["sh", "-ec"], "args": ["dcgm-exporter -f '/etc/a b.csv' && sleep 1"]}
    assert dcgm.configured_collectors(("c",), container)[0] == "/etc/a b.csv"


def test_collectors_in_a_configmap_outside_the_set_are_not_checked_unless_complete() -> None:
    """The list lives in a ConfigMap of another file/chart: a partial set lists it as not checked (README "Partial
    manifest sets"); a complete set reports it as a finding of the rule."""
    text = (
        exporter(spec_extra="""      volumes:
        - {name: csv, configMap: {name: elsewhere}}""", env="""          env:
            - {name: DCGM_EXPORTER_COLLECTORS, value: /etc/custom/c.csv}
          volumeMounts:
            - {name: csv, mountPath: /etc/custom}""")
        + _UTIL_AND_FB_RULE
    )
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    rule = all_rules()["dcgm-metrics-are-collected"]
    partial = CheckContext(graph=ResourceGraph(docs), policy=POLICY)
    assert list(rule.check(partial)) == []
    assert [u.message for u in partial.unresolved] == [
        "DaemonSet mon/dcgm: ConfigMap mon/elsewhere, mounted over /etc/custom/c.csv, is not in the manifest set; "
        "the DCGM metrics queried are not checked against its collectors"
    ]
    complete = CheckContext(graph=ResourceGraph(docs), policy=POLICY, complete=True)
    assert [v.doc.ref for v in rule.check(complete) if v.doc] == ["DaemonSet/mon/dcgm"]


PROM = """
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: p, namespace: monitoring}
spec:
  ruleSelector: {}
"""
RULE = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: other, labels: {team: gpu}}
spec: {groups: []}
"""


def test_null_rule_namespace_selector_means_own_namespace_only() -> None:
    found = run_rule("prometheusrule-selected-by-prometheus", PROM + RULE)
    assert found and "only looks in its own namespace monitoring" in found[0][1]
    assert (
        run_rule("prometheusrule-selected-by-prometheus", PROM + "  ruleNamespaceSelector: {}\n" + RULE) == []
    )


def test_null_rule_selector_selects_nothing() -> None:
    found = run_rule(
        "prometheusrule-selected-by-prometheus",
        PROM.replace("  ruleSelector: {}\n", "  ruleNamespaceSelector: {}\n") + RULE,
    )
    assert found and "null selector selects nothing" in found[0][1]


def test_no_prometheus_in_the_set_is_a_partial_set() -> None:
    assert run_rule("prometheusrule-selected-by-prometheus", RULE) == []


def test_metric_names_skip_functions_labels_and_grouping() -> None:
    expr = (
        'sum by (nodepool) (increase(karpenter_nodeclaims_created_total{nodepool=~"gpu-.*"}[15m]))'
        " / on(pod) x"
    )
    assert metric_names(expr) == ("karpenter_nodeclaims_created_total", "x")
    assert metric_names("rate(a[$__rate_interval]) offset 5m + ${b}") == ("a",)
    assert dcgm_metric_names('DCGM_FI_DEV_FB_USED{pod="DCGM_FI_X"} / DCGM_FI_DEV_FB_FREE') == [
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
    ]


# -- Kubernetes mode (dcgm-exporter-labels-pods) -------------------------------------------------------------------
POD_RULE = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: mon}
spec:
  groups:
    - name: g
      rules:
        - {alert: A, expr: 'DCGM_FI_DEV_GPU_UTIL{pod=~"model-a-.*"} > 90'}
"""
POD_RESOURCES_VOLUME = """      volumes:
        - {name: pr, hostPath: {path: /var/lib/kubelet/pod-resources}}"""
POD_RESOURCES_MOUNT = """          volumeMounts:
            - {name: pr, mountPath: /var/lib/kubelet/pod-resources, readOnly: true}"""


def labels_pods(env: str, mount: str = POD_RESOURCES_MOUNT, rule: str = POD_RULE) -> list[tuple[str, str]]:
    return run_rule(
        "dcgm-exporter-labels-pods", exporter(spec_extra=POD_RESOURCES_VOLUME, env=env + "\n" + mount) + rule
    )


def env_kubernetes(value: str, extra: str = "") -> str:
    return f"""          env:
            - {{name: DCGM_EXPORTER_KUBERNETES, value: {value}}}{extra}"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("1", True), ("t", True), ("0", False), ("False", False),
     ("yes", None), ("tRUE", None), ("on", None), (" true", None)],
)  # fmt: skip
def test_bool_env_is_parsed_like_go_strconv_parse_bool(text: str, expected: bool | None) -> None:
    assert dcgm.parse_go_bool(text) is expected


def test_kubernetes_flag_overrides_env_and_env_alone_counts() -> None:
    env = {"name": dcgm.KUBERNETES_ENV, "value": "false"}
    assert dcgm.kubernetes_mode(("c",), {"env": [env], "args": ["-k"]}).value is True
    assert dcgm.kubernetes_mode(("c",), {"env": [{**env, "value": "1"}], "args": ["--kubernetes=false"]}).value is False
    assert dcgm.kubernetes_mode(("c",), {"env": [{**env, "value": ""}]}).value is False  # empty is false
    assert dcgm.kubernetes_mode(("c",), {}).value is False  # default false
    yes = dcgm.kubernetes_mode(("c",), {"env": [{**env, "value": "yes"}]})
    assert yes.value is None and yes.problem is not None and "exits at startup" in yes.problem


def test_exporter_in_kubernetes_mode_with_pod_resources_passes() -> None:
    assert labels_pods(env_kubernetes('"true"')) == []
    assert labels_pods(env_kubernetes('"T"')) == []


def test_exporter_without_kubernetes_mode_fails_when_a_query_selects_pods() -> None:
    found = labels_pods("          env: []")
    assert found == [("DaemonSet/mon/dcgm", found[0][1])]
    assert "does not run in Kubernetes mode" in found[0][1] and "default false" in found[0][1]
    assert "PrometheusRule/mon/r" in found[0][1] and "pod" in found[0][1]
    # no query needs pod labels: nothing to judge
    no_pod_rule = POD_RULE.replace('{pod=~"model-a-.*"}', "")
    assert labels_pods("          env: []", rule=no_pod_rule) == []


def test_yes_is_not_a_go_bool_and_old_namespace_renames_labels() -> None:
    found = labels_pods(env_kubernetes('"yes"'))
    assert len(found) == 1 and "'yes' is not a Go bool" in found[0][1]
    old = labels_pods(env_kubernetes('"true"', "\n            - {name: DCGM_EXPORTER_USE_OLD_NAMESPACE, value: '1'}"))
    assert len(old) == 1 and "pod_name, pod_namespace and container_name" in old[0][1]


def pod_resources(env: str, mount: str = POD_RESOURCES_MOUNT) -> list[tuple[str, str]]:
    """dcgm-exporter-pod-resources-mounted on an exporter alone: no query needs to use the pod labels."""
    return run_rule("dcgm-exporter-pod-resources-mounted",
                    exporter(spec_extra=POD_RESOURCES_VOLUME, env=env + "\n" + mount))


def test_pod_resources_must_be_mounted_from_the_kubelet_directory() -> None:
    found = pod_resources(env_kubernetes('"true"'), mount="")
    assert found == [("DaemonSet/mon/dcgm", found[0][1])]
    assert "no hostPath volume is mounted there" in found[0][1] and "skips the pod mapping" in found[0][1]
    assert labels_pods(env_kubernetes('"true"'), mount="") == []  # one finding, from the mount rule only
    elsewhere = POD_RESOURCES_MOUNT.replace("/var/lib/kubelet/pod-resources", "/pr")
    assert "no hostPath volume" in pod_resources(env_kubernetes('"true"'), mount=elsewhere)[0][1]
    # a socket moved with DCGM_POD_RESOURCES_KUBELET_SOCKET is found where the mount puts it
    socket = "\n            - {name: DCGM_POD_RESOURCES_KUBELET_SOCKET, value: /pr/kubelet.sock}"
    moved = env_kubernetes('"true"', socket)
    assert pod_resources(moved, mount=elsewhere) == []
    # -k as an argument is Kubernetes mode too; without Kubernetes mode the socket is not read at all
    assert pod_resources("          args: [-k]", mount="")
    assert pod_resources("          env: []", mount="") == []
    assert pod_resources(env_kubernetes('"true"')) == []


# -- collectors from a ConfigMap (configmap-data) ------------------------------------------------------------------
def configmap_exporter(data: str | None, automount: bool = True, value: str = "mon:dcgm-metrics") -> str:
    text = exporter(
        spec_extra="" if automount else "      automountServiceAccountToken: false",
        env=f"""          env:
            - {{name: DCGM_EXPORTER_CONFIGMAP_DATA, value: '{value}'}}""",
    )
    if data is not None:
        text += f"""
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: dcgm-metrics, namespace: mon}}
data:
{data}
"""
    return text + _UTIL_AND_FB_RULE


def test_configmap_data_replaces_the_collectors_file() -> None:
    csv = "  metrics: |\n    DCGM_FI_DEV_GPU_UTIL, gauge, u"
    found = run_rule("dcgm-metrics-are-collected", configmap_exporter(csv))
    # read from the ConfigMap: FB_USED (in the default CSV) is reported missing, GPU_UTIL is not
    assert len(found) == 1 and found[0][0] == "PrometheusRule/mon/r"
    assert "DCGM_FI_DEV_FB_USED" in found[0][1] and "ConfigMap mon:dcgm-metrics" in found[0][1]


def test_configmap_data_not_in_the_set_is_unreadable_not_a_verdict() -> None:
    """No verdict on the metrics either way; a partial set lists the ConfigMap as not checked, a complete set
    reports it (README "Partial manifest sets")."""
    assert run_rule("dcgm-metrics-are-collected", configmap_exporter(None)) == []
    docs = [d for d in to_documents(configmap_exporter(None), "x.yaml")[0] if d.is_object]
    rule = all_rules()["dcgm-metrics-are-collected"]
    partial = CheckContext(graph=ResourceGraph(docs), policy=POLICY)
    assert list(rule.check(partial)) == [] and len(partial.unresolved) == 1
    assert "ConfigMap mon/dcgm-metrics is not in the manifest set" in partial.unresolved[0].message
    complete = CheckContext(graph=ResourceGraph(docs), policy=POLICY, complete=True)
    found = [(v.doc.ref if v.doc else "", v.message) for v in rule.check(complete)]
    assert found == [("DaemonSet/mon/dcgm", found[0][1])]
    assert "ConfigMap mon/dcgm-metrics is not in the manifest set" in found[0][1]


def test_configmap_data_without_metrics_key_or_credentials_or_malformed_exits() -> None:
    no_key = run_rule("dcgm-metrics-are-collected", configmap_exporter("  other: x"))
    assert len(no_key) == 1 and "no 'metrics' key" in no_key[0][1]
    no_token = run_rule("dcgm-metrics-are-collected", configmap_exporter("  metrics: x", automount=False))
    assert len(no_token) == 1 and "automountServiceAccountToken: false" in no_token[0][1]
    malformed = run_rule("dcgm-metrics-are-collected", configmap_exporter(None, value="dcgm-metrics"))
    assert len(malformed) == 1 and "is not <namespace>:<name>" in malformed[0][1]
    # "none" is upstream's unset value: the collectors file applies again
    assert dcgm.configmap_data(("c",), {"args": ["-m", "none"]}).value == dcgm.UNDEFINED_CONFIGMAP


# -- ServiceMonitor targetPort (scrape chain) ----------------------------------------------------------------------
def scrape_chain(service_port: int, endpoint: str) -> str:
    return (
        exporter(
            env="""          ports:
            - {name: metrics, containerPort: 9400}"""
        )
        + f"""
---
apiVersion: v1
kind: Service
metadata: {{name: dcgm, namespace: mon, labels: {{app: dcgm}}}}
spec:
  selector: {{app: dcgm}}
  ports:
    - {{name: web, port: {service_port}, targetPort: 9400}}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {{name: sm, namespace: mon}}
spec:
  selector: {{matchLabels: {{app: dcgm}}}}
  endpoints:
    - {endpoint}
"""
    )


@pytest.mark.parametrize(
    ("endpoint", "scraped"),
    [
        ("{targetPort: 9400, honorLabels: true}", True),  # the container port number
        ("{targetPort: metrics, honorLabels: true}", True),  # the container port name
        ("{targetPort: 80, honorLabels: true}", False),  # the Service port: not what the operator matches
        ("{targetPort: web, honorLabels: true}", False),  # the Service port name
        ("{targetPort: '9400', honorLabels: true}", False),  # a string is matched against port names
        ("{port: web, honorLabels: true}", True),
    ],
)
def test_servicemonitor_target_port_matches_the_pod_container_port(endpoint: str, scraped: bool) -> None:
    found = run_rule("dcgm-exporter-is-scraped", scrape_chain(80, endpoint))
    assert (found == []) is scraped, found
    if not scraped:
        assert found[0][0] == "Service/mon/dcgm"


# -- any ServiceMonitor: Services, ports, job labels (rules/scrape_config.py) ------------------------------------
def service(name: str = "app", namespace: str = "apps", labels: str = "{app: app}",
            ports: str = "[{name: metrics, port: 8080}, {name: grpc, port: 9000}]") -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}
spec:
  selector: {{app: app}}
  ports: {ports}
"""


def monitor(endpoints: str = "[{port: metrics}]", namespace: str = "apps", extra: str = "",
            name: str = "app-metrics") -> str:
    return f"""
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{app: app}}}}
  endpoints: {endpoints}
{extra}
"""


def test_endpoint_without_port_is_flagged_when_split_or_the_service_has_several_ports() -> None:
    split = run_rule("servicemonitor-endpoint-names-a-port", service() + monitor("[{port: metrics}, {interval: 15s}]"))
    assert split == [("ServiceMonitor/apps/app-metrics", split[0][1])]
    assert "endpoints[1] (interval) has neither port nor targetPort" in split[0][1]
    assert "split into a separate list item" in split[0][1]
    several = run_rule("servicemonitor-endpoint-names-a-port", service() + monitor("[{interval: 15s}]"))
    assert len(several) == 1 and "every port of Service/apps/app (metrics, grpc)" in several[0][1]
    one_port = service(ports="[{name: metrics, port: 8080}]")
    assert run_rule("servicemonitor-endpoint-names-a-port", one_port + monitor("[{interval: 15s}]")) == []
    assert run_rule("servicemonitor-endpoint-names-a-port", monitor("[{interval: 15s}]")) == []  # Service unknown
    assert run_rule("servicemonitor-endpoint-names-a-port", service() + monitor("[{targetPort: 8080}]")) == []


def test_namespace_miss_names_the_servicemonitor_and_both_namespaces() -> None:
    text = service(namespace="nvidia-device-plugin") + monitor(
        namespace="monitoring", extra="  namespaceSelector: {matchNames: [kube-system]}")
    found = run_rule("servicemonitor-finds-its-service", text)
    assert found == [("ServiceMonitor/monitoring/app-metrics", found[0][1])]
    assert "kube-system" in found[0][1] and "nvidia-device-plugin" in found[0][1]
    assert "ServiceMonitor/monitoring/app-metrics" in found[0][1]
    # unset namespaceSelector: only its own namespace
    own = run_rule("servicemonitor-finds-its-service", service(namespace="a") + monitor(namespace="b"))
    assert len(own) == 1 and "its own namespace b" in own[0][1] and "(namespace a)" in own[0][1]
    ok = service(namespace="a") + monitor(namespace="b", extra="  namespaceSelector: {matchNames: [a]}")
    assert run_rule("servicemonitor-finds-its-service", ok) == []


def test_selector_on_the_services_pod_selector_instead_of_its_labels() -> None:
    found = run_rule("servicemonitor-finds-its-service", service(labels="{}") + monitor())
    assert len(found) == 1 and "only in spec.selector" in found[0][1]


def test_servicemonitor_whose_service_is_not_in_the_set_is_not_checked() -> None:
    docs = [d for d in to_documents(monitor(), "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=PolicySet.defaults())
    assert list(all_rules()["servicemonitor-finds-its-service"].check(ctx)) == []
    assert [u.message for u in ctx.unresolved] == [
        "ServiceMonitor/apps/app-metrics selects Services labelled {'matchLabels': {'app': 'app'}} "
        "in its own namespace apps (namespaceSelector unset); none is in the set"]
    complete = CheckContext(graph=ResourceGraph(docs), policy=PolicySet.defaults(), complete=True)
    assert len(list(all_rules()["servicemonitor-finds-its-service"].check(complete))) == 1


def test_endpoint_port_must_name_a_service_port() -> None:
    found = run_rule("servicemonitor-port-is-a-service-port",
                     service(ports="[{port: 8080}]") + monitor("[{port: http}]"))
    assert len(found) == 1 and "'http' is not the name of a port" in found[0][1] and "unnamed 8080" in found[0][1]
    # A partial set: the selector may match Services outside it, so the message speaks of the Services it names.
    assert found[0][1].endswith("no target of these Services is kept")
    assert run_rule("servicemonitor-port-is-a-service-port", service() + monitor()) == []


UP_RULE = """
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {{name: r, namespace: apps}}
spec:
  groups:
    - name: g
      rules:
        - {{alert: Down, expr: 'up{{job="{job}"}} == 0', for: 5m}}
"""


def test_up_alert_on_the_servicemonitor_name_never_matches_the_service_named_job() -> None:
    found = run_rule("up-alert-job-matches-scrape-job", service() + monitor() + UP_RULE.format(job="app-metrics"))
    assert found == [("PrometheusRule/apps/r", found[0][1])]
    assert "targets get job app (the Service name)" in found[0][1]
    assert run_rule("up-alert-job-matches-scrape-job", service() + monitor() + UP_RULE.format(job="app")) == []
    # jobLabel: the job is the Service label's value, so the Service name no longer matches
    labelled = service(labels="{app: app, team: gpu-app}") + monitor(extra="  jobLabel: team")
    found = run_rule("up-alert-job-matches-scrape-job", labelled + UP_RULE.format(job="app"))
    assert len(found) == 1 and "get job gpu-app (jobLabel 'team')" in found[0][1]
    assert run_rule("up-alert-job-matches-scrape-job", labelled + UP_RULE.format(job="gpu-app")) == []
    # a job naming nothing of the set (a chart's Service, a static scrape config) is not judged
    assert run_rule("up-alert-job-matches-scrape-job", service() + monitor() + UP_RULE.format(job="other")) == []
    # a relabeling of job makes it unknown
    relabel = monitor("[{port: metrics, relabelings: [{targetLabel: job, replacement: app-metrics}]}]")
    assert run_rule("up-alert-job-matches-scrape-job", service() + relabel + UP_RULE.format(job="app-metrics")) == []


def test_gfd_labels_are_not_judged_when_the_policy_does_not_say_whether_gfd_runs() -> None:
    cluster = {k: v for k, v in POLICY.cluster.items() if k != "gpuFeatureDiscovery"}
    unknown = dataclasses.replace(POLICY, cluster=cluster)
    gfd = POOL + exporter(TOLERATE_ALL + '\n      nodeSelector:\n        nvidia.com/gpu.present: "true"')
    assert run_rule("dcgm-exporter-selects-gpu-nodes", gfd, unknown) == []
    assert run_rule("dcgm-exporter-selects-gpu-nodes", gfd)  # the reference profile says GFD is not installed
    # a non-GFD label the nodes lack is still a finding
    wrong = POOL + exporter(TOLERATE_ALL + '\n      nodeSelector:\n        karpenter.k8s.aws/instance-gpu-count: "8"')
    assert run_rule("dcgm-exporter-selects-gpu-nodes", wrong, unknown)


def test_exporter_service_names_the_servicemonitor_meant_for_it_and_both_namespaces() -> None:
    """The ai-on-eks shape: a `dcgm-exporter` ServiceMonitor with extra selector labels, looking in kube-system."""
    text = exporter() + """
---
apiVersion: v1
kind: Service
metadata: {name: dcgm, namespace: mon, labels: {app: dcgm}}
spec:
  selector: {app: dcgm}
  ports: [{name: metrics, port: 9400, targetPort: 9400}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: dcgm-exporter, namespace: mon}
spec:
  namespaceSelector: {matchNames: [kube-system]}
  selector: {matchLabels: {app: dcgm, component: exporter}}
  endpoints: [{port: metrics, honorLabels: true}]
"""
    found = run_rule("dcgm-exporter-is-scraped", text)
    assert found == [("Service/mon/dcgm", found[0][1])]
    assert "ServiceMonitor/mon/dcgm-exporter (namespace mon) is meant for it" in found[0][1]
    assert "component=exporter" in found[0][1] and "covers kube-system, not the Service's namespace mon" in found[0][1]
    # no ServiceMonitor in the set written for it: not checked (it may come from a chart)
    alone = text.split("---\napiVersion: monitoring.coreos.com/v1")[0]
    assert run_rule("dcgm-exporter-is-scraped", alone) == []
