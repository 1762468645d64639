@static @simulation
Feature: Scaling behaviour under traffic and metric outages
  Static checks say "stabilizationWindowSeconds is 300"; operators need to know what the cluster will DO.
  These scenarios run the ScaledObjects of the manifests under test through a model of the real controllers
  (kubernetes pkg/controller/podautoscaler horizontal.go and replica_calculator.go; kedacore/keda pkg/scalers and
  pkg/fallback): the HPA KEDA creates syncs every 15 s, demand traces (fixtures/traces) are shared by the ready pods,
  GPU utilization per pod cannot exceed 100 %. Each run writes its trajectory as CSV and SVG under the report
  directory (--report DIR), titled with the scenario, with what it expected and whether it held.

  Scenario: Model A absorbs a traffic surge
    # 2 -> 10 within 60 s needs the seed's scale-up policy (100 % or 4 pods per 15 s) AND a metric that grows with
    # demand: sum(...) with AverageValue. avg(...) with AverageValue is stuck at ceil(avg / threshold).
    Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
    When GPU demand follows the trace "surge"
    Then it reaches 10 replicas within 60 seconds

  Scenario: Model A scale-down stabilizes 300 s, then removes at most 25 % per minute
    Given the ScaledObject "model-a-gpu-scaler" at 10 replicas
    When GPU demand follows the trace "drop"
    Then replicas never drop within 300 seconds after the load falls
    And each scale-down step removes at most 25% per 60 seconds
    And it settles at its minimum replicas within 600 seconds after the load falls

  Scenario: Model A does not flap under an oscillating load
    Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
    When GPU demand follows the trace "oscillation"
    Then the replica count reverses direction at most 0 times

  Scenario: Model A falls back to 3 replicas during a metric outage
    # needs ignoreNullValues "false" (else the empty result reads 0) and fallback (failureThreshold 3: the 4th
    # failing 15 s sync uses fallback.replicas)
    Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
    When GPU demand follows the trace "outage"
    Then during the metric outage replicas fall back to 3 within 60 seconds
    And during the metric outage replicas never scale down

  Scenario: Model A keeps its capacity through a short metric outage at peak
    Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
    When GPU demand follows the trace "outage-at-peak"
    Then during the metric outage replicas never scale down

  Scenario: Model B absorbs a traffic surge
    Given the ScaledObject "model-b-gpu-scaler" at 1 replicas
    When GPU demand follows the trace "surge"
    Then "model-b-gpu-scaler" reaches its maximum replicas within 120 seconds

  Scenario: Model B gives GPUs back down to its SLA minimum while model A scales up
    # the seed's reallocation procedure (kubectl scale B to 1, A to 5), done by the autoscalers instead
    Given the ScaledObject "model-a-gpu-scaler" at 2 replicas
    And the ScaledObject "model-b-gpu-scaler" also at 6 replicas
    When GPU demand of "model-a-gpu-scaler" follows the trace "surge"
    And GPU demand of "model-b-gpu-scaler" follows the trace "drop"
    Then "model-a-gpu-scaler" reaches its maximum replicas within 60 seconds
    And "model-b-gpu-scaler" settles at its SLA minimum within 600 seconds after the load falls
    And "model-b-gpu-scaler" never goes below its SLA minimum

  Scenario: GPU nodes are not voluntarily disrupted during business hours
    Given the NodePool "gpu-inference-pool" with 10 nodes
    Then no voluntary disruption happens during business hours
