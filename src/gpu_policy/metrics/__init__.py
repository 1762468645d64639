"""Which metrics exist: the DCGM exporter's collector CSVs, and the PromQL queries that read them.

- `dcgm`: where the exporter's collector files live (outside the repository), which file a DaemonSet
loads, and the
  DCGM fields each file turns on.

The queries themselves and the metric names they read: `gpu_policy.promql.sources` (every PromQL expression
of the manifests, with its line) and `gpu_policy.promql.text` (metric names, aggregations, label matchers).
"""
