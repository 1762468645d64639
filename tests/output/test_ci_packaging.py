"""The pre-commit hook and the composite GitHub Action run gpu-policy as documented (offline: the hook manifest is
validated by pre-commit and its entry run on a fixture repository's files; the action's check step runs in bash
with the environment GitHub gives it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.output.helpers import ROOT, SEED

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture()
def fixture_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    shutil.copy(SEED / "scaledobject-model-a-gpu-scaler.yaml", repo / "deploy")
    return repo


def test_pre_commit_manifest_is_valid_and_its_entry_checks_the_files(fixture_repo: Path) -> None:
    pre_commit = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
    assert pre_commit, "pre-commit is in the dev extra"
    valid = subprocess.run([pre_commit, "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                           capture_output=True, text=True, timeout=120, check=False)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    assert hook["id"] == "gpu-policy" and hook["language"] == "python" and hook["pass_filenames"] is True
    done = subprocess.run([*shlex.split(hook["entry"]), "deploy/scaledobject-model-a-gpu-scaler.yaml"],
                          cwd=fixture_repo, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert ("deploy/scaledobject-model-a-gpu-scaler.yaml:39: error: [lost-metric-is-not-zero] "
            "ScaledObject/inference/model-a-gpu-scaler") in done.stdout
    assert "  why:" not in done.stdout  # --compact


def _check_step() -> dict[str, object]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    for step in steps:
        assert "${{" not in str(step.get("run", "")), f"inputs interpolated into a script: {step}"
    assert any(str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@") for s in steps)
    return next(s for s in steps if s.get("id") == "check")


def test_action_check_step_writes_sarif_annotations_and_the_exit_code(fixture_repo: Path) -> None:
    step = _check_step()
    output = fixture_repo / "github_output"
    env = _env(GPU_POLICY_PATHS="deploy/", GPU_POLICY_ARGS="--only lost-metric-is-not-zero",
               GPU_POLICY_SARIF="gpu-policy.sarif", GITHUB_OUTPUT=str(output))
    done = subprocess.run(["bash", "-e", "-c", str(step["run"])], cwd=fixture_repo, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert output.read_text().strip() == "exit-code=1"
    assert ("::error file=deploy/scaledobject-model-a-gpu-scaler.yaml,line=39,title=lost-metric-is-not-zero::"
            in done.stdout)
    sarif = json.loads((fixture_repo / "gpu-policy.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["lost-metric-is-not-zero"]


def test_action_refuses_an_empty_paths_input(fixture_repo: Path) -> None:
    step = _check_step()
    output = fixture_repo / "github_output"
    env = _env(GPU_POLICY_PATHS="", GPU_POLICY_ARGS="", GPU_POLICY_SARIF="x.sarif", GITHUB_OUTPUT=str(output))
    done = subprocess.run(["bash", "-e", "-c", str(step["run"])], cwd=fixture_repo, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert output.read_text().strip() == "exit-code=2"
    assert "::error title=gpu-policy::the paths input is empty" in done.stdout


@pytest.mark.slow
def test_pre_commit_try_repo_runs_the_hook_on_a_fixture_repository(fixture_repo: Path, tmp_path: Path) -> None:
    """As a user tries a hook before adding it: `pre-commit try-repo <this repository> gpu-policy` in a git
    repository. pre-commit builds the hook's own virtualenv (`language: python`: pip installs this repository, its
    dependencies from the package index) under a throwaway PRE_COMMIT_HOME, then runs the entry on the files."""
    pre_commit = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
    assert pre_commit, "pre-commit is in the dev extra"
    git = ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=test", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "manifests"]):
        subprocess.run([*git, *args], cwd=fixture_repo, check=True, capture_output=True, timeout=60)
    env = _env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
    done = subprocess.run([pre_commit, "try-repo", str(ROOT), "gpu-policy", "--files",
                           "deploy/scaledobject-model-a-gpu-scaler.yaml"],
                          cwd=fixture_repo, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"gpu-policy check\.+Failed", done.stdout), done.stdout[-4000:]
    assert ("deploy/scaledobject-model-a-gpu-scaler.yaml:39: error: [lost-metric-is-not-zero] "
            "ScaledObject/inference/model-a-gpu-scaler") in done.stdout
    assert "  why:" not in done.stdout  # the hook's --compact
