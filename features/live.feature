@live
Feature: Live conformance of the running cluster
  With `gpu-policy check --live` the suite reads the cluster of the current kubeconfig context (read-only). Alone,
  every static scenario judges the objects deployed there. With manifests (`gpu-policy check --live manifests/`)
  the static scenarios judge the manifests, and the cluster is asked whether it accepts each object (a server-side
  dry run: nothing is stored) and whether it holds what the manifests say. The scenarios below judge what the
  controllers did with the deployed objects, from their status. Without `--live` they are skipped: "needs --live".

  Background:
    Given the manifests under test

  @keda
  Scenario: KEDA has accepted every ScaledObject
    Then every ScaledObject in the cluster is Ready

  @keda
  Scenario: KEDA's HPAs can scale and read their metrics
    Then the HPA of every ScaledObject is able to scale and its metrics are served

  @karpenter
  Scenario: Karpenter can provision from every NodePool
    Then every NodePool in the cluster is Ready

  @karpenter
  Scenario: Karpenter's nodes come up
    Then every NodeClaim is launched, registered and initialized

  @monitoring
  Scenario: every GPU is watched
    Then every GPU node runs a Ready DCGM exporter pod

  @live-manifests
  Scenario: the API server accepts the manifests
    Then the API server accepts every manifest object

  @live-manifests
  Scenario: the manifests are deployed
    Then every manifest object exists in the cluster

  @live-manifests
  Scenario: the cluster holds what the manifests say
    Then the cluster holds what the manifests say
