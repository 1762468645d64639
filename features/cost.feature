@static @cost
Feature: GPU cost ceiling
  NodePool limits are the ceiling on what Karpenter can spend. Where the organisation sets a budget, the most
  expensive fleet the GPU pools' limits admit (over every GPU type their requirements admit, priced from the
  catalogue or the organisation's own prices) stays within it, every type they may launch has a price, the prices
  are current, consolidation is on, and workloads that tolerate spot can use it.

  Background:
    Given the manifests under test

  Scenario: the GPU fleet at its limits fits the hourly budget
    Then the GPU fleet at its NodePool limits costs at most the hourly budget

  Scenario: every admissible GPU instance type has a price
    Then every admissible GPU instance type has a price

  Scenario: instance prices are current
    Then instance prices are re-dated within their maximum age

  Scenario: consolidation is on for every GPU pool
    Then GPU pools never disable consolidation

  Scenario: fault-tolerant GPU workloads are offered spot
    Then fault-tolerant GPU workloads can run on spot
