"""Small Karpenter manifests shared by the karpenter/spot/consolidation/cost rule tests."""

from __future__ import annotations


def nodepool(name: str, *, capacity: str = '["on-demand"]', types: str = '["p4d.24xlarge"]',
             taints: str = '[{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]',
             limits: str = '{nvidia.com/gpu: "16"}', disruption: str = "{consolidateAfter: 30s}",
             weight: int | None = None, extra_requirements: str = "") -> str:
    weight_line = f"\n  weight: {weight}" if weight is not None else ""
    return f"""
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: {name}
spec:
  template:
    spec:
      requirements:
        - {{key: karpenter.sh/capacity-type, operator: In, values: {capacity}}}
        - {{key: node.kubernetes.io/instance-type, operator: In, values: {types}}}{extra_requirements}
      nodeClassRef: {{group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}}
      taints: {taints}
  limits: {limits}
  disruption: {disruption}{weight_line}
---
"""


def deployment(name: str, pod_spec: str, kind: str = "Deployment", labels: str = "{}") -> str:
    return f"""
apiVersion: apps/v1
kind: {kind}
metadata: {{name: {name}, namespace: inference, labels: {labels}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
{pod_spec}
---
"""
