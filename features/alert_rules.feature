@static @alerts
Feature: GPU alert rules are complete and measure the right thing
  Every alert waits a duration, routes by severity and says in its summary which GPU and which pod. Memory
  pressure is used over total framebuffer, thresholds are the ones on-call agreed to (policies/alerts.yaml), and
  no alert averages a hot GPU away across the fleet.

  Background:
    Given the manifests under test

  Scenario: alerts carry what the alert policy requires
    Then every alert has the for duration, labels and annotations the alert policy requires

  Scenario: GPU alerts name the GPU, and workload alerts the pod
    Then every GPU alert names the GPU, and a workload alert the pod, in its summary or description

  Scenario: memory pressure is used over total framebuffer
    Then GPU memory alerts measure used / (used + free) framebuffer

  Scenario: thresholds follow the alert policy
    Then GPU alerts fire at the thresholds and durations of the alert policy

  Scenario: a single hot GPU is not averaged away
    Then GPU alerts do not average one hot GPU away across the fleet

  Scenario: an up{job=...} alert names the job its targets really get
    Then an up{job=...} rule names the job its ServiceMonitor's targets really get

  Scenario: a "too few" alert fires when none is left
    Then a 'too few' alert also fires when none is left
