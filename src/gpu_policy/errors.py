"""Errors that stop a run (exit code 2): bad usage or a broken environment, never a policy finding."""


class GpuPolicyError(Exception):
    """A usage or environment error: the run cannot give a verdict."""


class InputError(GpuPolicyError):
    """The input cannot be read at all (missing path, kubectl absent for a kustomization, ...)."""


class PolicyDataError(GpuPolicyError):
    """A file under policies/ is missing or does not match its JSON Schema."""


class SchemaSourceError(GpuPolicyError):
    """CRD schemas cannot be found or fetched."""
