@static @dashboard
Feature: The GPU dashboard shows what the design asks for
  The Grafana dashboard shipped as a ConfigMap is valid JSON, has the design's five panels (GPU utilization,
  GPU memory used and free, pod scaling, node provisioning, cost), and every panel queries metrics that exist.

  Background:
    Given the manifests under test

  Scenario: dashboards are valid JSON
    Then every Grafana dashboard ConfigMap holds valid JSON

  Scenario: the panels the dashboard policy requires are present
    Then the GPU dashboard has the panels the dashboard policy requires

  Scenario: panels query metrics that exist
    Then every dashboard panel queries metrics the dashboard policy knows
