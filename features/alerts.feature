@static @alerts @promtool
Feature: GPU alerts behave as the on-call person needs, judged by promtool
  The PrometheusRules' groups are extracted into plain rule files and run through Prometheus' own `promtool test rules`
  over synthetic DCGM series; a failing step shows promtool's diff. A PrometheusRule that does not load is one finding; the scenarios of its alerts skip.

  Background:
    Given the alert rules of the manifests under test

  Scenario: HighGPUUtilization fires after 5 minutes above 90%, not at 4 minutes, and resolves when utilization falls
    Given DCGM series every 1m:
      | series                                                                                  | values       |
      | DCGM_FI_DEV_GPU_UTIL{gpu="0",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"} | 95x7 40x10   |
      | DCGM_FI_DEV_GPU_UTIL{gpu="1",namespace="inference",pod="model-b-serving-7c9d8b6f4-q2w3e"} | 30x17        |
    Then "HighGPUUtilization" is not firing at 4m
    And "HighGPUUtilization" is firing at 5m for gpu "0" and pod "model-a-serving-6d8f9c7b5-x0k2m"
    And "HighGPUUtilization" is not firing at 5m for gpu "1"
    And "HighGPUUtilization" resolves by 9m

  Scenario: GPUMemoryPressure fires at 92% framebuffer use and stays silent at 50%
    Given DCGM series every 1m:
      | series                                                                                 | values   |
      | DCGM_FI_DEV_FB_USED{gpu="0",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"} | 22080x10 |
      | DCGM_FI_DEV_FB_FREE{gpu="0",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"} | 1920x10  |
      | DCGM_FI_DEV_FB_USED{gpu="1",namespace="inference",pod="model-a-serving-6d8f9c7b5-x1k2m"} | 12000x10 |
      | DCGM_FI_DEV_FB_FREE{gpu="1",namespace="inference",pod="model-a-serving-6d8f9c7b5-x1k2m"} | 12000x10 |
    Then "GPUMemoryPressure" is not firing at 1m for gpu "0"
    And "GPUMemoryPressure" is firing at 3m for gpu "0"
    And "GPUMemoryPressure" is not firing at 5m for gpu "1"

  Scenario: GPU alerts carry the labels and annotations an on-call person needs
    Given DCGM series every 1m:
      | series                                                                                   | values   |
      | DCGM_FI_DEV_GPU_UTIL{gpu="3",Hostname="ip-10-0-1-23",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"}  | 99x10    |
      | DCGM_FI_DEV_FB_USED{gpu="3",Hostname="ip-10-0-1-23",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"}   | 23000x10 |
      | DCGM_FI_DEV_FB_FREE{gpu="3",Hostname="ip-10-0-1-23",namespace="inference",pod="model-a-serving-6d8f9c7b5-x0k2m"}   | 1000x10  |
    Then every firing alert among "HighGPUUtilization, GPUMemoryPressure" carries the labels and annotations the alert policy requires
    And every firing alert among "HighGPUUtilization, GPUMemoryPressure" has a summary naming its gpu and pod

  Scenario: Hand-written promtool tests pass against the manifests' alert rules
    Then the hand-written promtool tests pass against these alert rules

  Scenario: Every alert is exercised by a scenario or a promtool test file
    Then every alert is exercised by a scenario or a promtool test file

  Scenario: Every KEDA GPU query reads exactly its target's pods
    Given the manifests under test
    Then every KEDA GPU query returns one series that moves with its target's pods only

  Scenario: KEDA GPU queries that select pods by label need the exporter's pod labels kept
    Given the manifests under test
    Then a KEDA GPU query that selects pods by label reads 0 unless the exporter's scrape keeps its pod labels

  Scenario: Telemetry alerts fire when the DCGM exporter is down or a model's GPU series disappear
    Given DCGM series every 1m:
      | series                                                                                    | values  |
      | up{job="dcgm-exporter",instance="10.0.1.23:9400",namespace="gpu-monitoring",pod="dcgm-exporter-7xk2p",node="ip-10-0-1-23"} | 1 0x10 |
      | DCGM_FI_DEV_GPU_UTIL{gpu="0",namespace="inference",pod="model-b-serving-7c9d8b6f4-q2w3e"}    | 50x10   |
    Then "DCGMExporterDown" is not firing at 5m
    And "DCGMExporterDown" is firing at 6m for node "ip-10-0-1-23"
    And "ModelAScalerInputMissing" is not firing at 4m
    And "ModelAScalerInputMissing" is firing at 5m
    And "ModelBScalerInputMissing" is not firing at 10m
