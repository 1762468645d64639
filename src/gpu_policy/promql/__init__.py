"""PromQL and alert rules judged by the real Prometheus tooling (promtool, Debian package `prometheus`).

Prometheus' own `promtool check rules` / `promtool test rules` read plain rule files, not the
PrometheusRule custom
resources users deploy (prometheus/prometheus#5767). This package closes that gap: it extracts rule files from
PrometheusRules (and wraps KEDA / Grafana queries as recording rules) with a map from every extracted line
back to
the manifest's file:line, runs promtool once per batch, and attributes promtool's messages to the manifest.
"""
