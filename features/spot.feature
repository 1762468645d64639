@static @spot
Feature: Spot capacity
  Spot GPU nodes are reclaimed two minutes after EC2's notice. Only workloads built for that may land there: they
  tolerate the spot pool's taints (the EKS ExtendedResourceToleration profile decides whether the GPU toleration is
  added for them), they finish their graceful shutdown inside the notice, and they keep no state.

  Background:
    Given the manifests under test

  Scenario: spot pools taint the capacity type
    Then spot pools carry the capacity-type taint of the spot policy

  Scenario: spot pods tolerate the capacity-type taint
    Then spot pods tolerate the capacity-type taint

  Scenario: spot pods tolerate the GPU taint of their spot pool
    Then spot pods tolerate the GPU taint of their spot pool

  Scenario: graceful shutdown fits the 2-minute notice
    Then spot pods shut down within the 2-minute interruption notice

  Scenario: only stateless workloads run on spot
    Then only stateless workloads run on spot
