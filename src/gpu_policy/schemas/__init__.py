"""Schema validation of manifests: core kinds, CRD structural schemas and CEL rules, and CRD fetching."""

from gpu_policy.schemas.issues import SchemaIssue
from gpu_policy.schemas.validator import ManifestValidator, default_crd_paths

__all__ = ["ManifestValidator", "SchemaIssue", "default_crd_paths"]
