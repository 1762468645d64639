"""Behaviour drills: real controllers (Prometheus, KEDA, the HPA) replay a scenario of the manifests on the testbed.

One drill per module (`alerts`, ...), each defining `SPEC` (registry.py lists them); base.py holds the context every
drill runs in, runner.py runs one with cleanup on every exit path, command.py is `gpu-policy drill`.
"""
