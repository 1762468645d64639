@drill
Feature: Behaviour drills with real controllers
  The static scenarios read the manifests; the simulator predicts what the controllers will do. A drill makes the
  real controllers do it on this machine (a real Prometheus, and on the testbed the real HPA, KEDA and scheduler)
  and judges what they did against the policies; for scaling, it also holds the simulator to what they did.
  Each drill mutates only what it creates and cleans up. They take minutes (`gpu-policy drill --list`), so they run
  only when asked: `--drill` (or GPU_POLICY_DRILLS=1); otherwise they are skipped with "needs --drill".

  Background:
    Given the manifests under test

  @monitoring
  Scenario: GPU alerts fire after their for, name the GPU and pod, resolve; a lost exporter is alerted
    Then the alerts drill passes on the manifests under test

  @keda @simulation
  Scenario: Model A scales up under a surge no faster than its behaviour allows, while model B gives GPUs back down to its SLA minimum, as predicted
    Then the surge drill passes on the manifests under test

  @keda @simulation
  Scenario: Model A's scale-down waits its stabilisation window, then removes no faster than the policy, as predicted
    Then the scale-down drill passes on the manifests under test

  @karpenter
  Scenario: After a scale-down Karpenter removes the emptied GPU nodes only as the disruption budgets allow
    Then the consolidation drill passes on the manifests under test

  @karpenter @spot
  Scenario: Interrupted spot nodes drain within grace and notice; pods reschedule; replicas stay above the minimum
    Then the spot-interruption drill passes on the manifests under test

  @karpenter @simulation
  Scenario: Model A's surge gets GPU nodes of admissible types only, within the NodePool limits, where its pods fit
    Then the surge-capacity drill passes on the manifests under test
