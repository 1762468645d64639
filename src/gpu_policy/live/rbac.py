"""The least-privilege ClusterRole for live mode (clusterrole.yaml beside this file), as text or as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CLUSTER_ROLE_FILE = Path(__file__).resolve().parent / "clusterrole.yaml"
DRY_RUN_ROLE_FILE = Path(__file__).resolve().parent / "clusterrole-dry-run.yaml"
"""`check --live PATH` only: patch/create (and RBAC escalate/bind) for the server-side dry run of the manifests."""
DRY_RUN_GUARD_FILE = Path(__file__).resolve().parent / "dry-run-guard.yaml"
"""A ValidatingAdmissionPolicy (and binding) denying the runner every write that is not a dry run."""


def cluster_role(path: Path = CLUSTER_ROLE_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a ClusterRole mapping")
    return data


def dry_run_role() -> dict[str, Any]:
    return cluster_role(DRY_RUN_ROLE_FILE)


def dry_run_guard(username: str) -> list[dict[str, Any]]:
    """The guard's policy and binding, for the runner `username`."""
    text = DRY_RUN_GUARD_FILE.read_text(encoding="utf-8")
    text = text.replace("system:serviceaccount:gpu-policy:gpu-policy-reader", username)
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
