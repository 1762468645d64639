@static @keda
Feature: KEDA autoscaling of the GPU model servers
  Every ScaledObject passes the checks KEDA's admission webhook would make (the webhook fails open, so the gate
  makes them), scales a workload that exists and that nothing else scales, and follows the organisation's scaling
  policy: slow, bounded scale-down, fast scale-up, the workload class's threshold and cooldown, a query that
  measures the right pods the right way, and an SLA floor.

  Background:
    Given the manifests under test

  Scenario: the autoscaler's target exists
    Then the autoscaler's target exists

  Scenario: one autoscaler per workload
    Then one autoscaler per workload

  Scenario: replica bounds are valid
    Then autoscaler replica bounds are valid

  Scenario: cpu and memory triggers have container requests
    Then cpu and memory triggers have container requests

  Scenario: triggers pass KEDA's checks
    Then ScaledObject triggers pass KEDA's checks

  Scenario: fallback is valid
    Then fallback is accepted by KEDA and lies within the replica bounds

  Scenario: scale-down stabilizes as long as the scaling policy asks
    Then scale-down stabilizes at least as long as the scaling policy's minimum window

  Scenario: scale-down is rate limited
    Then scale-down removes pods no faster than the scaling policy's rate limit

  Scenario: scale-up is fast
    Then scale-up is at least as fast as the scaling policy asks

  Scenario: thresholds follow the workload class
    Then GPU autoscaling matches the workload class

  Scenario: the query's aggregation suits the metricType
    Then the query's aggregation suits the metricType

  Scenario: serverAddress reaches a Prometheus
    Then serverAddress reaches a Prometheus

  Scenario: no removed or no-op fields
    Then ScaledObjects carry no removed or no-op fields

  Scenario: a lost GPU metric fails over instead of reading 0
    Then a lost GPU metric does not silently scale to the minimum

  Scenario: the SLA minimum is kept
    Then minimum replicas keep the SLA minimum

  Scenario: Git does not fight the autoscaler
    Then autoscaled workloads leave spec.replicas unset

  Scenario: a prometheus query returns one series however many pods run
    Then every KEDA prometheus query aggregates its target's pods into one series
