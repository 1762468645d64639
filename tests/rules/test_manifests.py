"""Rules on the manifest set itself: unrendered variables, and which fields may hold them."""

from __future__ import annotations

from tests.rules._helpers import run_rule

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
    assert found == [("EC2NodeClass/gpu", "${CLUSTER_NAME} is not substituted: the cluster receives it as text")]


def test_scripts_env_and_file_bodies_may_hold_variables() -> None:
    assert run_rule("manifest-has-no-unrendered-variables", SCRIPT_ONLY) == []


def test_latest_ami_alias_is_reported_and_a_pinned_one_is_not() -> None:
    assert run_rule("ec2nodeclass-ami-pinned", NODECLASS) == [
        ("EC2NodeClass/gpu", "amiSelectorTerms[0] alias al2023@latest follows every new AMI")
    ]
    assert run_rule("ec2nodeclass-ami-pinned", NODECLASS.replace("@latest", "@v20250915")) == []
