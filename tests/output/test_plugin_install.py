"""The pytest plugin in a normal repository (issue 10): gpu-policy pip-installed (not editable) into `./.venv` of a
fresh repository, then `pytest --manifests=deploy/` runs the bundled suite, and the plugin's option names match
the CLI's."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.output.helpers import ROOT, SEED


@pytest.mark.slow
def test_pip_installed_plugin_runs_the_bundled_suite_from_a_repo_venv(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "hpa.yaml").write_text((SEED / "hpa-model-a-hpa.yaml").read_text())
    venv = repo / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    new_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies come from this test's environment (no download); gpu-policy itself is a real wheel install
    (Path(new_site) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
                             capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import gpu_policy; print(gpu_policy.__file__)"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    report = tmp_path / "report"
    done = subprocess.run([str(python), "-m", "pytest", "--manifests=deploy/", "-q", "-p", "no:cacheprovider",
                           "-rf", f"--report={report}", "--today=2026-01-01", "--complete"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "no tests ran" not in summary, done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 1  # the HPA's target Deployment is not in deploy/, which is declared complete
    assert "FAILED .venv/" in done.stdout and "test_the_autoscalers_target_exists" in done.stdout
    assert "pip/_vendor" not in done.stdout  # nothing else of the virtualenv is collected
    only = subprocess.run([str(python), "-m", "pytest", "--manifests=deploy/", "-q", "-p", "no:cacheprovider",
                           "--only", "keda", "--gpu-policy-today=2026-01-01"],  # a bare tag; the old option name
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert "deselected" in only.stdout.splitlines()[-1], only.stdout[-2000:] + only.stderr[-2000:]
