"""The bundled feature suite: every scenario of features/*.feature, run on the manifests under test.

Steps come from the `gpu_policy.plugin` pytest plugin; this module only collects the scenarios.
"""

from pytest_bdd import scenarios

from gpu_policy.resources import features_dir

scenarios(str(features_dir()))
