@static @consolidation
Feature: Consolidation
  Karpenter removes empty and under-used nodes after consolidateAfter. Each NodePool the organisation's budgets
  policy names consolidates with the policy and delay it gives, and, where the organisation asks for it, no GPU pool
  turns consolidation off: an idle GPU node costs $16-55 an hour.

  Background:
    Given the manifests under test

  Scenario: each NodePool consolidates as the policy says
    Then each NodePool consolidates as the consolidation policy says

  Scenario: consolidation is never disabled on GPU pools
    Then GPU pools never disable consolidation
