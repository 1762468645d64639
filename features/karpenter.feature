@static @karpenter
Feature: Karpenter GPU node pools
  NodePools point at a node class that exists (an EC2NodeClass, or EKS Auto Mode's NodeClass), have limits Karpenter
  can actually reach, and write budget schedules Karpenter can parse. Where the organisation's policy says so, GPU
  NodePools launch only reviewed GPU instance types, keep other pods off their nodes with the nvidia.com/gpu taint,
  their EC2NodeClasses require IMDSv2, pin their AMI and encrypt their volumes, and their disruption budgets cap how
  many nodes go at once and freeze voluntary disruption during business hours — written in UTC, as Karpenter reads
  it. Only karpenter.sh/v1 NodePools and karpenter.k8s.aws/v1 EC2NodeClasses are judged here.

  Background:
    Given the manifests under test

  Scenario: GPU pools taint nvidia.com/gpu
    Then GPU pools taint nvidia.com/gpu

  Scenario: GPU pools launch only allowed GPU instance types
    Then GPU pools launch only allowed GPU instance types

  Scenario: every NodePool's nodeClassRef resolves
    Then every NodePool's nodeClassRef names a node class that exists

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

  Scenario: disruption budget schedules parse as Karpenter's cron
    Then disruption budget schedules are cron Karpenter accepts

  Scenario: disruption budgets stay within the policy's percentage
    Then disruption budgets stay within the policy's maximum percentage

  Scenario: the business-hours freeze is correct in UTC
    Then the business-hours freeze is correct in UTC
