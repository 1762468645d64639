"""The @drill scenarios: `Then the <name> drill passes on the manifests under test` runs `gpu-policy drill <name>`
on the run's manifests. Without `--drill` (or GPU_POLICY_DRILLS=1) they are skipped with `NEEDS_DRILL`, as the live
scenarios are without `--live`: a drill starts real controllers and takes minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import parsers, then

from gpu_policy.engine import RunResult

NEEDS_DRILL = "needs --drill (or GPU_POLICY_DRILLS=1): a drill runs real controllers for minutes"


@then(parsers.parse("the {name} drill passes on the manifests under test"))
def drill_passes(manifests_run: RunResult, gpu_policy_options: dict[str, Any], name: str) -> None:
    if not gpu_policy_options.get("drills"):
        pytest.skip(NEEDS_DRILL)
    from gpu_policy.drills.base import DrillFailure
    from gpu_policy.drills.runner import run_drill
    from gpu_policy.errors import GpuPolicyError

    paths = [str(p) for p in manifests_run.options.paths]
    if not paths:
        pytest.skip("a drill needs manifests (it replays what they declare), not only --live")
    try:
        run_drill(name, paths, report_dir=gpu_policy_options.get("report_dir"),
                  kubeconfig=Path(gpu_policy_options["kubeconfig"]) if gpu_policy_options.get("kubeconfig") else None)
    except DrillFailure as exc:
        pytest.fail(exc.line(), pytrace=False)
    except GpuPolicyError as exc:  # asked for, yet it cannot run: say so, never skip silently
        pytest.fail(f"drill {name} could not run: {exc}", pytrace=False)
