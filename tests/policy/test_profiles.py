"""Which policy is in force: the defaults alone on a user's files, the reference profile only when asked for, and a
repository's own configuration layered over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.engine import RunOptions, resolve_settings
from gpu_policy.errors import PolicyDataError
from gpu_policy.policy.loader import PolicySet, RepoConfig, discover_config, merge
from gpu_policy.resources import default_policies_dir, reference_manifests_dir


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> object:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy").mkdir(exist_ok=True)
    return resolve_settings(RunOptions(paths=[str(tmp_path / "deploy")], **kwargs))  # type: ignore[arg-type]


def test_user_files_without_config_get_the_defaults_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    policy = settings.policy  # type: ignore[attr-defined]
    assert policy.profile == "defaults"
    assert "maxDisruptionPercent" not in policy.budgets
    assert "businessHours" not in policy.cluster
    assert policy.scaling == {}
    assert policy.sla_min_replicas("inference", "model-a-serving") is None
    # facts stay: the spot notice is AWS's, not a choice
    assert policy.spot["interruptionNoticeSeconds"] == 120
    assert settings.complete is False  # type: ignore[attr-defined]
    assert settings.namespace == "default"  # type: ignore[attr-defined]


def test_reference_profile_for_the_bundled_set_and_on_request(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bundled = resolve_settings(RunOptions(paths=[str(reference_manifests_dir())]))
    assert bundled.policy.profile == "reference" and bundled.complete is True
    assert bundled.policy.budgets["maxDisruptionPercent"] == 20
    asked = _settings(tmp_path, monkeypatch, profile="reference")
    assert asked.policy.profile == "reference"  # type: ignore[attr-defined]
    assert asked.complete is False  # type: ignore[attr-defined]  # a user's set is partial unless declared
    with pytest.raises(Exception, match="unknown profile"):
        _settings(tmp_path, monkeypatch, profile="acme")


def test_repo_config_is_found_from_the_working_directory_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".gpu-policy.yaml").write_text(
        "complete: true\nnamespace: serving\nexclude: ['charts/**']\n"
        "policies:\n  budgets:\n    maxDisruptionPercent: 30\n  scaling:\n    scaleDown:\n"
        "      minStabilizationWindowSeconds: 600\n      maxPercentPerPeriod: 10\n      periodSeconds: 60\n"
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert discover_config(nested) == tmp_path / ".gpu-policy.yaml"
    monkeypatch.chdir(nested)
    settings = resolve_settings(RunOptions(paths=[str(nested)]))
    assert settings.complete is True and settings.namespace == "serving" and settings.exclude == ["charts/**"]
    assert settings.policy.budgets == {"consolidation": {}, "maxDisruptionPercent": 30}
    assert settings.policy.scaling["scaleDown"]["minStabilizationWindowSeconds"] == 600
    assert "scaleUp" not in settings.policy.scaling
    assert settings.policy.source_of("budgets") == str(tmp_path / ".gpu-policy.yaml")
    # the command line wins over the configuration
    overridden = resolve_settings(RunOptions(paths=[str(nested)], complete=False, namespace="other"))
    assert overridden.complete is False and overridden.namespace == "other"


def test_config_folder_with_policy_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "gpu-policy"
    folder.mkdir()
    (folder / "budgets.yaml").write_text("maxDisruptionPercent: 15\n")
    (folder / "config.yaml").write_text("profile: reference\n")
    settings = _settings(tmp_path, monkeypatch)
    policy = settings.policy  # type: ignore[attr-defined]
    assert policy.budgets["maxDisruptionPercent"] == 15          # the repository's value
    assert policy.budgets["businessHoursFreeze"] == "required"   # the reference profile under it
    assert policy.source_of("budgets") == str(folder / "budgets.yaml")


@pytest.mark.parametrize(("text", "error"), [
    ("complete: yes-please\n", "complete"),
    ("policies:\n  budgets:\n    maxDisruptionPercent: lots\n", "maxDisruptionPercent"),
    ("policies:\n  nonsense: {}\n", "unknown policy file"),
    ("namespace: Not_A_Namespace\n", "namespace"),
    ("- a list\n", "must be a mapping"),
])
def test_a_bad_config_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                       error: str) -> None:
    (tmp_path / ".gpu-policy.yaml").write_text(text)
    with pytest.raises(PolicyDataError, match=error):
        _settings(tmp_path, monkeypatch)


def test_explicit_policies_folder_may_hold_only_some_files(tmp_path: Path) -> None:
    (tmp_path / "sla.yaml").write_text("minReplicas:\n  - {namespace: ml, deployment: llm, replicas: 3}\n")
    policy = PolicySet.load(tmp_path)
    assert policy.sla_min_replicas("ml", "llm") == 3
    assert policy.alerts["alerts"] == {}
    assert PolicySet.load(default_policies_dir()).is_reference


def test_merge_is_by_key_for_mappings_and_replaces_everything_else() -> None:
    assert merge({"a": {"x": 1, "y": 2}, "l": [1, 2]}, {"a": {"y": 3}, "l": [9]}) == {"a": {"x": 1, "y": 3}, "l": [9]}


def test_config_reader_keeps_policies_dir_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "alerts.yaml").write_text("requiredLabels: [team]\n")
    (tmp_path / ".gpu-policy.yaml").write_text("policiesDir: org\n")
    config = RepoConfig.read(tmp_path / ".gpu-policy.yaml")
    assert config.policies_dir == (tmp_path / "org").resolve()
    assert PolicySet.from_config(config).alerts["requiredLabels"] == ["team"]
    (tmp_path / ".gpu-policy.yaml").write_text("policiesDir: nowhere\n")
    with pytest.raises(PolicyDataError, match="no such folder"):
        RepoConfig.read(tmp_path / ".gpu-policy.yaml")


def test_unquoted_yaml_dates_are_accepted_as_dates(tmp_path: Path) -> None:
    (tmp_path / "exemptions.yaml").write_text(
        "exemptions:\n  - {rule: security-no-privileged, resource: Deployment/a/b, reason: debugging, "
        "expires: 2027-01-31}\n")
    (tmp_path / "cost.yaml").write_text("pricesAsOf: 2026-11-01\n")
    policy = PolicySet.load(tmp_path)
    assert policy.exemptions["exemptions"][0]["expires"] == "2027-01-31"
    assert policy.cost["pricesAsOf"] == "2026-11-01"
