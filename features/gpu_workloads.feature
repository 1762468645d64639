@static @gpu-workloads
Feature: GPU workloads
  Pods that request nvidia.com/gpu ask for it the way the API server accepts, can be placed by Karpenter on some
  NodePool's instance type, name a PriorityClass that exists, and do not pin their nodes with a PodDisruptionBudget.
  Where the organisation's policy says so, they also request the CPU and memory they use, carry a priority for when
  GPUs are short, and run on the instance family their model size calls for.

  Background:
    Given the manifests under test

  Scenario: GPU requests equal limits
    Then GPU requests equal limits

  Scenario: GPU containers request cpu and memory
    Then GPU containers request cpu and memory

  Scenario: every GPU workload can land on a NodePool
    Then every GPU workload can land on a NodePool

  Scenario: GPU workloads have a priority
    Then GPU workloads set a priority class

  Scenario: the priority class a GPU workload names exists
    Then GPU workloads name a PriorityClass that exists

  Scenario: PodDisruptionBudgets do not block consolidation
    Then PodDisruptionBudgets let Karpenter drain GPU nodes

  Scenario: the model size picks the instance family
    Then the model size runs on its instance family
