"""Repository-level pytest setup: tests and CI read CRD schemas from ../shared/crds unless told otherwise."""

import os
from pathlib import Path

_SHARED_CRDS = Path(__file__).resolve().parent.parent / "shared" / "crds"

if "GPU_POLICY_CRD_PATH" not in os.environ and _SHARED_CRDS.is_dir():
    os.environ["GPU_POLICY_CRD_PATH"] = str(_SHARED_CRDS)
