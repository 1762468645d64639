"""`gpu-policy init` writes a starter that is valid as written and valid with its examples uncommented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpu_policy.errors import GpuPolicyError
from gpu_policy.policy.loader import PolicySet, RepoConfig
from gpu_policy.policy.starter import starter_text, write_starter


def test_starter_as_written_chooses_nothing(tmp_path: Path) -> None:
    path = write_starter(tmp_path)
    config = RepoConfig.read(path)
    assert config.complete is False and config.policies == {} and config.profile is None
    assert PolicySet.from_config(config).budgets == PolicySet.defaults().budgets


def test_starter_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    text = starter_text().replace("policies: {}\n", "")
    text = re.sub(r"^# (policies:|  .*|profile: reference)$", r"\1", text, flags=re.MULTILINE)
    (tmp_path / "c.yaml").write_text(text)
    policy = PolicySet.from_config(RepoConfig.read(tmp_path / "c.yaml"))
    assert policy.budgets["maxDisruptionPercent"] == 20
    assert policy.cluster["businessHours"]["timeZone"] == "Europe/Berlin"
    assert policy.sla_min_replicas("serving", "llm") == 2


def test_starter_never_overwrites_or_follows_a_symlink(tmp_path: Path) -> None:
    write_starter(tmp_path)
    with pytest.raises(GpuPolicyError, match="exists"):
        write_starter(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    other = tmp_path / "other"
    other.mkdir()
    (other / ".gpu-policy.yaml").symlink_to(victim)
    with pytest.raises(GpuPolicyError):
        write_starter(other, force=True)
    assert victim.read_text() == "keep"
