@live @monitoring
Feature: Live GPU telemetry in Prometheus
  With `gpu-policy check --live --prometheus URL` the suite asks the running Prometheus whether it does what the
  manifests mean: it scrapes every DCGM exporter pod, it has loaded every PrometheusRule group and evaluates it
  without error, and every KEDA query returns one series, read from the scaled workload's own pods. Firing GPU
  alerts are listed. Without `--live`, or without `--prometheus`, these scenarios are skipped with the reason.

  Background:
    Given the manifests under test

  Scenario: every exporter pod is scraped
    Then Prometheus scrapes every DCGM exporter pod

  Scenario: every alert group is loaded and healthy
    Then Prometheus has loaded every PrometheusRule group and evaluates it without error

  Scenario: no GPU alert fires
    Then no GPU alert of the PrometheusRules is firing

  @keda
  Scenario: KEDA's queries read their own pods, as one series
    Then every KEDA prometheus query returns one series of its target's own pods on live data
