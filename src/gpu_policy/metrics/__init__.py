"""Which metrics exist: the DCGM exporter's collector CSVs, and the PromQL queries that read them.

- `dcgm`: where the exporter's collector files live (outside the repository), which file a DaemonSet
loads, and the
  DCGM fields each file turns on.
- `promql_names`: metric names read by a PromQL expression (a lexer, not a parser: enough to name metrics).
- `queries`: every query the manifests run against Prometheus: PrometheusRule expressions, KEDA prometheus
  triggers, Grafana dashboard panels (with the manifest line of each).
"""
