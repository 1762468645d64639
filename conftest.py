"""Repository-level pytest setup: tests and CI read CRD schemas and DCGM collector lists from ../shared.

Users point these variables at their own copies; here they default to the pinned upstream files beside the repo.
"""

import os
from pathlib import Path

_SHARED = Path(__file__).resolve().parent.parent / "shared"

for _variable, _folder in (("GPU_POLICY_CRD_PATH", "crds"), ("GPU_POLICY_DCGM_CSV_PATH", "dcgm-exporter")):
    if _variable not in os.environ and (_SHARED / _folder).is_dir():
        os.environ[_variable] = str(_SHARED / _folder)
