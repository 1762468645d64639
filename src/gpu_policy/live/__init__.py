"""Live mode: read a running cluster's objects into the same documents the static suite judges."""
