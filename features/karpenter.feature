@static @karpenter
Feature: Karpenter GPU node pools
  GPU NodePools launch only reviewed GPU instance types, keep other pods off their nodes with the nvidia.com/gpu
  taint, point at an EC2NodeClass that exists, and have limits Karpenter can actually reach. Their EC2NodeClasses
  require IMDSv2 and encrypt their volumes, and their disruption budgets cap how many nodes go at once and freeze
  voluntary disruption during business hours — with the schedule written in UTC, as Karpenter reads it.

  Background:
    Given the manifests under test

  Scenario: GPU pools taint nvidia.com/gpu
    Then GPU pools taint nvidia.com/gpu

  Scenario: GPU pools launch only allowed GPU instance types
    Then GPU pools launch only allowed GPU instance types

  Scenario: every NodePool's nodeClassRef resolves
    Then every NodePool's nodeClassRef names an EC2NodeClass of the set

  Scenario: NodePool limits are mutually reachable
    Then NodePool limits are mutually reachable

  Scenario: spot pool weight is below on-demand
    Then spot pool weight is below on-demand

  Scenario: EC2NodeClasses pin their AMI version
    Then EC2NodeClasses pin their AMI version

  Scenario: EC2NodeClasses require IMDSv2
    Then EC2NodeClasses require IMDSv2

  Scenario: EC2NodeClasses encrypt their volumes
    Then EC2NodeClasses encrypt their EBS volumes

  Scenario: disruption budgets stay within the policy's percentage
    Then disruption budgets disrupt at most 20% of a pool's nodes

  Scenario: the business-hours freeze is correct in UTC
    Then the business-hours freeze is correct in UTC
