"""Scaling behaviour simulation: what the HPA / KEDA controllers and Karpenter budgets will DO, without a cluster.

`hpa` (the HorizontalPodAutoscaler controller), `keda` (ScaledObject -> HPA, prometheus scaler, fallback),
`traces` (metric traces), `engine` (the time loop), `checks` (assertions), `report` (CSV/SVG),
`disruption` (Karpenter budgets over a week).
"""
