@static @promql
Feature: Every PromQL expression of the platform is valid, as Prometheus' own parser judges it
  Alert rules are extracted from the PrometheusRule objects into plain rule files and checked by `promtool check
  rules`; KEDA trigger queries and Grafana panel queries are wrapped as recording rules and checked the same way.
  A failure points at the manifest line of the expression, not at the extracted file.

  Background:
    Given the manifests under test

  Scenario: alert rules pass promtool's checks
    Then every PrometheusRule passes promtool check rules

  Scenario: KEDA trigger queries parse
    Then every KEDA prometheus trigger query is valid PromQL

  Scenario: dashboard panel queries parse
    Then every Grafana dashboard query is valid PromQL

  Scenario: vLLM counters are read by their exposed names
    Then vLLM counters are queried by the names vLLM exposes, with _total
