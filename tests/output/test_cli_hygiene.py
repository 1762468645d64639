"""CLI hygiene (issues 9 and 10): --version, closed pipes, Ctrl-C, internal errors exit 3 in one line, empty sets,
explicit empty paths, and the flags other modules implement reach RunOptions."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpu_policy import cli, engine
from gpu_policy.loading.document import source_prefixes
from gpu_policy.rules.registry import RULES, all_rules
from tests.output.helpers import ROOT, SEED, SEED_ARGS, gpu_policy


def test_version() -> None:
    done = gpu_policy("--version")
    assert done.returncode == 0 and done.stdout.startswith("gpu-policy ")


def test_a_closed_pipe_is_not_a_traceback() -> None:
    done = subprocess.run(f"{sys.executable} -m gpu_policy rules | head -2", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_an_explicit_empty_path_is_an_error_not_the_bundled_set() -> None:
    done = gpu_policy("check", "")
    assert done.returncode == 2
    assert "an empty PATH was given (an unset shell variable?)" in done.stderr


def test_no_path_says_it_checks_the_bundled_reference_set() -> None:
    done = gpu_policy("check", "-k", "declared_once")
    assert done.returncode == 0, done.stderr
    assert "no PATH given: checking the bundled reference set" in done.stderr


def test_an_empty_set_or_a_path_without_objects_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = gpu_policy("check", str(empty))
    assert done.returncode == 2 and "no Kubernetes object found in" in done.stderr and "--allow-empty" in done.stderr
    assert gpu_policy("check", str(empty), "--allow-empty", "-k", "declared_once").returncode == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# not manifests\n")
    done = gpu_policy("check", str(SEED / "hpa-model-a-hpa.yaml"), str(docs), "-k", "declared_once")
    assert done.returncode == 2 and f"no Kubernetes object found in {docs}" in done.stderr


def test_helm_output_named_as_a_file_is_not_an_empty_path() -> None:
    # `helm template ... > rendered.yaml`: each object's source names its template, `rendered.yaml (chart/...)`;
    # a rendered file whose objects gave no finding was "no Kubernetes object found" (exit 2), as was
    # rh-aiservices-bu/llm-on-openshift vector-databases/milvus/milvus_manifest_standalone.yaml.
    rendered = ROOT / "fixtures" / "load-helm-output" / "manifests" / "rendered.yaml"
    done = gpu_policy("check", str(rendered), "-k", "declared_once")
    assert done.returncode == 0, done.stderr


def test_the_file_behind_a_source_with_a_suffix() -> None:
    assert source_prefixes("a/rendered.yaml (chart/templates/x.yaml)") == [
        "a/rendered.yaml (chart/templates/x.yaml)", "a/rendered.yaml"]
    assert source_prefixes("overlays/prod (kustomize output)") == ["overlays/prod (kustomize output)",
                                                                   "overlays/prod"]
    assert source_prefixes("a (b)/x.yaml (t.yaml)") == ["a (b)/x.yaml (t.yaml)", "a", "a (b)/x.yaml"]
    assert source_prefixes("plain.yaml") == ["plain.yaml"]


def _boom(ctx: Any) -> Any:
    raise ZeroDivisionError("division by zero in a rule")


def test_a_crashing_rule_is_an_internal_error_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rule = all_rules()["ec2nodeclass-ami-pinned"]
    monkeypatch.setitem(RULES, rule.id, dataclasses.replace(rule, check=_boom))
    code = cli.main(["check", *SEED_ARGS, "--only", rule.id])
    out, err = capsys.readouterr()
    assert code == 3
    assert ("gpu-policy: internal error in rule ec2nodeclass-ami-pinned: ZeroDivisionError: division by zero in a "
            "rule (run with --debug for the traceback)") in err
    assert "Traceback (most recent" not in err and "check crashed" not in out
    assert "[ec2nodeclass-ami-pinned]" not in out
    assert "result: internal error (exit 3)" in out
    assert cli.main(["check", *SEED_ARGS, "--only", rule.id, "--debug"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_any_uncaught_exception_is_one_line_and_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected\nstate")

    monkeypatch.setattr(engine, "run_engine", explode)
    assert cli.main(["check", *SEED_ARGS]) == 3
    err = capsys.readouterr().err
    assert err == ("gpu-policy: internal error: RuntimeError: unexpected state "
                   "(run with --debug for the traceback)\n")
    assert cli.main(["--debug", "check", *SEED_ARGS]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_engine", interrupted)
    assert cli.main(["check", *SEED_ARGS]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_flags_reach_run_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[engine.RunOptions] = []

    class Stop(Exception):
        pass

    def capture(options: engine.RunOptions, rule_ids: Any = None) -> Any:
        seen.append(options)
        raise Stop

    env_file = tmp_path / "vars.env"
    env_file.write_text("# cluster\nCLUSTER_NAME=gpu-prod\nexport REGION='eu-west-1'\n\nEMPTY=\n")
    monkeypatch.setattr(engine, "run_engine", capture)
    with pytest.raises(Stop):
        cli._dispatch(cli._parser().parse_args([
            "check", *SEED_ARGS, "--complete", "--namespace", "ml", "--env-file", str(env_file), "--env", "A=1",
            "--exclude", "*.tpl", "--exclude", "charts/**", "--allow-remote-bases", "--config", "cfg.yaml",
            "--profile", "reference", "--only", "lost-metric-is-not-zero", "--skip", "keda-no-dead-fields",
        ]))
    options = seen[0]
    assert options.complete and options.allow_remote_bases
    assert options.namespace == "ml"
    assert options.env == {"CLUSTER_NAME": "gpu-prod", "REGION": "eu-west-1", "EMPTY": "", "A": "1"}
    assert options.exclude == ["*.tpl", "charts/**"]
    assert options.config_path == Path("cfg.yaml") and options.profile == "reference"
    assert options.only == ["lost-metric-is-not-zero"] and "keda-no-dead-fields" in options.skip


def test_a_malformed_env_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nnot a pair\n")
    done = gpu_policy("check", *SEED_ARGS, "--env-file", str(bad))
    assert done.returncode == 2 and f"--env-file {bad}:2: expected KEY=VALUE" in done.stderr
