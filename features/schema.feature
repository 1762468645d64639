@static @schema
Feature: Manifests are readable, valid and accounted for
  Every document of the manifest set is decoded the way the Kubernetes API machinery decodes it, checked against
  the schema of its kind (core OpenAPI for the cluster's Kubernetes version, or the CRD's structural schema and its
  CEL rules), and nothing is skipped silently: a document that cannot be checked fails, or is listed as not checked
  when --ignore-missing-schemas says so, or when, in a partial set, its kind belongs to a product whose CRD is not
  bundled (EKS Auto Mode's NodeClass). Names are checked as the API server checks them (DNS-1123 subdomain for most
  kinds). A file that is a template (envsubst, Helm, Terraform) gets one warning listing its placeholders.

  Background:
    Given the manifests under test

  Scenario: manifest files are valid YAML
    Then every manifest file is valid YAML

  Scenario: documents are Kubernetes objects
    Then every document is a Kubernetes object with apiVersion, kind and name

  Scenario: objects are declared once
    Then no two manifests declare the same object

  Scenario: manifests match their schemas
    Then every manifest is valid against its schema

  Scenario: custom resources satisfy their CRD rules
    Then every custom resource satisfies its CRD's validation rules

  Scenario: every manifest has a schema
    Then every manifest has a schema to be checked against

  Scenario: exemptions carry a reason and have not expired
    Then every exemption has a reason and has not expired

  Scenario: manifests are rendered before they are applied
    Then no manifest carries an unrendered template placeholder
