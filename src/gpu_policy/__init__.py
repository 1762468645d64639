"""gpu-policy: policy-as-code validation and conformance for GPU inference platforms on Kubernetes."""

__version__ = "0.1.0"
