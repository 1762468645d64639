@static @security
Feature: Privilege is an exception with a reason
  Privileged containers, added capabilities, host namespaces and explicit root are refused unless the workload
  declares why it needs them (gpu-policy.io/exempt), and images are pinned so what was reviewed is what runs. These
  are an organisation's choices: each is judged only when the policy in force switches it on (security.yaml).

  Background:
    Given the manifests under test

  Scenario: no privileged containers without a reason
    Then containers do not run privileged unless exempted with a reason

  Scenario: no added capabilities without a reason
    Then containers add no Linux capabilities unless exempted with a reason

  Scenario: no host namespaces without a reason
    Then pods do not share the host's PID, IPC or network namespace unless exempted with a reason

  Scenario: no explicit root without a reason
    Then containers do not explicitly run as root unless exempted with a reason

  Scenario: images are pinned
    Then container images are pinned to a version tag or digest, never latest
