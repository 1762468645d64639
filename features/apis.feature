@static @apis
Feature: Objects use API versions their components still serve
  Kubernetes, Karpenter and KEDA stop serving old API versions (autoscaling/v2beta2 in Kubernetes 1.26, Karpenter's
  v1alpha5 Provisioner in v0.33 and v1beta1 NodePool in v1.1, keda.k8s.io in KEDA 2.0). An object at a removed API
  is refused on apply; it is judged by the removed-API rule only, which names the removal release, the version the
  cluster runs and the migration guide.

  Background:
    Given the manifests under test

  Scenario: no object uses a removed API version
    Then no object uses an API version its component no longer serves

  Scenario: no object uses a deprecated API version
    Then no object uses a deprecated API version
