"""The command line as a user meets it: exit codes 0 / 1 / 2 and readable file:line findings."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_policy.resources import fixtures_dir, reference_manifests_dir

ROOT = Path(__file__).resolve().parent.parent


def gpu_policy(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpu_policy", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def test_reference_manifests_pass() -> None:
    done = gpu_policy("check")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "result: passed (exit 0)" in done.stdout


def test_a_broken_set_exits_1_with_file_line_findings() -> None:
    fixture = fixtures_dir() / "exemption-without-reason" / "manifests"
    done = gpu_policy("check", str(fixture), "-k", "exemption")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "namespace.yaml:7: error: [exemptions-are-valid] Namespace/inference" in done.stdout
    assert "  why: " in done.stdout and "  fix: " in done.stdout


def test_stdin_is_read() -> None:
    text = (fixtures_dir() / "exemption-without-reason" / "manifests" / "namespace.yaml").read_text()
    done = gpu_policy("check", "-", "-k", "exemption", stdin=text)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "<stdin>:7: error: [exemptions-are-valid]" in done.stdout


def test_missing_path_is_an_environment_error() -> None:
    done = gpu_policy("check", "does/not/exist")
    assert done.returncode == 2
    assert "does/not/exist: no such file or folder" in done.stderr


def test_missing_crd_dir_is_an_environment_error() -> None:
    done = gpu_policy("check", "--crd-dir", "no-such-crds")
    assert done.returncode == 2
    assert "no-such-crds" in done.stderr


def test_bad_policy_file_is_an_environment_error(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for source in (ROOT / "policies").glob("*.yaml"):
        (policies / source.name).write_text(source.read_text())
    (policies / "spot.yaml").write_text("interruptionNoticeSeconds: soon\n")
    done = gpu_policy("check", "--policies", str(policies))
    assert done.returncode == 2
    assert "spot.yaml" in done.stderr and "interruptionNoticeSeconds" in done.stderr


def test_version_and_rules() -> None:
    assert gpu_policy("version").stdout.startswith("gpu-policy ")
    assert gpu_policy("--version").stdout.startswith("gpu-policy ")
    listing = gpu_policy("rules").stdout
    assert "object-is-unique" in listing and "schema-valid" in listing


def test_plugin_runs_the_bundled_features_from_any_folder(tmp_path: Path) -> None:
    """`pytest --manifests=PATH` in a repository that has no tests of its own runs the bundled suite."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--manifests={reference_manifests_dir()}",
         "-k", "declared_once"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_ignoring_missing_schemas_lists_the_object_as_not_checked(tmp_path: Path) -> None:
    # an unknown kind of a group the suite knows fails even in a partial set (a typo, not another team's product)
    (tmp_path / "typo.yaml").write_text("apiVersion: karpenter.sh/v1\nkind: NodePools\nmetadata: {name: gpu}\n")
    failing = gpu_policy("check", str(tmp_path), "--only", "schema-known", "-k", "schema")
    assert failing.returncode == 1 and "[schema-known] NodePools/gpu" in failing.stdout
    ignored = gpu_policy("check", str(tmp_path), "--ignore-missing-schemas", "--only", "schema-known", "-k", "schema")
    assert ignored.returncode == 0, ignored.stdout
    assert "1 not checked" in ignored.stdout  # counted by default, listed with -v
    listed = gpu_policy("check", str(tmp_path), "--ignore-missing-schemas", "--only", "schema-known", "-k", "schema",
                        "-v").stdout
    listed = listed.split("not checked:", 1)[1]
    assert "typo.yaml:2: NodePools/gpu: no schema for NodePools in karpenter.sh/v1" in listed
    # a product the suite does not bundle: listed as not checked in a partial set, a failure in a complete one
    fixture = fixtures_dir() / "schema-missing-schema" / "manifests"
    partial = gpu_policy("check", str(fixture), "--only", "schema-known", "-k", "schema", "-v")
    assert partial.returncode == 0, partial.stdout
    listed = partial.stdout.split("not checked:", 1)[1]
    assert "widget.yaml:4: Widget/demo: no schema for Widget in example.com/v1" in listed
    complete = gpu_policy("check", str(fixture), "--complete", "--only", "schema-known", "-k", "schema")
    assert complete.returncode == 1 and "[schema-known] Widget/demo" in complete.stdout


def test_rules_that_cannot_be_evaluated_offline_are_listed_not_passed() -> None:
    done = gpu_policy("check", "-k", "declared_once", "-v")
    assert done.returncode == 0
    section = done.stdout.split("schema rules not evaluated offline (neither passed nor failed):", 1)[1]
    assert "NodePool/gpu-inference-pool: transition rule (uses oldSelf) not evaluated" in section


def test_missing_promtool_is_an_environment_error_naming_the_package(tmp_path: Path) -> None:
    """No verdict without promtool: exit 2 and the package to install, not a finding and never a skip."""
    tools = tmp_path / "bin"
    tools.mkdir()
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    (tools / "kubectl").symlink_to(kubectl)  # the reference set is a kustomization
    env = {k: v for k, v in os.environ.items() if k != "GPU_POLICY_PROMTOOL"}
    env["PATH"] = str(tools)
    done = subprocess.run([sys.executable, "-m", "gpu_policy", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr
    assert "promtool not found" in done.stderr
    assert "apt-get install -y --no-install-recommends prometheus" in done.stderr


def test_an_in_process_check_leaves_the_garbage_collector_as_it_found_it(capsys: pytest.CaptureFixture[str]) -> None:
    # The check pauses the collector and freezes the set it built (cli._long_lived_heap); an in-process caller (the
    # fixture tests, the fuzz harness) must get a collecting interpreter back, with nothing left frozen.
    from gpu_policy import cli

    fixture = str(fixtures_dir() / "exemption-without-reason" / "manifests")
    suite_froze = gc.get_freeze_count() > 0  # whatever froze objects before this test gets them back below
    gc.unfreeze()
    try:
        assert gc.isenabled() and gc.get_freeze_count() == 0
        assert cli.main(["check", fixture, "-k", "exemption"]) == 1
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()  # a caller that manages the collector itself keeps its arrangement
        assert cli.main(["check", fixture, "-k", "exemption"]) == 1
        assert not gc.isenabled() and gc.get_freeze_count() == 0
        gc.enable()
        gc.freeze()  # so does a caller that froze its own objects: they stay frozen, nothing more is
        frozen = gc.get_freeze_count()
        assert cli.main(["check", fixture, "-k", "exemption"]) == 1
        assert gc.isenabled() and 0 < gc.get_freeze_count() <= frozen  # (a frozen object may still be freed)
        gc.unfreeze()
    finally:
        gc.enable()
        if suite_froze:
            gc.freeze()
    assert "exemptions-are-valid" in capsys.readouterr().out


def test_the_internal_suite_ignores_the_pytest_configuration_around_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gpu-policy installed in a virtualenv inside a repository: the repository's pytest.ini (addopts), its
    # conftest.py and the job's PYTEST_ADDOPTS must not reach the suite `check` runs (they made it find no scenario)
    from gpu_policy import cli, plugin

    repo = tmp_path / "repo"
    suite = repo / ".venv" / "lib" / "site-packages" / "suite"
    suite.mkdir(parents=True)
    for name in ("test_features.py", "pytest.ini"):
        shutil.copy(plugin.SUITE_FILE.parent / name, suite / name)
    (repo / "pytest.ini").write_text("[pytest]\naddopts = --no-such-option -x\n", encoding="utf-8")
    (repo / "conftest.py").write_text("raise RuntimeError('the repository conftest.py was imported')\n",
                                      encoding="utf-8")
    monkeypatch.setattr(plugin, "SUITE_FILE", suite / "test_features.py")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--no-such-option-either")
    assert cli.main(["check", str(reference_manifests_dir() / "inference" / "model-a.yaml")]) == 0
    assert os.environ["PYTEST_ADDOPTS"] == "--no-such-option-either"  # the caller's environment is put back
