"""Rules on the manifest set itself: unrendered variables, and which fields may hold them."""

from __future__ import annotations

from gpu_policy.findings import Severity
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.manifests import (
    contains_placeholder,
    is_fill_in,
    manifest_has_no_unrendered_variables,
    placeholders_in,
)
from gpu_policy.rules.registry import Violation
from tests.rules._helpers import POLICY, run_rule

NODECLASS = """
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: gpu
spec:
  role: KarpenterNodeRole-${CLUSTER_NAME}
  amiSelectorTerms:
    - alias: al2023@latest
  userData: |
    echo "${HOSTNAME}"
"""

SCRIPT_ONLY = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: dashboards
data:
  gpu.json: '{"title": "${datasource}"}'
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: model
spec:
  selector: {matchLabels: {app: model}}
  template:
    metadata: {labels: {app: model}}
    spec:
      containers:
        - name: main
          image: vllm/vllm-openai:v0.6.4
          command: ["/bin/sh", "-c", "exec vllm serve ${MODEL}"]
          env:
            - {name: GREETING, value: "${NAME}"}
"""


def test_unsubstituted_variable_outside_scripts_is_reported_once() -> None:
    found = run_rule("manifest-has-no-unrendered-variables", NODECLASS)
    assert found == [("EC2NodeClass/gpu", "1 unrendered placeholder in 1 value of this file, sent to the cluster "
                      "as text: ${CLUSTER_NAME} at EC2NodeClass/gpu spec.role; the file is a template, check it after "
                      "rendering")]


def test_scripts_env_and_file_bodies_may_hold_variables() -> None:
    assert run_rule("manifest-has-no-unrendered-variables", SCRIPT_ONLY) == []


def test_latest_ami_alias_is_reported_and_a_pinned_one_is_not() -> None:
    assert run_rule("ec2nodeclass-ami-pinned", NODECLASS) == [
        ("EC2NodeClass/gpu", "amiSelectorTerms[0] alias al2023@latest follows every new AMI")
    ]
    assert run_rule("ec2nodeclass-ami-pinned", NODECLASS.replace("@latest", "@v20250915")) == []


def _violations(text: str, *, complete: bool, source: str = "x.yaml") -> list[Violation]:
    docs = [d for d in to_documents(text, source)[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=POLICY, complete=complete)
    return list(manifest_has_no_unrendered_variables(ctx))


TEMPLATED = "\n---\n".join(
    f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: c{i}
  labels: {{team: "${{TEAM}}", stage: "$ENVIRONMENT", chart: "{{{{ .Chart.Name }}}}", tf: "%{{ if x }}y%{{ endif }}"}}
data: {{k: v}}
"""
    for i in range(6)
)


def test_one_finding_per_file_lists_every_placeholder_kind() -> None:
    found = _violations(TEMPLATED, complete=False)
    assert len(found) == 1  # 30 placeholders in 24 values: one finding
    message = found[0].message
    assert message.startswith("30 unrendered placeholders in 24 values of this file")
    for placeholder in ("${TEAM} (x6)", "$ENVIRONMENT (x6)", "{{ .Chart.Name }} (x6)", "%{ if x } (x6)",
                        "%{ endif } (x6)"):
        assert placeholder in message
    assert found[0].doc is not None and found[0].doc.ref == "ConfigMap/default/c0"
    assert found[0].path == ("metadata", "labels", "team")


def test_a_template_warns_in_a_partial_set_and_fails_a_complete_one() -> None:
    assert _violations(NODECLASS, complete=False)[0].severity is None  # the rule's WARNING
    assert _violations(NODECLASS, complete=True)[0].severity is Severity.ERROR


def test_two_files_give_two_findings() -> None:
    docs = [d for src in ("a.yaml", "b.yaml") for d in to_documents(NODECLASS, src)[0]]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=POLICY)
    assert [v.doc.source for v in manifest_has_no_unrendered_variables(ctx) if v.doc] == ["a.yaml", "b.yaml"]


def test_what_is_not_a_placeholder() -> None:
    assert placeholders_in("replacement: ${1}:9400 and $1") == []  # relabel capture groups
    assert placeholders_in("rate(x[$__rate_interval]) by $datasource") == []  # Grafana variables
    assert placeholders_in("KarpenterNodeRole-${CLUSTER_NAME}") == ["${CLUSTER_NAME}"]
    assert placeholders_in("${var.cluster_name}") == ["${var.cluster_name}"]  # Terraform templatefile
    assert placeholders_in("${indent(4, yamlencode(tags))}") == ["${indent(4, yamlencode(tags))}"]
    assert contains_placeholder({"a": [1, {"b": "$REGION"}]}) and not contains_placeholder({"a": [1, "x"]})
    assert placeholders_in("ami-<<AMD64PREVAMI>>") == ["<<AMD64PREVAMI>>"]  # sed markers (karpenter-blueprints)
    assert placeholders_in("cat <<EOF") == [] and placeholders_in("a << b >> c") == []  # heredocs, shifts


def test_operator_fill_in_markers_with_spaces_or_underscores_in_identifier_fields_only() -> None:
    namespace = ("metadata", "namespace")
    assert is_fill_in(namespace, "FILLED BY THE OPERATOR")
    assert is_fill_in(namespace, "FILLED_BY_THE_OPERATOR")  # NVIDIA gpu-operator assets/state-operator-metrics
    assert is_fill_in(("spec", "containers", 0, "image"), "FILLED_BY_THE_OPERATOR")
    assert not is_fill_in(("metadata", "labels", "tier"), "FILLED_BY_THE_OPERATOR")  # a label value may say so
    assert not is_fill_in(namespace, "GPU_OPERATOR")  # two words: an invalid namespace, left to schema-valid
    assert not is_fill_in(namespace, "gpu-operator")


def test_alert_templates_are_prometheus_business_but_envsubst_variables_are_not() -> None:
    rule = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r, namespace: monitoring}
spec:
  groups:
    - name: g
      rules:
        - alert: GpuHot
          expr: DCGM_FI_DEV_GPU_TEMP > 85
          annotations:
            summary: "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is {{ $value }}C"
            runbook: "https://${RUNBOOK_HOST}/gpu-hot"
"""
    found = _violations(rule, complete=False)
    assert len(found) == 1 and "${RUNBOOK_HOST}" in found[0].message and "$labels" not in found[0].message


def test_a_placeholder_in_secret_data_is_reported_but_not_in_string_data_or_configmap_bodies() -> None:
    secret = """
apiVersion: v1
kind: Secret
metadata: {name: hub-token, namespace: models}
data:
  token: $HUB_TOKEN
  region: ZXUtd2VzdC0x
stringData:
  download.sh: 'curl -H "Authorization: Bearer ${TOKEN}"'
---
apiVersion: v1
kind: ConfigMap
metadata: {name: warmup, namespace: models}
data:
  warmup.sh: 'python -m warmup --model "${MODEL_ID}"'
"""
    [found] = _violations(secret, complete=False)
    assert found.doc is not None and found.doc.ref == "Secret/models/hub-token"
    assert found.path == ("data", "token") and "1 unrendered placeholder in 1 value" in found.message
    assert "$HUB_TOKEN" in found.message and "TOKEN}" not in found.message and "MODEL_ID" not in found.message
