@static @monitoring
Feature: GPU telemetry reaches Prometheus
  The DCGM exporter runs on every GPU node the NodePools can launch, a Service and a ServiceMonitor bring its
  series to a Prometheus that also loads the alert rules, the pod labels the autoscalers select on survive the
  scrape, and every DCGM metric queried is one the exporter actually collects.

  Background:
    Given the manifests under test

  Scenario: the exporter tolerates the GPU nodes' taints
    Then the DCGM exporter tolerates every taint of the GPU NodePools

  Scenario: the exporter selects labels Karpenter's GPU nodes carry
    Then the DCGM exporter's node selection matches every GPU NodePool's nodes

  Scenario: a Service exposes the exporter
    Then a Service exposes the DCGM exporter pods on a named metrics port

  Scenario: a ServiceMonitor scrapes the exporter
    Then a ServiceMonitor scrapes the DCGM exporter Service by port name

  Scenario: the scrape keeps the workload's pod labels
    Then the DCGM scrape keeps the exporter's pod, namespace and container labels

  Scenario: the exporter labels series with the pods using the GPUs
    Then the DCGM exporter runs in Kubernetes mode when queries use its pod labels

  Scenario: ServiceMonitors are picked up by Prometheus
    Then every ServiceMonitor is selected by a Prometheus

  Scenario: alert rules are loaded by Prometheus
    Then every PrometheusRule is loaded by a Prometheus

  Scenario: queried DCGM metrics are collected
    Then every DCGM metric queried is in the exporter's collectors

  Scenario: the exporter is the release the suite checked
    Then the DCGM exporter image is the release the cluster policy pins

  Scenario: an exporter in Kubernetes mode can reach the kubelet pod-resources socket
    Then a DCGM exporter in Kubernetes mode mounts the kubelet pod-resources directory

  Scenario: ServiceMonitors look for their Services where they are
    Then every ServiceMonitor looks for its Services in their namespace

  Scenario: ServiceMonitor endpoints name the port to scrape
    Then every ServiceMonitor endpoint names the port to scrape

  Scenario: ServiceMonitor endpoint ports are ports of the Services
    Then every ServiceMonitor endpoint port names a port of the Services it selects
