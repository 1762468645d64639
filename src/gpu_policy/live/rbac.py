"""The least-privilege ClusterRole for live mode (clusterrole.yaml beside this file), as text or as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CLUSTER_ROLE_FILE = Path(__file__).resolve().parent / "clusterrole.yaml"


def cluster_role() -> dict[str, Any]:
    data = yaml.safe_load(CLUSTER_ROLE_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{CLUSTER_ROLE_FILE} is not a ClusterRole mapping")
    return data
